package runtimelabel

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name, runtime, kubelet, socket string, labels map[string]string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: runtime, KubeletVersion: kubelet}}}
	if socket != "" {
		n.Annotations = map[string]string{"kubeadm.alpha.kubernetes.io/cri-socket": socket}
	}
	return n
}

func TestValue(t *testing.T) {
	tests := []struct {
		name string
		n    *corev1.Node
		want string
	}{
		{"dockershim", node("a", "docker://20.10.24", "v1.23.17", "/var/run/dockershim.sock", nil), Docker},
		{"old kubelet, no annotation", node("a", "docker://20.10.24", "v1.22.0", "", nil), Docker},
		{"cri-dockerd by socket", node("a", "docker://24.0.9", "v1.23.17", "unix:///var/run/cri-dockerd.sock", nil), CRIDockerd},
		{"docker on a new kubelet is cri-dockerd", node("a", "docker://24.0.9", "v1.28.0", "", nil), CRIDockerd},
		{"containerd", node("a", "containerd://1.7.24", "v1.30.14", "", nil), Containerd},
		{"cri-o", node("a", "cri-o://1.30.0", "v1.30.14", "", nil), ""},
		{"not reported", node("a", "", "", "", nil), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Value(tt.n); got != tt.want {
				t.Errorf("Value = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSync(t *testing.T) {
	c := fake.NewClientset(
		node("right", "containerd://1.7.24", "v1.30.14", "", map[string]string{Key: Containerd}),
		node("stale", "containerd://1.7.24", "v1.30.14", "", map[string]string{Key: Docker}),
		node("unlabelled", "docker://20.10.24", "v1.23.17", "", nil),
		node("crio", "cri-o://1.30.0", "v1.30.14", "", map[string]string{Key: Docker}),
		node("crio-clean", "cri-o://1.30.0", "v1.30.14", "", nil),
	)
	ctx := t.Context()
	dry, err := Sync(ctx, c, "", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Change{
		"stale":      {Node: "stale", From: Docker, To: Containerd},
		"unlabelled": {Node: "unlabelled", From: "", To: Docker},
		"crio":       {Node: "crio", From: Docker, To: ""},
	}
	if len(dry) != len(want) {
		t.Fatalf("changes %+v, want %+v", dry, want)
	}
	for _, ch := range dry {
		if want[ch.Node] != ch {
			t.Errorf("change %+v, want %+v", ch, want[ch.Node])
		}
	}
	if n, _ := c.CoreV1().Nodes().Get(ctx, "stale", metav1.GetOptions{}); n.Labels[Key] != Docker {
		t.Fatal("dry run changed a node")
	}
	if _, err := Sync(ctx, c, "", 0, false); err != nil {
		t.Fatal(err)
	}
	for name, ch := range want {
		n, _ := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		got, has := n.Labels[Key]
		if got != ch.To || has != (ch.To != "") {
			t.Errorf("node %s label %q (present %v), want %q", name, got, has, ch.To)
		}
	}
	if again, _ := Sync(ctx, c, "", 0, true); len(again) != 0 {
		t.Errorf("after sync, still to change: %+v", again)
	}
}
