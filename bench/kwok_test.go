package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/log"
)

// kwok's node annotation: the controller started with
// --manage-nodes-with-annotation-selector=kwokAnnotation=fake manages only
// these nodes (kwok docs, "kwok out of cluster").
const (
	kwokAnnotation = "kwok.x-k8s.io/node"
	kwokNodePrefix = "kwok-node-"
	kwokLabel      = "unshim.io/bench"
	kwokNamespace  = "kwok-bench"
)

// startKWOK builds (once, cached) and starts kwok against the lab's
// apiserver, managing the nodes annotated kwok.x-k8s.io/node=fake with its
// default stages (node initialize and heartbeat with Lease, pod ready and
// delete). It is stopped when the benchmark ends.
func startKWOK(ctx context.Context, b *testing.B, l *lab.Lab) {
	b.Helper()
	bin, err := lab.EnsureKWOK(ctx, log.New(os.Stderr, 0))
	if err != nil {
		b.Fatal(err)
	}
	stages, err := lab.EnsureKWOKStages(ctx)
	if err != nil {
		b.Fatal(err)
	}
	logf := filepath.Join(b.TempDir(), "kwok.log")
	out, err := os.Create(logf)
	if err != nil {
		b.Fatal(err)
	}
	// kwok plays 4 pod stages at a time by default (podPlayStageParallelism),
	// so a wave's evicted pods queue there for their deletion, a kubelet's
	// work that each node does for itself: more at once here, and for the
	// nodes' heartbeats too.
	opts := filepath.Join(b.TempDir(), "kwok-options.yaml")
	if err := os.WriteFile(opts, []byte(`apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 64
  nodePlayStageParallelism: 16
  nodeLeaseParallelism: 16
`), 0o644); err != nil {
		b.Fatal(err)
	}
	// kwok's default stages, not a user's ~/.kwok/kwok.yaml.
	cmd := exec.Command(bin, "--kubeconfig", l.Kubeconfig, "--config", stages, "--config", opts,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", kwokAnnotation+"=fake",
		"--node-lease-duration-seconds", "40", "--cidr", "10.244.0.1/16", "--node-ip", "10.99.0.1", "--v", "WARN")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start kwok: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		data, _ := os.ReadFile(logf)
		b.Fatalf("kwok exited: %s\n%s", cmd.ProcessState, tailLines(string(data), 10))
	case <-time.After(3 * time.Second):
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
		if b.Failed() {
			if data, err := os.ReadFile(logf); err == nil {
				b.Logf("kwok's log (tail):\n%s", tailLines(string(data), 30))
			}
		}
	})
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func kwokNodeName(i int) string { return fmt.Sprintf("%s%05d", kwokNodePrefix, i) }

