package nodeswitch

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/transport"
)

// TestPreviewWindows: a Windows node's dry run is its PowerShell plan, made
// from the Node alone (no transport is opened: there is no shell to reach),
// and carried in the one dry-run value; a refused target and a Linux node
// whose transport cannot be opened are errors.
func TestPreviewWindows(t *testing.T) {
	node := func(name, os, kubelet string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OperatingSystem: os, KubeletVersion: kubelet,
				ContainerRuntimeVersion: "docker://20.10.24"}}}
	}
	client := fake.NewClientset(node("win-1", "windows", "v1.29.1"), node("win-2", "windows", "v1.31.4"), node("linux-1", "linux", "v1.29.1"))
	errOpen := errors.New("no way to the node")
	opened := 0
	open := func(context.Context) (transport.Transport, error) { opened++; return nil, errOpen }
	tests := []struct {
		name, node, target, containerd string
		wantContainerd, wantKubelet    string
		wantErr                        string
		wantOpened                     int
	}{
		// containerd's RELEASES.md lists 2.x for Kubernetes 1.30 and later only.
		{name: "windows 1.29: containerd 1.7", node: "win-1", target: nodeplan.Containerd, wantContainerd: "1.7.34", wantKubelet: "1.29.1"},
		{name: "windows 1.31: containerd 2", node: "win-2", target: nodeplan.Containerd, wantContainerd: "2.2.7", wantKubelet: "1.31.4"},
		{name: "windows, containerd given", node: "win-2", target: nodeplan.Containerd, containerd: "1.7.20", wantContainerd: "1.7.20", wantKubelet: "1.31.4"},
		{name: "windows refuses cri-dockerd", node: "win-1", target: nodeplan.CRIDockerd, wantErr: "not supported on Windows"},
		{name: "linux opens its transport", node: "linux-1", target: nodeplan.Containerd, wantErr: errOpen.Error(), wantOpened: 1},
		{name: "unknown node", node: "nope", target: nodeplan.Containerd, wantErr: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opened = 0
			o := Options{Node: tt.node, Client: client, ContainerdVersion: tt.containerd, Settings: phases.Settings{Target: tt.target}}
			res, err := Preview(context.Background(), o, open)
			if opened != tt.wantOpened {
				t.Errorf("transport opened %d times, want %d", opened, tt.wantOpened)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := res.Windows
			if res.OS != nodeplan.Windows || res.Node != tt.node || res.Target != nodeplan.Containerd || w == nil || len(res.Phases) != 0 {
				t.Fatalf("result %+v, want a Windows plan of %s", res, tt.node)
			}
			if w.Containerd != tt.wantContainerd || w.Kubelet != tt.wantKubelet {
				t.Errorf("containerd %s, kubelet %s; want %s, %s", w.Containerd, w.Kubelet, tt.wantContainerd, tt.wantKubelet)
			}
			if !strings.Contains(w.Script, "containerd-"+tt.wantContainerd) || len(w.Steps) == 0 {
				t.Errorf("script does not install containerd %s, or no steps:\n%s", tt.wantContainerd, w.Script)
			}
		})
	}
}
