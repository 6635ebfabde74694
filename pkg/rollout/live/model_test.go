package live

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/inventory"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func at(s int) *metav1.Time { v := metav1.NewTime(t0.Add(time.Duration(s) * time.Second)); return &v }

func rollout(phase string, waves []v1alpha1.WaveStatus, nodes ...v1alpha1.NodeStatus) *v1alpha1.RuntimeMigration {
	m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: v1alpha1.RuntimeMigrationSpec{TargetRuntime: "containerd"},
		Status: v1alpha1.RuntimeMigrationStatus{Phase: phase, Waves: waves, Nodes: nodes}}
	m.Status.Recount()
	return m
}

func kube(name, phase, runtime string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{inventory.SwitchPhaseAnnotation: phase}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: runtime}}}
}

// TestModel feeds the model the events of a two-wave rollout, in the order
// the watches deliver them, and checks the plain line of each change and
// the table after it.
func TestModel(t *testing.T) {
	waves := func(w0s, w0e, w1s *metav1.Time) []v1alpha1.WaveStatus {
		return []v1alpha1.WaveStatus{{Index: 0, Kind: "Canary", Nodes: []string{"a"}, StartTime: w0s, CompletionTime: w0e}, {Index: 1, Kind: "Workers", Nodes: []string{"b"}, StartTime: w1s}}
	}
	pending := v1alpha1.NodeStatus{Name: "b", Wave: 1, State: v1alpha1.NodePending}
	steps := []struct {
		description string
		ev          Event
		now         int
		lines       []string
		rows        []string // node|wave|state|phase|elapsed|result
		summary     string
		ended       bool
	}{
		{"the plan: no change to report", Event{Rollout: rollout("Running", waves(nil, nil, nil),
			v1alpha1.NodeStatus{Name: "a", State: v1alpha1.NodePending}, pending)}, 0,
			[]string{"rollout r: Running"},
			[]string{"a|1 Canary|Pending||||", "b|2 Workers|Pending||||"}, "0/2 done", false},
		{"nodes listed: nothing shown changes", Event{Node: kube("a", "", "docker://20.10")}, 0, nil, nil, "", false},
		{"node b listed", Event{Node: kube("b", "", "docker://20.10")}, 0, nil, nil, "", false},
		{"a node outside the rollout changes: nothing", Event{Node: kube("other", "drain/running", "docker://20.10")}, 0, nil, nil, "", false},
		{"the canary starts", Event{Rollout: rollout("Running", waves(at(0), nil, nil),
			v1alpha1.NodeStatus{Name: "a", State: v1alpha1.NodeSwitching, StartTime: at(0)}, pending)}, 5,
			[]string{"node a (wave 1): Switching"},
			[]string{"a|1 Canary|Switching||5s||", "b|2 Workers|Pending||||"}, "ETA unknown", false},
		{"its phase, from the node's annotation before the status has it", Event{Node: kube("a", "drain/running", "docker://20.10")}, 30,
			[]string{"node a: drain/running"},
			[]string{"a|1 Canary|Switching|drain/running|30s||", "b|2 Workers|Pending||||"}, "1 switching", false},
		{"it switches runtime", Event{Node: kube("a", "verify/running", "containerd://1.7")}, 80,
			[]string{"node a: verify/running", "node a: runs containerd://1.7"}, nil, "", false},
		{"the canary is done, the next wave started: an ETA", Event{Rollout: rollout("Running", waves(at(0), at(100), at(100)),
			v1alpha1.NodeStatus{Name: "a", State: v1alpha1.NodeDone, StartTime: at(0), CompletionTime: at(90)},
			v1alpha1.NodeStatus{Name: "b", Wave: 1, State: v1alpha1.NodeSwitching, StartTime: at(100)})}, 130,
			[]string{"node a (wave 1): Done", "node b (wave 2): Switching"},
			[]string{"a|1 Canary|Done||1m30s|on containerd|", "b|2 Workers|Switching||30s||"}, "1/2 done, 1 switching, 0 pending, 0 failed, 0 rolled back, 0 blocked, 0 skipped, ETA 1m10s", false},
		{"b blocked; the rollout ends Completed", Event{Rollout: rollout("Completed", waves(at(0), at(100), at(100)),
			v1alpha1.NodeStatus{Name: "a", State: v1alpha1.NodeDone, StartTime: at(0), CompletionTime: at(90)},
			v1alpha1.NodeStatus{Name: "b", Wave: 1, State: v1alpha1.NodeBlocked, FailedPhase: "drain", Cause: "drain still blocked", StartTime: at(100), CompletionTime: at(160),
				Blocking: &v1alpha1.Blocking{PodDisruptionBudget: "db/pg", Pods: []string{"db/pg-0"}}})}, 500,
			[]string{"rollout r: Completed", "node b (wave 2): Blocked in drain: drain still blocked"},
			[]string{"a|1 Canary|Done||1m30s|on containerd|", "b|2 Workers|Blocked|drain|1m0s|PDB db/pg (pods db/pg-0)|"}, "Completed", true},
	}
	md := New()
	for _, s := range steps {
		t.Run(s.description, func(t *testing.T) {
			got := md.Apply(s.ev)
			if fmt.Sprint(got) != fmt.Sprint(s.lines) {
				t.Errorf("lines %q, want %q", got, s.lines)
			}
			now := t0.Add(time.Duration(s.now) * time.Second)
			if s.rows != nil {
				var rows []string
				for _, r := range md.Rows(now) {
					rows = append(rows, strings.Join([]string{r.Node, r.Wave, r.State, r.Phase, r.Elapsed, r.Result, ""}, "|"))
				}
				if fmt.Sprint(rows) != fmt.Sprint(s.rows) {
					t.Errorf("rows\n %q\nwant\n %q", rows, s.rows)
				}
			}
			if sum := md.Summary(now); !strings.Contains(sum, s.summary) {
				t.Errorf("summary %q lacks %q", sum, s.summary)
			}
			if md.Ended() != s.ended {
				t.Errorf("ended %v", md.Ended())
			}
		})
	}
	if lines := md.Apply(Event{RolloutGone: true}); len(lines) != 1 || !md.Ended() {
		t.Errorf("deleted: %q, ended %v", lines, md.Ended())
	}
}
