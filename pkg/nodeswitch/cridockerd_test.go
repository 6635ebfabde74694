package nodeswitch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodecheck"
	"github.com/unshim/unshim/pkg/nodeplan"
)

const cdNS = "shapes"

// cdFixture is a lab with a node of each Docker shape: dockershim (kubelet
// 1.23), cri-dockerd with kubelet 1.23 (--container-runtime=remote), and
// cri-dockerd with the newest kubelet the lab builds (CRI v1 only).
type cdFixture struct {
	l  *lab.Lab
	c  kubernetes.Interface
	rc *rest.Config
	// shim, cd123, cdNew are the nodes of each shape.
	shim, cd123, cdNew *lab.Node
	// mc and mrc act as a user holding only the shipped roles; every
	// switch of the test runs as that user.
	mc  kubernetes.Interface
	mrc *rest.Config
}

func newCDFixture(ctx context.Context, t *testing.T) *cdFixture {
	logger := log.New(testWriter{t}, 0)
	l := labtest.UpForTest(ctx, t, "cridockerd", lab.Options{Nodes: 1, Controllers: true, Logger: logger})
	for i, shape := range []lab.NodeShape{
		{Shape: lab.ShapeCRIDockerd},
		{Shape: lab.ShapeCRIDockerd, KubeletVersion: lab.NewestKubeletVersion},
	} {
		if err := l.AddNodes(ctx, lab.Options{Nodes: 2 + i, Controllers: true, Logger: logger, NodeShape: shape}); err != nil {
			t.Fatalf("add a %s node (kubelet %s): %v", shape.Shape, shape.KubeletVersion, err)
		}
	}
	f := &cdFixture{l: l, shim: l.Nodes[0], cd123: l.Nodes[1], cdNew: l.Nodes[2]}
	var err error
	if f.c, err = l.Client(); err != nil {
		t.Fatal(err)
	}
	if f.rc, err = l.RESTConfig(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cdNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := lab.EnsureServiceAccount(ctx, f.c, cdNS); err != nil {
		t.Fatal(err)
	}
	fx := &fixture{c: f.c, rc: f.rc}
	fx.asMigrator(ctx, t)
	f.mc, f.mrc = fx.mc, fx.mrc
	// A DaemonSet on every node.
	_, err = f.c.AppsV1().DaemonSets(cdNS).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels("agent")},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels("agent")}, Spec: podSpec(busybox)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.waitPods(ctx, t, "agent on every node", func(pods []corev1.Pod) bool { return count(pods, "agent", "") == len(l.Nodes) })
	return f
}

func (f *cdFixture) options(t *testing.T, n *lab.Node, target string) Options {
	return Options{
		Node: n.Name, Client: f.mc, RESTConfig: f.mrc, Transport: n.Transport(), Logger: log.New(testWriter{t}, 0),
		Holder: "test", LockTTL: switchTTL,
		Settings: phases.Settings{Target: target, DrainTimeout: 3 * time.Minute, VerifyTimeout: 3 * time.Minute, Progress: testWriter{t}},
	}
}

func (f *cdFixture) waitPods(ctx context.Context, t *testing.T, what string, ok func([]corev1.Pod) bool) {
	t.Helper()
	waitPodsIn(ctx, t, f.c, cdNS, what, ok)
}