// parallel runs fn(i) for i in [0, n) on workers goroutines; the first error wins.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// kwokNodes creates n Docker nodes for kwok to run (kubeadm's cri-socket
// annotation, kubelet v1.23.17 on docker://20.10.24, zone and pool labels),
// removing the nodes of an earlier run first; every podEvery-th node gets a
// DaemonSet pod and a ReplicaSet's pod that the drain evicts (kwok makes
// some 15 pods a second Running here: at 5,000 nodes only a sample has
// pods). It waits until kwok has every node Ready and every pod Running.
func kwokNodes(ctx context.Context, b *testing.B, c kubernetes.Interface, n, podEvery int) {
	b.Helper()
	cleanupKWOK(ctx, b, c)
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kwokNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	// The ServiceAccount admission wants the namespace's default account.
	if _, err := c.CoreV1().ServiceAccounts(kwokNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	start := time.Now()
	err := parallel(n, 16, func(i int) error {
		name := kwokNodeName(i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name,
				Annotations: map[string]string{kwokAnnotation: "fake", "kubeadm.alpha.kubernetes.io/cri-socket": lab.DockershimSocket},
				Labels: map[string]string{kwokLabel: "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%3), "unshim.io/pool": fmt.Sprintf("pool-%d", i%2)}},
			// kwok's own advice: a taint keeps real workloads off fake nodes.
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: kwokAnnotation, Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.99.%d.%d", i/250, 1+i%250)}, {Type: corev1.NodeHostName, Address: name}},
				NodeInfo: corev1.NodeSystemInfo{MachineID: simMachineID(name),
					ContainerRuntimeVersion: simDockerRuntime, KubeletVersion: simKubeletVersion,
					OperatingSystem: "linux", Architecture: "amd64", OSImage: "Ubuntu 20.04.6 LTS", KernelVersion: "5.15.0-91-generic"}},
		}
		if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ds := agentDaemonSet(ctx, b, c, (n+podEvery-1)/podEvery)
	grace := int64(1)
	tol := []corev1.Toleration{{Key: kwokAnnotation, Operator: corev1.TolerationOpExists}}
	pod := func(name, node, kind, owner string, uid types.UID) *corev1.Pod {
		ctl := true
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kwokNamespace, Labels: map[string]string{"app": owner},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner, UID: uid, Controller: &ctl}}},
			// Host network: verify checks logs and exec only through pods
			// with their own network, and a kwok node has no stream server.
			Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, Tolerations: tol, TerminationGracePeriodSeconds: &grace,
				AutomountServiceAccountToken: new(bool),
				Containers:                   []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.6"}}},
		}
	}
	err = parallel(n, 16, func(i int) error {
		node := kwokNodeName(i)
		if i%podEvery == 0 {
			if _, err := c.CoreV1().Pods(kwokNamespace).Create(ctx, pod("agent-"+node, node, "DaemonSet", "agent", ds.UID), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create pod on %s: %w", node, err)
			}
			if _, err := c.CoreV1().Pods(kwokNamespace).Create(ctx, pod("web-"+node, node, "ReplicaSet", "web-5d8f7c9b4", "5d8f7c9b-0000-4000-8000-000000000001"), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create pod on %s: %w", node, err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d nodes and their pods in %s", n, time.Since(start).Round(time.Millisecond))
	waitKWOK(ctx, b, c, n, start)
}

// agentDaemonSet is the pods' DaemonSet, its status set as its controller
// (not running in the bench lab) would: every pod ready.
func agentDaemonSet(ctx context.Context, b *testing.B, c kubernetes.Interface, n int) *appsv1.DaemonSet {
	lbl := map[string]string{"app": "agent"}
	ds, err := c.AppsV1().DaemonSets(kwokNamespace).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: lbl}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: lbl},
			Spec: corev1.PodSpec{NodeSelector: map[string]string{kwokLabel: "kwok"}, HostNetwork: true,
				Tolerations: []corev1.Toleration{{Key: kwokAnnotation, Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.6"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: int32(n), CurrentNumberScheduled: int32(n),
		NumberReady: int32(n), NumberAvailable: int32(n), UpdatedNumberScheduled: int32(n)}
	if ds, err = c.AppsV1().DaemonSets(kwokNamespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	return ds
}

// waitKWOK waits until kwok reports every node Ready and every pod Running.
func waitKWOK(ctx context.Context, b *testing.B, c kubernetes.Interface, n int, start time.Time) {
	deadline := time.Now().Add(15 * time.Minute)
	for {
		ready, running, pending := 0, 0, 0
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: kwokLabel + "=kwok"})
		if err != nil {
			b.Fatal(err)
		}
		for i := range nodes.Items {
			if ready1(&nodes.Items[i]) {
				ready++
			}
		}
		pods, err := c.CoreV1().Pods(kwokNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			} else {
				pending++
			}
		}
		if ready == n && pending == 0 && running > 0 {
			b.Logf("kwok: %d nodes Ready, %d pods Running, %s after the first create", ready, running, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("kwok: %d of %d nodes Ready, %d pods Running, %d not", ready, n, running, pending)
		}
		time.Sleep(2 * time.Second)
	}
}

func ready1(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// cleanupKWOK removes the nodes, pods and Leases of an earlier run.
func cleanupKWOK(ctx context.Context, b *testing.B, c kubernetes.Interface) {
	b.Helper()
	zero := int64(0)
	del := metav1.DeleteOptions{GracePeriodSeconds: &zero}
	sel := metav1.ListOptions{LabelSelector: kwokLabel + "=kwok"}
	if err := c.CoreV1().Nodes().DeleteCollection(ctx, del, sel); err != nil {
		b.Fatal(err)
	}
	if err := c.CoreV1().Pods(kwokNamespace).DeleteCollection(ctx, del, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		b.Fatal(err)
	}
	if err := c.AppsV1().DaemonSets(kwokNamespace).Delete(ctx, "agent", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		b.Fatal(err)
	}
	leases, err := c.CoordinationV1().Leases(corev1.NamespaceNodeLease).List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range leases.Items {
		if strings.HasPrefix(l.Name, kwokNodePrefix) {
			_ = c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, l.Name, metav1.DeleteOptions{})
		}
	}
}
