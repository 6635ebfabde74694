package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/report"
)

// TestNodes registers nodes as kubelets would (object, then status) and
// checks the inventory in every format.
func TestNodes(t *testing.T) {
	e := requireLab(t)
	ctx := context.Background()
	group := e.namespace(t) // a unique name to label this test's nodes with
	type nodeCase struct {
		name, kubelet, runtime, socket string
		ready, unschedulable           bool
		wantMigrate                    bool
		wantVia                        string
		wantNote                       string
	}
	cases := []nodeCase{
		{"shim", "v1.23.17", "docker://20.10.24", "/var/run/dockershim.sock", true, false, true, inventory.ViaDockershim, "dockershim"},
		{"cri-dockerd", "v1.26.15", "docker://24.0.9", "unix:///var/run/cri-dockerd.sock", true, true, true, inventory.ViaCRIDockerd, "cri-dockerd"},
		{"containerd", "v1.30.14", "containerd://1.7.24", "unix:///run/containerd/containerd.sock", true, false, false, "", ""},
		{"stale", "v1.29.4", "containerd://1.6.20", "/var/run/dockershim.sock", false, false, false, "", "stale"},
	}
	for _, nc := range cases {
		name := group + "-" + nc.name
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-group": group},
			Annotations: map[string]string{inventory.CRISocketAnnotation: nc.socket}}, Spec: corev1.NodeSpec{Unschedulable: nc.unschedulable}}
		created, err := e.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		status := corev1.ConditionFalse
		if nc.ready {
			status = corev1.ConditionTrue
		}
		created.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
		created.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: nc.kubelet, ContainerRuntimeVersion: nc.runtime, OperatingSystem: "linux", Architecture: "amd64", OSImage: "Debian GNU/Linux 12 (bookworm)"}
		created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.2.3"}}
		if _, err := e.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sel := "e2e-group=" + group

	t.Run("json", func(t *testing.T) {
		r := run(t, "", e.kube("nodes", "-l", sel, "-o", "json", "--chunk-size", "1")...)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.errOut)
		}
		var l report.NodeList
		if err := json.Unmarshal([]byte(r.out), &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Nodes) != len(cases) {
			t.Fatalf("%d nodes, want %d: %s", len(l.Nodes), len(cases), r.out)
		}
		byName := map[string]inventory.NodeRuntime{}
		for _, n := range l.Nodes {
			byName[n.Name] = n
		}
		for _, nc := range cases {
			n := byName[group+"-"+nc.name]
			rt, ver, _ := strings.Cut(nc.runtime, "://")
			if n.Runtime != rt || n.RuntimeVersion != ver || n.KubeletVersion != nc.kubelet || n.CRISocket != nc.socket ||
				n.NeedsMigration != nc.wantMigrate || n.Via != nc.wantVia || n.OS != "linux" || n.InternalIP != "10.1.2.3" {
				t.Errorf("%s: %+v", nc.name, n)
			}
			if nc.wantNote != "" && !strings.Contains(strings.Join(n.Notes, " "), nc.wantNote) {
				t.Errorf("%s: notes %q lack %q", nc.name, n.Notes, nc.wantNote)
			}
			wantStatus := map[bool]string{true: "Ready", false: "NotReady"}[nc.ready]
			if nc.unschedulable {
				wantStatus += ",SchedulingDisabled"
			}
			if n.Status != wantStatus {
				t.Errorf("%s: status %q, want %q", nc.name, n.Status, wantStatus)
			}
		}
		if l.Summary.Nodes != 4 || l.Summary.ByRuntime["docker"] != 2 || l.Summary.ByRuntime["containerd"] != 2 || l.Summary.NeedsMigration != 2 {
			t.Errorf("summary %+v", l.Summary)
		}
	})
	t.Run("table", func(t *testing.T) {
		r := run(t, "", e.kube("nodes", "-l", sel)...)
		for _, want := range []string{"NAME", "CONTAINER-RUNTIME", "CRI-SOCKET", "MIGRATE", "docker://20.10.24", "4 nodes: 2 containerd, 2 docker; 2 need migrating"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("table lacks %q:\n%s", want, r.out)
			}
		}
		if strings.Contains(r.out, "OS-IMAGE") {
			t.Errorf("plain table has wide columns:\n%s", r.out)
		}
	})
	t.Run("wide", func(t *testing.T) {
		r := run(t, "", e.kube("nodes", "-l", sel, "-o", "wide")...)
		for _, want := range []string{"OS-IMAGE", "INTERNAL-IP", "VIA", "dockershim", "Debian GNU/Linux 12 (bookworm)", "linux/amd64"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("wide table lacks %q:\n%s", want, r.out)
			}
		}
	})
	t.Run("yaml", func(t *testing.T) {
		r := run(t, "", e.kube("nodes", "-l", sel, "-o", "yaml")...)
		var l report.NodeList
		if err := yaml.UnmarshalStrict([]byte(r.out), &l); err != nil || len(l.Nodes) != 4 {
			t.Errorf("yaml: %v, %d nodes\n%s", err, len(l.Nodes), r.out)
		}
	})
	t.Run("by name", func(t *testing.T) {
		r := run(t, "", e.kube("nodes", group+"-shim", "-o", "json")...)
		var l report.NodeList
		if err := json.Unmarshal([]byte(r.out), &l); err != nil || len(l.Nodes) != 1 || l.Nodes[0].Name != group+"-shim" {
			t.Errorf("by name: %v %s", err, r.out)
		}
	})
	t.Run("unknown node", func(t *testing.T) {
		r := run(t, "", e.kube("nodes", group+"-shim", "no-such-node")...)
		if r.code != 2 || !strings.Contains(r.errOut, "node not found: no-such-node") || r.out != "" {
			t.Errorf("exit %d, stderr %q, stdout %q", r.code, r.errOut, r.out)
		}
	})
}
