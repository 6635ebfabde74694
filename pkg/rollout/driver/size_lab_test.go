package driver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/rollout/driver"
	"github.com/unshim/unshim/pkg/rollout/plan"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

// sizeNodeName is a long node name (221 characters; a DNS subdomain holds
// 253): the status holds each node's name twice, so long names make a
// rollout outgrow one object with a few thousand nodes, few enough to make
// in the lab's apiserver in seconds.
func sizeNodeName(i int) string {
	seg := strings.Repeat("x", 62)
	return fmt.Sprintf("node-%05d.%s.%s.%s.pool.example.internal", i, seg, seg, seg)
}

// TestRolloutTooLargeForOneObject: a rollout whose status would outgrow what
// etcd stores in one object (1.5 MiB by default) is refused before it
// changes anything, with how to split it; that status is one the real
// apiserver refuses to store, and the largest rollout the check lets
// through is one it stores.
func TestRolloutTooLargeForOneObject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// A control plane of its own (no nodes): the thousands of Node objects
	// below stay out of every other test's lab.
	l := labtest.UpForTest(ctx, t, "sizetest", lab.Options{Logger: log.New(testWriter{t}, 0)})
	f := &fixture{l: l}
	f.setupAPI(ctx, t)
	f.bin = buildUnshim(ctx, t)

	const n = 2700
	var nodes []plan.Node
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := 0; i < n; i++ {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: sizeNodeName(i), Labels: map[string]string{"unshim.io/sizetest": "big"},
				Annotations: map[string]string{"kubeadm.alpha.kubernetes.io/cri-socket": lab.DockershimSocket}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: "docker://20.10.24", KubeletVersion: "v1.23.17",
				OperatingSystem: "linux", Architecture: "amd64"}},
		}
		nodes = append(nodes, plan.NodeFrom(node))
		g.Go(func() error {
			_, err := f.c.CoreV1().Nodes().Create(gctx, node, metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d nodes in %s", n, time.Since(start).Round(time.Millisecond))

	spec := func(sel map[string]string) v1alpha1.RuntimeMigrationSpec {
		return v1alpha1.RuntimeMigrationSpec{Nodes: v1alpha1.NodeSelection{Selector: &metav1.LabelSelector{MatchLabels: sel}},
			TargetRuntime: v1alpha1.TargetContainerd, MaxUnavailable: ptr(intstr.FromString("10%"))}
	}
	big := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Spec: spec(map[string]string{"unshim.io/sizetest": "big"})}
	f.create(ctx, t, big)

	// `rollout plan` names it a risk; `rollout run` refuses it, exits
	// non-zero, and says so in the status.
	out, err := exec.CommandContext(ctx, f.bin, "--kubeconfig", l.Kubeconfig, "--as", viewer, "rollout", "plan", "big").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "split it into rollouts") {
		t.Errorf("rollout plan big: %v\n%s\nwant the size named a risk", err, tail(string(out), 20))
	}
	// Refused at once: a driver that went on would wait on its first wave.
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	out, err = exec.CommandContext(rctx, f.bin, "--kubeconfig", l.Kubeconfig, "--as", driverUser, "rollout", "run", "big",
		"--via", "pod", "--agent-image", "registry.example/unshim:v1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "split it into rollouts") {
		t.Errorf("rollout run big: %v\n%s\nwant a non-zero exit that says to split it", err, tail(string(out), 20))
	}
	got := f.get(ctx, t, "big")
	if got.Status.Phase != v1alpha1.PhaseFailed || !strings.Contains(got.Status.Message, "over the") || len(got.Status.Nodes) != 0 {
		t.Errorf("status: phase %q, message %q, %d nodes; want Failed, the size named, no node entries", got.Status.Phase, got.Status.Message, len(got.Status.Nodes))
	}
	// Nothing changed on a node: not labelled, not cordoned, not tainted.
	listed, err := f.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range listed.Items {
		tainted := false
		for _, taint := range node.Spec.Taints {
			tainted = tainted || taint.Key == driver.TaintKey
		}
		if _, ok := node.Labels[runtimelabel.Key]; ok || node.Spec.Unschedulable || tainted || len(node.Annotations) != 1 {
			t.Fatalf("%s changed: labels %v, unschedulable %v, taints %v, annotations %v", node.Name, node.Labels, node.Spec.Unschedulable, node.Spec.Taints, node.Annotations)
		}
	}

	// The status the check foresaw is one etcd refuses: a driver without
	// the check would stop writing mid-way.
	p, err := plan.Make(nodes, &big.Spec)
	if err != nil {
		t.Fatal(err)
	}
	proj := p.Projected(got)
	if err := f.writeStatus(ctx, proj); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("write the projected status of %d nodes (%d KiB): %v; want it refused as too large", n, size(t, proj)/1024, err)
	}

	// The largest rollout the check lets through: the apiserver stores its
	// projected status.
	var k int
	for lo, hi := 1, n; lo <= hi; {
		mid := (lo + hi) / 2
		if p, m := subset(t, nodes, mid, spec); p.CheckSize(m) == nil {
			k, lo = mid, mid+1
		} else {
			hi = mid - 1
		}
	}
	if k == 0 || k == n {
		t.Fatalf("the check lets %d of %d nodes through; want some and not all", k, n)
	}
	for i := 0; i < k; i++ {
		if _, err := f.c.CoreV1().Nodes().Patch(ctx, sizeNodeName(i), types.MergePatchType, []byte(`{"metadata":{"labels":{"unshim.io/sizefits":"yes"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	fp, fm := subset(t, nodes, k, spec)
	f.create(ctx, t, fm)
	created := f.get(ctx, t, fm.Name)
	fproj := fp.Projected(created)
	if s := size(t, fproj); s < plan.MaxObjectBytes-plan.ObjectReserve-2048 {
		t.Errorf("the largest projection let through is %d bytes; want it within 2 KiB of the limit %d", s, plan.MaxObjectBytes-plan.ObjectReserve)
	}
	if err := f.writeStatus(ctx, fproj); err != nil {
		t.Errorf("write the projected status of %d nodes (%d KiB, the largest the check lets through): %v", k, size(t, fproj)/1024, err)
	}
	t.Logf("%d nodes of %d-character names: %d KiB projected, refused; %d nodes: %d KiB, stored", n, len(sizeNodeName(0)), size(t, proj)/1024, k, size(t, fproj)/1024)
}

// subset is the plan and object of a rollout of the first k nodes, selected
// by the label unshim.io/sizefits=yes.
func subset(t *testing.T, nodes []plan.Node, k int, spec func(map[string]string) v1alpha1.RuntimeMigrationSpec) (*plan.Plan, *v1alpha1.RuntimeMigration) {
	t.Helper()
	sel := map[string]string{"unshim.io/sizefits": "yes"}
	in := make([]plan.Node, 0, len(nodes))
	for i, n := range nodes {
		labels := map[string]string{}
		for k, v := range n.Labels {
			labels[k] = v
		}
		if i < k {
			labels["unshim.io/sizefits"] = "yes"
		}
		n.Labels = labels
		in = append(in, n)
	}
	m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "fits"}, Spec: spec(sel)}
	p, err := plan.Make(in, &m.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

func size(t *testing.T, m *v1alpha1.RuntimeMigration) int {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return len(data)
}

// writeStatus writes m's status as the lab's admin.
func (f *fixture) writeStatus(ctx context.Context, m *v1alpha1.RuntimeMigration) error {
	u, err := v1alpha1.ToUnstructured(m)
	if err != nil {
		return err
	}
	_, err = f.dyn.Resource(v1alpha1.GroupVersionResource).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	return err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
