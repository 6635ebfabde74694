package lab

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/log"
)

func TestNodeShapeValidate(t *testing.T) {
	tests := []struct {
		name    string
		shape   NodeShape
		wantErr string
	}{
		{name: "defaults: dockershim on 1.23", shape: NodeShape{}},
		{name: "cri-dockerd on 1.23", shape: NodeShape{Shape: ShapeCRIDockerd}},
		{name: "cri-dockerd on the newest kubelet", shape: NodeShape{Shape: ShapeCRIDockerd, KubeletVersion: NewestKubeletVersion}},
		{name: "dockershim on 1.24 does not exist", shape: NodeShape{Shape: ShapeDockershim, KubeletVersion: "v1.24.17"}, wantErr: "needs a kubelet of 1.23 or older"},
		{name: "unknown shape", shape: NodeShape{Shape: "containerd"}, wantErr: `node shape "containerd"`},
		{name: "bad version", shape: NodeShape{Shape: ShapeCRIDockerd, KubeletVersion: "1.30"}, wantErr: "want v1.MINOR.PATCH"},
		{name: "cri-dockerd before CRI", shape: NodeShape{Shape: ShapeCRIDockerd, KubeletVersion: "v1.19.16"}, wantErr: "1.20 or newer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.shape.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestKubeadmFlagsPerShape checks the kubelet flags of each shape against
// what kubeadm and the Kubernetes docs give such a node.
func TestKubeadmFlagsPerShape(t *testing.T) {
	tests := []struct {
		name       string
		cfg        nodeConfig
		want, not  []string
		wantSocket string
	}{
		{name: "dockershim 1.23", cfg: nodeConfig{Shape: ShapeDockershim, KubeletVersion: "v1.23.17"},
			want: []string{"--container-runtime=docker", "--network-plugin=cni"}, not: []string{"--container-runtime-endpoint"}, wantSocket: DockershimSocket},
		{name: "cri-dockerd 1.23: remote runtime", cfg: nodeConfig{Shape: ShapeCRIDockerd, KubeletVersion: "v1.23.17"},
			want: []string{"--container-runtime=remote", "--container-runtime-endpoint=" + CRIDockerdEndpoint}, not: []string{"--container-runtime=docker"}, wantSocket: CRIDockerdEndpoint},
		{name: "cri-dockerd 1.30: no --container-runtime", cfg: nodeConfig{Shape: ShapeCRIDockerd, KubeletVersion: "v1.30.14"},
			want: []string{"--container-runtime-endpoint=" + CRIDockerdEndpoint}, not: []string{"--container-runtime=", "--network-plugin"}, wantSocket: CRIDockerdEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := string(tt.cfg.kubeadmFlags())
			for _, w := range tt.want {
				if !strings.Contains(flags, w) {
					t.Errorf("kubeadm-flags.env %q lacks %s", flags, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(flags, n) {
					t.Errorf("kubeadm-flags.env %q has %s", flags, n)
				}
			}
			if got := tt.cfg.criSocket(); got != tt.wantSocket {
				t.Errorf("cri-socket annotation %q, want %q", got, tt.wantSocket)
			}
		})
	}
}

// TestNodeShapesRunPods brings up a lab of its own with a node of each
// cri-dockerd shape: kubelet 1.23 with --container-runtime=remote, and the
// newest kubelet the lab builds, which speaks only CRI v1 (bridged by the
// lab's cri-dockerd to dockershim's v1alpha2). Each must be Ready on
// docker://, recorded with its shape, and run a pod whose logs are served.
func TestNodeShapesRunPods(t *testing.T) {
	if err := CheckNodePrereqs(); err != nil {
		testutil.Missing(t, "lab nodes: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(filepath.Dir(DefaultDir()), "unshim-lab-shapetest-")
	if err != nil {
		t.Fatal(err)
	}
	shapes := []NodeShape{{Shape: ShapeCRIDockerd}, {Shape: ShapeCRIDockerd, KubeletVersion: NewestKubeletVersion}}
	var l *Lab
	firstPID := 0
	for i, shape := range shapes {
		// The second call also asks for the controllers: they are added to
		// the running lab, whose first node goes on as it was.
		if l, err = Up(ctx, Options{Dir: dir, Nodes: i + 1, NodeShape: shape, Controllers: i == 1, Logger: log.New(testWriter{t}, 1)}); err != nil {
			t.Fatalf("lab up --nodes %d --node-shape %s --kubelet-version %s: %v", i+1, shape.Shape, shape.KubeletVersion, err)
		}
		if i == 0 {
			firstPID = l.Nodes[0].LeaderPID
		}
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if l.Nodes[0].LeaderPID != firstPID {
		t.Errorf("lab up --controllers on a running lab restarted its first node (pid %d, was %d)", l.Nodes[0].LeaderPID, firstPID)
	}
	if running, dead := l.Running(); !l.Controllers || len(dead) > 0 || !slices.Contains(running, "kube-controller-manager") {
		t.Errorf("lab up --controllers on a running lab: controllers %t, running %v, dead %v", l.Controllers, running, dead)
	}
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Nodes) != len(shapes) {
		t.Fatalf("lab has %d nodes, want %d", len(l.Nodes), len(shapes))
	}
	for i, n := range l.Nodes {
		shape := shapes[i]
		shape.complete()
		t.Run(n.Name+" "+shape.KubeletVersion, func(t *testing.T) {
			if n.ShapeName() != ShapeCRIDockerd || n.Kubelet() != shape.KubeletVersion {
				t.Errorf("node recorded as %s, kubelet %s; want %s, %s", n.ShapeName(), n.Kubelet(), ShapeCRIDockerd, shape.KubeletVersion)
			}
			node, err := c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !nodeReady(node) || !strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "docker://") || node.Status.NodeInfo.KubeletVersion != shape.KubeletVersion {
				t.Errorf("node %s: ready %t, runtime %s, kubelet %s", n.Name, nodeReady(node), node.Status.NodeInfo.ContainerRuntimeVersion, node.Status.NodeInfo.KubeletVersion)
			}
			if got := node.Annotations[inventory.CRISocketAnnotation]; got != CRIDockerdEndpoint {
				t.Errorf("cri-socket annotation %q, want %s", got, CRIDockerdEndpoint)
			}
			// cri-dockerd runs from its socket unit, with the lab's flags.
			if out, err := n.Run(ctx, "systemctl", "is-active", "cri-docker.socket", "cri-docker.service"); err != nil {
				t.Errorf("cri-dockerd units: %v\n%s", err, out)
			}
			ps, err := n.Run(ctx, "ps", "-eo", "args")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(ps), "/usr/bin/cri-dockerd --container-runtime-endpoint fd:// --pod-infra-container-image="+PauseImage) {
				t.Errorf("cri-dockerd does not run from its unit with the lab's flags:\n%s", ps)
			}
			checkPod(ctx, t, c, n, "lab-busybox-"+n.Name)
		})
	}
}