// workload puts on node n, while the other nodes are cordoned, a
// Deployment web-N of two replicas under a PDB of minAvailable 1 (so the
// second eviction waits for a replacement elsewhere), and a bare pod solo-N
// whose image only n's Docker has.
func (f *cdFixture) workload(ctx context.Context, t *testing.T, n *lab.Node) (web, solo string) {
	web, solo = "web-"+n.Name, "solo-"+n.Name
	img := "unshim-lab/only-on-" + n.Name + ":1"
	if _, err := n.Run(ctx, "docker", "tag", busybox, img); err != nil {
		t.Fatal(err)
	}
	for _, o := range f.l.Nodes {
		if o != n {
			setUnschedulable(ctx, t, f.c, o.Name, true)
		}
	}
	replicas := int32(2)
	_, err := f.c.AppsV1().Deployments(cdNS).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: web},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels(web)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(web)}, Spec: podSpec(busybox)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	minAvail := intstr.FromInt32(1)
	_, err = f.c.PolicyV1().PodDisruptionBudgets(cdNS).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: web},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvail, Selector: &metav1.LabelSelector{MatchLabels: labels(web)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := podSpec(img)
	spec.NodeName = n.Name
	spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	if _, err := f.c.CoreV1().Pods(cdNS).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: solo, Labels: labels(solo)}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitPods(ctx, t, web+" and "+solo+" on "+n.Name, func(pods []corev1.Pod) bool {
		return count(pods, web, n.Name) == 2 && count(pods, solo, n.Name) == 1
	})
	for _, o := range f.l.Nodes {
		if o != n {
			setUnschedulable(ctx, t, f.c, o.Name, false)
		}
	}
	return web, solo
}

// switchWatched runs a switch of n to target while it samples the ready
// pods of the Deployment web, and fails the test if the PDB (minAvailable
// 1) was ever violated.
func (f *cdFixture) switchWatched(ctx context.Context, t *testing.T, o Options, web string) error {
	start := time.Now()
	err := f.watched(ctx, t, web, func() error { return Run(ctx, o, "") })
	t.Logf("switch of %s to %s: %s, %v", o.Node, o.Settings.Target, time.Since(start).Round(time.Second), err)
	return err
}

// watched runs run while it samples the ready pods of the Deployment web,
// and fails the test if the PDB (minAvailable 1) was ever violated.
func (f *cdFixture) watched(ctx context.Context, t *testing.T, web string, run func() error) error {
	var mu sync.Mutex
	minReady, samples := 99, 0
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			list, err := f.c.CoreV1().Pods(cdNS).List(wctx, metav1.ListOptions{LabelSelector: "app=" + web})
			if err == nil {
				mu.Lock()
				minReady, samples = min(minReady, count(list.Items, web, "")), samples+1
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	err := run()
	stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if minReady < 1 {
		t.Errorf("the PDB of %s (minAvailable 1) was violated: %d ready pods seen (%d samples)", web, minReady, samples)
	}
	return err
}

// healthy waits until n reports runtime want (docker or containerd), is
// Ready and schedulable with the cri-socket annotation ann, and runs its
// pods again: solo (whose image only the node's Docker had) with its logs
// and exec served, the DaemonSet's pod, and both replicas of web.
func (f *cdFixture) healthy(ctx context.Context, t *testing.T, n *lab.Node, want, ann, web, solo string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rt, ok, got := runtimeOf(ctx, t, f.c, n.Name)
		if strings.HasPrefix(rt, want+"://") && ok && got == ann {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: runtime %s, ready+schedulable %t, annotation %q; want %s://, true, %q", n.Name, rt, ok, got, want, ann)
		}
		time.Sleep(time.Second)
	}
	// The pods' statuses follow the kubelet's restart: wait until those on
	// n report containers of the runtime wanted.
	f.waitPods(ctx, t, "pods running on "+n.Name+" on "+want, func(pods []corev1.Pod) bool {
		for _, p := range pods {
			if p.Spec.NodeName == n.Name && p.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) > 0 &&
				!strings.HasPrefix(p.Status.ContainerStatuses[0].ContainerID, want+"://") {
				return false
			}
		}
		return count(pods, solo, n.Name) == 1 && count(pods, "agent", n.Name) == 1 && count(pods, web, "") == 2
	})
	// Ready can be the status of the kubelet before its restart: its
	// server may still be starting, so logs and exec get a minute.
	var logs []byte
	var out string
	var err, xerr error
	for end := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Second) {
		logs, err = f.c.CoreV1().Pods(cdNS).GetLogs(solo, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err == nil && strings.Contains(string(logs), "started") {
			fx := &fixture{c: f.c, rc: f.rc}
			if out, xerr = execInNS(ctx, fx, cdNS, solo, "echo", "exec-ok"); xerr == nil && strings.Contains(out, "exec-ok") {
				return
			}
		}
		if time.Now().After(end) {
			break
		}
	}
	if err != nil || !strings.Contains(string(logs), "started") {
		t.Errorf("logs of %s: %q, %v", solo, logs, err)
	} else {
		t.Errorf("exec in %s: %q, %v", solo, out, xerr)
	}
}

