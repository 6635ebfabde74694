package lab

import (
	"context"
	"fmt"
	"github.com/unshim/unshim/pkg/inventory"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/log"
)

// testWriter sends a logger's lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestNodeRunsPodsOnDocker brings up a lab of its own with one node, checks
// that the node is a kubeadm-style Docker node that runs a pod whose logs the
// apiserver serves, then takes the lab down and checks nothing is left.
func TestNodeRunsPodsOnDocker(t *testing.T) {
	if err := CheckNodePrereqs(); err != nil {
		testutil.Missing(t, "lab nodes: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(filepath.Dir(DefaultDir()), "unshim-lab-nodetest-")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l, err := Up(ctx, Options{Dir: dir, Nodes: 1, Logger: log.New(testWriter{t}, 1)})
	if err != nil {
		t.Fatalf("lab up --nodes 1: %v", err)
	}
	t.Logf("lab with one node up in %s", time.Since(start).Round(time.Second))
	down := false
	t.Cleanup(func() {
		if !down {
			if err := l.Down(); err != nil {
				t.Errorf("lab down: %v", err)
			}
		}
	})

	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.Node(nodeName(1))
	if err != nil {
		t.Fatal(err)
	}
	if alive, dead := l.Running(); len(dead) > 0 || !strings.Contains(strings.Join(alive, ","), "node/"+n.Name) {
		t.Errorf("Running() = %v alive, %v stopped; want node/%s alive", alive, dead, n.Name)
	}
	t.Run("node is a kubeadm-style Docker node", func(t *testing.T) {
		checkDockerNode(ctx, t, c, n)
	})
	t.Run("pod runs on Docker and its logs are served", func(t *testing.T) {
		checkPod(ctx, t, c, n, "lab-busybox")
	})

	// Down must leave no process of the lab and nothing mounted.
	down = true
	mountedRun := l.NspawnRunMounted
	if err := l.Down(); err != nil {
		t.Fatalf("lab down: %v", err)
	}
	for _, p := range l.Processes {
		if processAlive(p.PID, p.Name) {
			t.Errorf("%s (pid %d) still runs after lab down", p.Name, p.PID)
		}
	}
	if n.nspawnAlive() || n.leaderAlive() {
		t.Errorf("node %s (nspawn pid %d, systemd pid %d) still runs after lab down", n.Name, n.PID, n.LeaderPID)
	}
	if procs := processesRootedIn(n.Root); len(procs) > 0 {
		t.Errorf("processes still run in the node's root after lab down: %v", procs)
	}
	if mounts, err := MountsUnder(dir); err != nil || len(mounts) > 0 {
		t.Errorf("mounts left under %s: %v (%v)", dir, mounts, err)
	}
	// The tmpfs goes with the last lab's machines: labs of other test
	// packages running at the same time may still use it.
	if mountedRun {
		for _, sub := range []string{"propagate", "unix-export"} {
			if _, err := os.Stat(filepath.Join(nspawnRunDir, sub, n.Machine)); err == nil {
				t.Errorf("%s/%s/%s left after lab down", nspawnRunDir, sub, n.Machine)
			}
		}
		// Another lab stopping at this moment unmounts it a little later.
		deadline := time.Now().Add(15 * time.Second)
		for {
			mounts, _ := MountsUnder(nspawnRunDir)
			if len(mounts) == 0 || nspawnRunInUse() {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s still mounted after lab down, and no machine uses it", nspawnRunDir)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab directory %s still exists (%v)", dir, err)
	}
}

func checkDockerNode(ctx context.Context, t *testing.T, c kubernetes.Interface, n *Node) {
	node, err := c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nodeReady(node) {
		t.Errorf("node %s is not Ready: %+v", n.Name, node.Status.Conditions)
	}
	info := node.Status.NodeInfo
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "docker://20.10.") {
		t.Errorf("containerRuntimeVersion = %q, want docker://20.10.x", info.ContainerRuntimeVersion)
	}
	if info.KubeletVersion != NodeKubeletVersion {
		t.Errorf("kubeletVersion = %q, want %s", info.KubeletVersion, NodeKubeletVersion)
	}
	if got := node.Annotations[inventory.CRISocketAnnotation]; got != DockershimSocket {
		t.Errorf("annotation %s = %q, want %s", inventory.CRISocketAnnotation, got, DockershimSocket)
	}
	flags, err := n.Run(ctx, "cat", KubeadmFlagsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(flags), "--container-runtime=docker") || !strings.Contains(string(flags), "--pod-infra-container-image="+PauseImage) {
		t.Errorf("%s = %q", KubeadmFlagsPath, flags)
	}
	unit, err := n.Run(ctx, "systemctl", "cat", "kubelet.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env") {
		t.Errorf("kubelet.service does not read kubeadm-flags.env:\n%s", unit)
	}
	runtime, err := n.Run(ctx, "docker", "info", "--format", "{{.DefaultRuntime}}")
	if err != nil {
		t.Fatal(err)
	}
	hasCap, err := HasCapSysResource()
	if err != nil {
		t.Fatal(err)
	}
	want := "runc"
	if !hasCap {
		want = RuntimeWrapperName
	}
	if got := strings.TrimSpace(string(runtime)); got != want {
		t.Errorf("Docker's default runtime = %q, want %q (CAP_SYS_RESOURCE: %v)", got, want, hasCap)
	}
}

func checkPod(ctx context.Context, t *testing.T, c kubernetes.Interface, n *Node, name string) {
	const ns, greeting = "default", "hello from a lab node"
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			// The lab runs no scheduler.
			NodeName:                      n.Name,
			AutomountServiceAccountToken:  &no,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name:            "busybox",
				Image:           BusyboxImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", fmt.Sprintf("echo %s; exec sleep 3600", greeting)},
			}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodRunning {
			t.Logf("pod %s Running on %s, IP %s", name, p.Spec.NodeName, p.Status.PodIP)
			break
		}
		if time.Now().After(deadline) {
			journal, _ := n.Run(ctx, "journalctl", "--no-pager", "--lines=40", "--unit=kubelet.service")
			t.Fatalf("pod %s not Running after 2m: phase %s, %+v\nkubelet:\n%s", name, p.Status.Phase, p.Status.ContainerStatuses, journal)
		}
		time.Sleep(time.Second)
	}
	var logs []byte
	var err error
	for i := 0; i < 20; i++ {
		logs, err = c.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err == nil && strings.Contains(string(logs), greeting) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(logs), greeting) {
		t.Errorf("pod logs through the apiserver = %q, %v; want %q", logs, err, greeting)
	}
	// dockershim names containers k8s_CONTAINER_POD_NAMESPACE_UID_ATTEMPT; POD is the sandbox.
	ps, err := n.Run(ctx, "docker", "ps", "--format", "{{.Image}} {{.Names}}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ps), " k8s_busybox_"+name+"_"+ns+"_") || !strings.Contains(string(ps), PauseImage+" k8s_POD_"+name+"_"+ns+"_") {
		t.Errorf("docker ps on the node does not show the pod:\n%s", ps)
	}
}

// processesRootedIn lists the processes of this machine whose root directory is root.
func processesRootedIn(root string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		r, err := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		if err == nil && (r == root || strings.HasPrefix(r, root+"/")) {
			out = append(out, e.Name())
		}
	}
	return out
}
