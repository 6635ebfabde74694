package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/nodelock"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/nodeswitch"
)

// TestMigrateBadInput: bad arguments, an unknown node and an unreachable
// node get a clear message, exit 2, and change nothing. (The switch itself
// is tested on real nodes in pkg/nodeswitch.)
func TestMigrateBadInput(t *testing.T) {
	e := requireLab(t)
	ctx := context.Background()
	// A process whose root is this machine's: nothing of a node is there.
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown target", []string{"migrate", "node", "n1", "--to", "crio", "--via", "nsenter", "--target-pid", self}, []string{"--to", "containerd or cri-dockerd"}},
		{"unknown phase", []string{"migrate", "node", "phase", "nosuch", "n1", "--via", "nsenter", "--target-pid", self}, []string{"no phase \"nosuch\"", "preflight"}},
		{"stray arguments", []string{"migrate", "node", "n1", "n2"}, []string{"accepts 1 arg"}},
		{"negative timeout", []string{"migrate", "node", "n1", "--drain-timeout=-5s", "--via", "nsenter", "--target-pid", self}, []string{"cannot be negative"}},
		{"unknown phase to skip", []string{"migrate", "node", "n1", "--skip-phases", "nosuch", "--via", "nsenter", "--target-pid", self}, []string{"no phase \"nosuch\""}},
		{"missing settings file", []string{"migrate", "node", "n1", "--settings", "/nonexistent/settings.json", "--via", "nsenter", "--target-pid", self}, []string{"--settings", "no such file"}},
		{"unknown node", []string{"migrate", "node", "no-such-node", "--dry-run", "--via", "nsenter", "--target-pid", self}, []string{"no-such-node", "not found"}},
		{"unknown output format", []string{"migrate", "node", "n1", "--dry-run", "-o", "xml", "--via", "nsenter", "--target-pid", self}, []string{"-o", `"xml"`, "yaml"}},
		{"unknown via", []string{"migrate", "node", "n1", "--via", "carrier-pigeon"}, []string{"--via", "carrier-pigeon"}},
		{"nsenter without pid", []string{"migrate", "node", "n1", "--via", "nsenter"}, []string{"--target-pid"}},
		{"pod without image", []string{"migrate", "node", "n1", "--via", "pod"}, []string{"--agent-image"}},
		{"rollback of an unknown node", []string{"node", "rollback", "no-such-node", "--via", "nsenter", "--target-pid", self}, []string{"no-such-node", "not found"}},
		{"purge from an unknown node", []string{"node", "purge-docker", "no-such-node", "--dry-run", "--via", "nsenter", "--target-pid", self}, []string{"no-such-node", "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, "", e.kube(tt.args...)...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", r.code, r.errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.errOut, w) {
					t.Errorf("stderr %q lacks %q", r.errOut, w)
				}
			}
		})
	}
	// Nothing was written to the cluster: no lock, no annotation. (Other
	// packages' tests share the lab: only this test's node names count.)
	for _, node := range []string{"n1", "no-such-node"} {
		if _, err := e.client.CoordinationV1().Leases("kube-system").Get(ctx, nodelock.LeaseName(node), metav1.GetOptions{}); err == nil {
			t.Errorf("lock %s left by a refused run", nodelock.LeaseName(node))
		}
	}
	nodes, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if _, ok := n.Annotations[nodeswitch.PhaseAnnotation]; ok {
			t.Errorf("node %s has %s after refused runs", n.Name, nodeswitch.PhaseAnnotation)
		}
	}
}

// TestMigrateWindowsDryRun: a Windows node's dry run is its PowerShell plan,
// made from the Node alone (no --via reaches a Windows node), in the one
// dry-run value: the script itself as text, the same plan as data with -o
// json and -o yaml; nothing is written to the cluster.
func TestMigrateWindowsDryRun(t *testing.T) {
	e := requireLab(t)
	ctx := context.Background()
	name := "e2e-win-" + strconv.Itoa(os.Getpid())
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n, err := e.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	n.Status.NodeInfo = corev1.NodeSystemInfo{OperatingSystem: "windows", KubeletVersion: "v1.31.4", ContainerRuntimeVersion: "docker://20.10.24"}
	if _, err := e.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := e.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	text := run(t, "", e.kube("migrate", "node", name, "--dry-run")...)
	if text.code != 0 || !strings.Contains(text.out, "containerd-2.2.7-windows-amd64") || !strings.Contains(text.errOut, "runs Windows") {
		t.Fatalf("text: exit %d\nstdout %s\nstderr %s", text.code, text.out, text.errOut)
	}
	for _, format := range []string{"json", "yaml"} {
		r := run(t, "", e.kube("migrate", "node", name, "--dry-run", "-o", format)...)
		if r.code != 0 {
			t.Fatalf("-o %s: exit %d: %s", format, r.code, r.errOut)
		}
		var got nodeplan.DryRun
		if err := yaml.UnmarshalStrict([]byte(r.out), &got); err != nil { // YAML is a superset of JSON
			t.Fatalf("-o %s: %v\n%s", format, err, r.out)
		}
		if got.Node != name || got.OS != nodeplan.Windows || got.Windows == nil || got.Windows.Containerd != "2.2.7" ||
			got.Windows.Script != text.out || len(got.Phases) != 0 {
			t.Errorf("-o %s: %+v", format, got)
		}
	}
	r := run(t, "", e.kube("migrate", "node", name, "--dry-run", "--to", "cri-dockerd")...)
	if r.code != 2 || !strings.Contains(r.errOut, "not supported on Windows") {
		t.Errorf("--to cri-dockerd on Windows: exit %d, stderr %q", r.code, r.errOut)
	}
	after, err := e.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion || after.Spec.Unschedulable {
		t.Errorf("the dry run changed the Node (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}
	if _, err := e.client.CoordinationV1().Leases("kube-system").Get(ctx, nodelock.LeaseName(name), metav1.GetOptions{}); err == nil {
		t.Errorf("lock %s left by a dry run", nodelock.LeaseName(name))
	}
}