// execInNS is execIn for a namespace other than the switch test's.
func execInNS(ctx context.Context, f *fixture, namespace, pod string, cmd ...string) (string, error) {
	req := f.c.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "main", Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(f.rc, "POST", req.URL())
	if err != nil {
		return "", err
	}
	// One buffer each: client-go copies stdout and stderr in goroutines of
	// their own, and two bytes.Buffer.ReadFrom at once on one buffer lose
	// each other's bytes (an exec's output came back empty that way).
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	return out.String() + errOut.String(), err
}

// buildCRIDockerdDeb packs the lab's cri-dockerd as Mirantis's .deb packs
// the real one (package cri-dockerd: /usr/bin/cri-dockerd and the two units
// in /lib/systemd/system, as their deb packaging installs them), with
// dpkg-deb, so the switch's package path runs dpkg on a real node.
func buildCRIDockerdDeb(ctx context.Context, t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "pkg")
	files := map[string][]byte{
		"DEBIAN/control": []byte("Package: cri-dockerd\nVersion: 0.3.16~unshim-lab\nArchitecture: amd64\n" +
			"Maintainer: unshim lab <lab@unshim.invalid>\nDescription: the unshim lab's cri-dockerd stand-in\n"),
		"lib/systemd/system/" + nodeplan.CRIDockerdService: nodeplan.CRIDockerdServiceUnit(nodeplan.CRIDockerdBinary),
		"lib/systemd/system/" + nodeplan.CRIDockerdSocket:  nodeplan.CRIDockerdSocketUnit(),
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/cri-dockerd"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(dir, "cri-dockerd_0.3.16~unshim-lab_amd64.deb")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	return deb
}

func readNodeFile(ctx context.Context, t *testing.T, n *lab.Node, p string) (string, bool) {
	data, err := n.Transport().ReadFile(ctx, p)
	if err != nil {
		return "", false
	}
	return string(data), true
}

