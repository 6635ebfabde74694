package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/rollout/plan"
	"github.com/unshim/unshim/pkg/rollout/preview"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update to rewrite, then review):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestRolloutPreviewTable(t *testing.T) {
	nodes := []plan.Node{
		{Name: "a1", Runtime: "docker", Via: "dockershim", Labels: map[string]string{"topology.kubernetes.io/zone": "a"}},
		{Name: "a2", Runtime: "docker", Via: "cri-dockerd", Labels: map[string]string{"topology.kubernetes.io/zone": "a"}},
		{Name: "b1", Runtime: "docker", Via: "dockershim", Labels: map[string]string{"topology.kubernetes.io/zone": "b"}},
		{Name: "cp", Runtime: "docker", Via: "dockershim", Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
		{Name: "c1", Runtime: "containerd", Labels: map[string]string{}},
	}
	two := intstr.FromInt32(2)
	spec := &v1alpha1.RuntimeMigrationSpec{TargetRuntime: v1alpha1.TargetContainerd, MaxUnavailable: &two,
		Zone: &v1alpha1.TopologyLimit{MaxUnavailable: intstr.FromInt32(1)}}
	p, err := plan.Make(nodes, spec)
	if err != nil {
		t.Fatal(err)
	}
	pv := &preview.Preview{Name: "to-containerd", Target: "containerd", Plan: p, Waves: len(p.Waves), Nodes: p.Nodes(),
		ETA:   metav1.Duration{Duration: p.ETA(5*time.Minute, time.Minute)},
		Times: map[string]string{"perWave": "5m0s", "soak": "1m0s"},
		PDBs:  []preview.BlockingPDB{{Namespace: "db", Name: "pg", Pods: []string{"db/pg-0"}, Nodes: []string{"a1"}}},
		Docker: []check.Finding{{Object: check.ObjectRef{Kind: "DaemonSet", Namespace: "ci", Name: "builder"}, Rule: "docker-socket-mount",
			Severity: check.SeverityCritical, Pods: 2, Evidence: "/var/run/docker.sock"}},
		Risks: []preview.Risk{{Severity: "high", Message: "PodDisruptionBudget db/pg allows no disruption now"}},
	}
	var buf bytes.Buffer
	if err := RolloutPreview(&buf, pv, Table); err != nil {
		t.Fatal(err)
	}
	golden(t, "rollout-preview", buf.Bytes())
}

func TestRolloutStatusTable(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	end := metav1.NewTime(start.Add(4*time.Minute + 30*time.Second))
	m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "to-containerd", Generation: 3},
		Spec: v1alpha1.RuntimeMigrationSpec{TargetRuntime: "containerd", Paused: true},
		Status: v1alpha1.RuntimeMigrationStatus{ObservedGeneration: 2, Phase: v1alpha1.PhasePaused, Message: "failure budget spent: 1 failed node, budget 0",
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionPaused, Status: "True", Reason: "FailureBudget", Message: "1 failed"}},
			Nodes: []v1alpha1.NodeStatus{
				{Name: "a1", Wave: 0, State: v1alpha1.NodeDone, StartTime: &start, CompletionTime: &end},
				{Name: "a2", Wave: 1, State: v1alpha1.NodeRolledBack, Cause: "verify: kubelet not Ready after 5m", StartTime: &start, CompletionTime: &end},
				{Name: "b1", Wave: 1, State: v1alpha1.NodeBlocked, Blocking: &v1alpha1.Blocking{PodDisruptionBudget: "db/pg", Pods: []string{"db/pg-0"}}, StartTime: &start, CompletionTime: &end},
				{Name: "cp", Wave: 2, State: v1alpha1.NodePending},
			}},
	}
	m.Status.Recount()
	var buf bytes.Buffer
	if err := RolloutStatus(&buf, m, Table); err != nil {
		t.Fatal(err)
	}
	golden(t, "rollout-status", buf.Bytes())
}