// TestCRIDockerdSwitches is issue 9 on real lab nodes: dockershim →
// cri-dockerd (installed from a bare binary, its units written by the
// switch) and its rollback; cri-dockerd with kubelet 1.23 → containerd,
// after a run interrupted in drain rolls back; cri-dockerd with the newest
// kubelet (CRI v1) → containerd, and its rollback. Each with a Deployment
// under a PDB, a DaemonSet and a pod whose image only Docker has, running
// after, logs and exec working, the PDB never violated.
func TestCRIDockerdSwitches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	f := newCDFixture(ctx, t)

	t.Run("inventory shows each shape", func(t *testing.T) {
		list, err := f.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		via := map[string]string{}
		for i := range list.Items {
			r := inventory.Describe(&list.Items[i])
			via[r.Name] = r.Via
		}
		want := map[string]string{f.shim.Name: inventory.ViaDockershim, f.cd123.Name: inventory.ViaCRIDockerd, f.cdNew.Name: inventory.ViaCRIDockerd}
		for n, w := range want {
			if via[n] != w {
				t.Errorf("inventory: %s via %q, want %q", n, via[n], w)
			}
		}
	})

	t.Run("node check on the cri-dockerd node: its docker.sock connection is expected", func(t *testing.T) {
		// unshim runs on the node itself, as `unshim node check` does on a real one.
		n := f.cd123
		bin := filepath.Join(n.Root, "usr/local/bin/unshim")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/unshim/unshim/cmd/unshim")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build unshim: %v\n%s", err, out)
		}
		out, err := n.Run(ctx, "/usr/local/bin/unshim", "node", "check", "-o", "json", "--fail-on", "none")
		if err != nil {
			t.Fatalf("node check: %v\n%s", err, out)
		}
		var res struct {
			Findings []check.Finding `json:"findings"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("node check output: %v\n%s", err, out)
		}
		seen := false
		for _, fd := range res.Findings {
			if fd.Rule == nodecheck.RuleSocketClient && strings.HasPrefix(fd.Object.Name, "cri-dockerd[") {
				seen = true
				if fd.Severity != check.SeverityInfo {
					t.Errorf("cri-dockerd's connection to docker.sock reported as %s: %s", fd.Severity, fd.Message)
				}
			}
		}
		if !seen {
			t.Errorf("node check did not see cri-dockerd's connection to docker.sock: %s", out)
		}
	})

	t.Run("dockershim to cri-dockerd, from a binary and from a .deb, each rolled back", func(t *testing.T) {
		n := f.shim
		web, solo := f.workload(ctx, t, n)
		flagsBefore, _ := readNodeFile(ctx, t, n, nodeplan.KubeadmFlagsFile)
		bin, err := lab.EnsureCRIDockerd(ctx, log.New(testWriter{t}, 0))
		if err != nil {
			t.Fatal(err)
		}
		deb := buildCRIDockerdDeb(ctx, t, bin)
		for _, src := range []struct {
			name, file string
			// unitsWritten: a bare binary brings no units, so the switch
			// writes them; the package brings its own.
			unitsWritten bool
		}{
			{name: "binary", file: bin, unitsWritten: true},
			{name: "deb", file: deb},
		} {
			t.Run(src.name, func(t *testing.T) {
				o := f.options(t, n, nodeplan.CRIDockerd)
				o.Settings.CRIDockerdPackage = src.file
				if err := f.switchWatched(ctx, t, o, web); err != nil {
					t.Fatalf("switch: %v", err)
				}
				f.healthy(ctx, t, n, "docker", nodeplan.CRIDockerdEndpoint, web, solo)
				flags, _ := readNodeFile(ctx, t, n, nodeplan.KubeadmFlagsFile)
				for _, w := range []string{"--container-runtime=remote", "--container-runtime-endpoint=" + nodeplan.CRIDockerdEndpoint} {
					if !strings.Contains(flags, w) {
						t.Errorf("kubeadm-flags.env after the switch lacks %s: %q", w, flags)
					}
				}
				if _, ok := readNodeFile(ctx, t, n, nodeplan.CRIDockerdServiceFile); ok != src.unitsWritten {
					t.Errorf("%s written by the switch: %t, want %t", nodeplan.CRIDockerdServiceFile, ok, src.unitsWritten)
				}
				_, pkgErr := n.Run(ctx, "dpkg-query", "--show", "cri-dockerd")
				if installed := pkgErr == nil; installed == src.unitsWritten {
					t.Errorf("package cri-dockerd installed: %t after a switch from a %s", installed, src.name)
				}
				// The drop-in hands cri-dockerd the kubelet's pause image and CNI.
				if dropIn, _ := readNodeFile(ctx, t, n, nodeplan.CRIDockerdDropIn); !strings.Contains(dropIn, "--pod-infra-container-image="+lab.PauseImage) || !strings.Contains(dropIn, "--network-plugin=cni") {
					t.Errorf("drop-in %s: %q", nodeplan.CRIDockerdDropIn, dropIn)
				}

				if err := Rollback(ctx, f.options(t, n, nodeplan.CRIDockerd)); err != nil {
					t.Fatalf("rollback: %v", err)
				}
				f.healthy(ctx, t, n, "docker", lab.DockershimSocket, web, solo)
				if flags, _ := readNodeFile(ctx, t, n, nodeplan.KubeadmFlagsFile); flags != flagsBefore {
					t.Errorf("kubeadm-flags.env not restored byte for byte:\n got  %q\n want %q", flags, flagsBefore)
				}
				for _, p := range []string{nodeplan.CRIDockerdBinary, nodeplan.CRIDockerdServiceFile, nodeplan.CRIDockerdSocketFile, "/lib/systemd/system/" + nodeplan.CRIDockerdService, nodeplan.CRIDockerdDropIn} {
					if _, ok := readNodeFile(ctx, t, n, p); ok {
						t.Errorf("%s left on the node after the rollback", p)
					}
				}
				if out, err := n.Run(ctx, "dpkg-query", "--show", "cri-dockerd"); err == nil {
					t.Errorf("package cri-dockerd still installed after the rollback: %s", out)
				}
				if out, err := n.Run(ctx, "pgrep", "-x", "cri-dockerd"); err == nil {
					t.Errorf("cri-dockerd still runs after the rollback: %s", out)
				}
			})
		}
	})

	for _, tc := range []struct {
		name      string
		node      *lab.Node
		interrupt bool
		// killed: the CLI is SIGKILLed inside stop-cri-dockerd and inside
		// stop-docker, then run again, which resumes from the journal.
		killed   bool
		rollback bool
	}{
		{name: "cri-dockerd kubelet 1.23 to containerd", node: f.cd123, interrupt: true, killed: true},
		{name: "cri-dockerd newest kubelet (CRI v1) to containerd", node: f.cdNew, rollback: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			web, solo := f.workload(ctx, t, n)
			flagsBefore, _ := readNodeFile(ctx, t, n, nodeplan.KubeadmFlagsFile)
			if tc.interrupt {
				rctx, interrupt := context.WithCancel(ctx)
				go func() { // Ctrl-C once drain is under way (the PDB holds it there)
					for rctx.Err() == nil {
						if j, _ := (&journal.Store{T: n.Transport()}).Load(rctx, n.Name); j != nil && j.State("drain") == journal.Running {
							time.Sleep(500 * time.Millisecond)
							interrupt()
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				}()
				err := Run(rctx, f.options(t, n, nodeplan.Containerd), "")
				interrupt()
				var pe *migrate.PhaseError
				if !errors.As(err, &pe) || !pe.Interrupted || !pe.RolledBack || pe.Phase != "drain" {
					t.Fatalf("interrupted run: %v; want an interrupt in drain, rolled back", err)
				}
				f.healthy(ctx, t, n, "docker", nodeplan.CRIDockerdEndpoint, web, solo)
			}
			if tc.killed {
				bin := filepath.Join(t.TempDir(), "unshim")
				if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/unshim/unshim/cmd/unshim").CombinedOutput(); err != nil {
					t.Fatalf("build unshim: %v\n%s", err, out)
				}
				// The CLI as the shipped roles' user, through nsenter.
				cli := &fixture{l: f.l, c: f.c, rc: f.rc, n1: n}
				err := f.watched(ctx, t, web, func() error {
					for _, phase := range []string{"stop-cri-dockerd", "stop-docker"} {
						cli.runSignalledIn(ctx, t, bin, phase, syscall.SIGKILL)
					}
					if out, err := exec.CommandContext(ctx, bin, cli.args()...).CombinedOutput(); err != nil {
						return fmt.Errorf("the run after the kills: %v\n%s", err, out)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				cli.released(ctx, t, n)
			} else if err := f.switchWatched(ctx, t, f.options(t, n, nodeplan.Containerd), web); err != nil {
				t.Fatalf("switch: %v", err)
			}
			f.healthy(ctx, t, n, "containerd", nodeplan.ContainerdEndpoint, web, solo)
			if out, err := n.Run(ctx, "systemctl", "is-enabled", nodeplan.CRIDockerdSocket); err == nil {
				t.Errorf("cri-docker.socket still enabled after the switch to containerd: %s", out)
			}
			if !tc.rollback {
				return
			}
			if err := Rollback(ctx, f.options(t, n, nodeplan.Containerd)); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			f.healthy(ctx, t, n, "docker", nodeplan.CRIDockerdEndpoint, web, solo)
			if flags, _ := readNodeFile(ctx, t, n, nodeplan.KubeadmFlagsFile); flags != flagsBefore {
				t.Errorf("kubeadm-flags.env not restored byte for byte:\n got  %q\n want %q", flags, flagsBefore)
			}
			if out, err := n.Run(ctx, "systemctl", "is-active", nodeplan.CRIDockerdSocket, nodeplan.CRIDockerdService); err != nil {
				t.Errorf("cri-dockerd not running again after the rollback: %v\n%s", err, out)
			}
		})
	}
}
