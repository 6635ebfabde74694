package nodeswitch

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubectl/pkg/util/podutils"

	"golang.org/x/crypto/ssh"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/dockerpurge"
	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/release"
	"github.com/unshim/unshim/pkg/transport"
	"github.com/unshim/unshim/pkg/version"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const (
	ns        = "app"
	localImg  = "unshim-lab/local-app:1" // exists only in lab-node-1's Docker
	busybox   = "busybox:1.35"
	switchTTL = 20 * time.Second
)

// fixture is a lab with two Docker nodes and controllers, running the
// workloads of the end-to-end test.
type fixture struct {
	l      *lab.Lab
	c      kubernetes.Interface
	rc     *rest.Config
	n1, n2 *lab.Node
	// mc and mrc act as a user holding only the shipped roles.
	mc  kubernetes.Interface
	mrc *rest.Config
}

func newFixture(ctx context.Context, t *testing.T) *fixture {
	l := labtest.UpForTest(ctx, t, "switchtest", lab.Options{Nodes: 2, Controllers: true, Logger: log.New(testWriter{t}, 0)})
	f := &fixture{l: l, n1: l.Nodes[0], n2: l.Nodes[1]}
	var err error
	if f.c, err = l.Client(); err != nil {
		t.Fatal(err)
	}
	if f.rc, err = l.RESTConfig(); err != nil {
		t.Fatal(err)
	}
	f.asMigrator(ctx, t)
	return f
}

// asMigrator binds the shipped roles (deploy/rbac: unshim-migrate and
// unshim-readonly) to a user and makes every switch of the test run as that
// user, so the test fails if the roles lack a permission the switch needs.
func (f *fixture) asMigrator(ctx context.Context, t *testing.T) {
	const user = "unshim-migrator"
	for _, file := range []string{"unshim-migrate.yaml", "unshim-readonly.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "rbac", file))
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.ClusterRole
		if err := sigsyaml.UnmarshalStrict(data, &role); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, err := f.c.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err = f.c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-test"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	rc := rest.CopyConfig(f.rc)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	f.mc, f.mrc = c, rc
}

func (f *fixture) options(t *testing.T, n *lab.Node) Options {
	return Options{
		Node: n.Name, Client: f.mc, RESTConfig: f.mrc, Transport: n.Transport(), Logger: log.New(testWriter{t}, 0),
		Holder: "test", LockTTL: switchTTL,
		Settings: phases.Settings{Target: nodeplan.Containerd, DrainTimeout: 3 * time.Minute, VerifyTimeout: 3 * time.Minute, Progress: testWriter{t}},
	}
}

func labels(app string) map[string]string { return map[string]string{"app": app} }

func podSpec(image string) corev1.PodSpec {
	grace := int64(1)
	return corev1.PodSpec{
		AutomountServiceAccountToken:  new(bool),
		TerminationGracePeriodSeconds: &grace,
		Containers: []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: corev1.PullNever,
			Command: []string{"sh", "-c", "echo started; while true; do sleep 1; done"}}},
	}
}

// deploy creates the workloads: a Deployment of two replicas, both on
// lab-node-1, with a PDB of minAvailable 1 (so the second eviction must wait
// for a replacement on lab-node-2); a DaemonSet; and a bare pod on
// lab-node-1 whose image only that node's Docker has.
func (f *fixture) deploy(ctx context.Context, t *testing.T) {
	if _, err := f.n1.Run(ctx, "docker", "tag", busybox, localImg); err != nil {
		t.Fatal(err)
	}
	c := f.c
	mustCreate := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	mustCreate(err)
	for _, name := range []string{"default"} {
		_, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	// Both replicas land on lab-node-1 while lab-node-2 is cordoned.
	setUnschedulable(ctx, t, c, f.n2.Name, true)
	replicas := int32(2)
	_, err = c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels("web")},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels("web")}, Spec: podSpec(busybox)}},
	}, metav1.CreateOptions{})
	mustCreate(err)
	minAvail := intstr.FromInt32(1)
	_, err = c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvail, Selector: &metav1.LabelSelector{MatchLabels: labels("web")}},
	}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels("agent")},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels("agent")}, Spec: podSpec(busybox)}},
	}, metav1.CreateOptions{})
	mustCreate(err)
	solo := podSpec(localImg)
	solo.NodeName = f.n1.Name
	solo.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	_, err = c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "solo", Labels: labels("solo")}, Spec: solo}, metav1.CreateOptions{})
	mustCreate(err)
	f.waitPods(ctx, t, "web on lab-node-1, agent on both, solo", func(pods []corev1.Pod) bool {
		return count(pods, "web", f.n1.Name) == 2 && count(pods, "agent", "") == 2 && count(pods, "solo", f.n1.Name) == 1
	})
	setUnschedulable(ctx, t, c, f.n2.Name, false)
}

// count counts Running, ready pods of app (on node, if given).
func count(pods []corev1.Pod, app, node string) int {
	n := 0
	for _, p := range pods {
		if p.Labels["app"] != app || (node != "" && p.Spec.NodeName != node) || p.DeletionTimestamp != nil {
			continue
		}
		if p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready {
			n++
		}
	}
	return n
}

func (f *fixture) pods(ctx context.Context, t *testing.T) []corev1.Pod {
	return podsIn(ctx, t, f.c, ns)
}

func (f *fixture) waitPods(ctx context.Context, t *testing.T, what string, ok func([]corev1.Pod) bool) {
	t.Helper()
	waitPodsIn(ctx, t, f.c, ns, what, ok)
}

// podsIn lists the pods of namespace.
func podsIn(ctx context.Context, t *testing.T, c kubernetes.Interface, namespace string) []corev1.Pod {
	t.Helper()
	list, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitPodsIn waits up to 3 minutes until the pods of namespace satisfy ok.
func waitPodsIn(ctx context.Context, t *testing.T, c kubernetes.Interface, namespace, what string, ok func([]corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pods := podsIn(ctx, t, c, namespace)
		if ok(pods) {
			return
		}
		if time.Now().After(deadline) {
			var s []string
			for _, p := range pods {
				s = append(s, p.Name+"@"+p.Spec.NodeName+":"+string(p.Status.Phase))
			}
			t.Fatalf("timed out waiting for %s; pods: %v", what, s)
		}
		time.Sleep(time.Second)
	}
}

func setUnschedulable(ctx context.Context, t *testing.T, c kubernetes.Interface, node string, v bool) {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = v
	if _, err := c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// nodeFiles reads the files a switch changes, for byte-for-byte comparison.
var switchedFiles = []string{"/etc/containerd/config.toml", nodeplan.KubeadmFlagsFile, "/var/lib/kubelet/config.yaml"}

func snapshot(ctx context.Context, t *testing.T, n *lab.Node) map[string]string {
	out := map[string]string{}
	for _, p := range switchedFiles {
		data, err := n.Transport().ReadFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(data)
	}
	return out
}

func runtimeOf(ctx context.Context, t *testing.T, c kubernetes.Interface, node string) (string, bool, string) {
	n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	return n.Status.NodeInfo.ContainerRuntimeVersion, ready && !n.Spec.Unschedulable, n.Annotations[inventory.CRISocketAnnotation]
}

// backOnDocker waits until the node reports Docker again, Ready and schedulable,
// with its files as they were and the annotation restored.
func backOnDocker(ctx context.Context, t *testing.T, f *fixture, n *lab.Node, before map[string]string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rt, ok, ann := runtimeOf(ctx, t, f.c, n.Name)
		if strings.HasPrefix(rt, "docker://") && ok && ann == lab.DockershimSocket {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not back on Docker: runtime %s, ready+schedulable %t, annotation %q", n.Name, rt, ok, ann)
		}
		time.Sleep(time.Second)
	}
	after := snapshot(ctx, t, n)
	for p, want := range before {
		if after[p] != want {
			t.Errorf("%s not restored byte for byte:\n got  %q\n want %q", p, after[p], want)
		}
	}
	f.waitPods(ctx, t, "solo and agent running again on Docker", func(pods []corev1.Pod) bool {
		return count(pods, "solo", n.Name) == 1 && count(pods, "agent", n.Name) == 1
	})
}

func execIn(ctx context.Context, f *fixture, pod string, cmd ...string) (string, error) {
	return execInNS(ctx, f, ns, pod, cmd...)
}

// TestSwitchNode is the end-to-end test of issue 5 on a real lab: a Docker
// node with a Deployment under a PDB, a DaemonSet, a bare pod and an image
// only Docker has is switched to containerd; then the faults: containerd
// failing to start and a kubelet that never gets Ready roll back to Docker
// byte for byte; a run SIGKILLed after each phase resumes and finishes.
func TestSwitchNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	f := newFixture(ctx, t)
	f.deploy(ctx, t)
	before := snapshot(ctx, t, f.n1)

	var dry []PlanStep
	t.Run("dry run changes nothing", func(t *testing.T) {
		steps, p, err := DryRun(ctx, f.options(t, f.n1))
		dry = steps
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) != len(PhaseNames(nodeplan.Containerd)) || p.Annotation != nodeplan.ContainerdEndpoint {
			t.Errorf("plan: %d steps, annotation %q", len(steps), p.Annotation)
		}
		var saved string
		for _, s := range steps {
			if s.Phase == "save-images" {
				saved = strings.Join(s.Lines, " ")
			}
		}
		if !strings.Contains(saved, localImg) {
			t.Errorf("save-images plan %q does not save %s", saved, localImg)
		}
		if rt, _, _ := runtimeOf(ctx, t, f.c, f.n1.Name); !strings.HasPrefix(rt, "docker://") {
			t.Errorf("dry run switched the node: %s", rt)
		}
	})

	t.Run("wrong machine: refused, nothing changed", func(t *testing.T) {
		// lab-node-1 named, lab-node-2's machine reached (a wrong --target-pid).
		o := f.options(t, f.n1)
		o.Transport = f.n2.Transport()
		err := Run(ctx, o, "")
		var wm *WrongMachineError
		if !errors.As(err, &wm) {
			t.Fatalf("switch of %s through %s's machine: %v; want a WrongMachineError", f.n1.Name, f.n2.Name, err)
		}
		if err := Rollback(ctx, o); !errors.As(err, &wm) {
			t.Errorf("rollback through the wrong machine: %v; want a WrongMachineError", err)
		}
		for _, n := range []*lab.Node{f.n1, f.n2} {
			if rt, ok, ann := runtimeOf(ctx, t, f.c, n.Name); !strings.HasPrefix(rt, "docker://") || !ok || ann != lab.DockershimSocket {
				t.Errorf("%s after the refusal: %s, ready+schedulable %t, annotation %q", n.Name, rt, ok, ann)
			}
			if j, err := (&journal.Store{T: n.Transport()}).Load(ctx, n.Name); err != nil || j != nil {
				t.Errorf("%s has a journal after the refusal: %+v, %v", n.Name, j, err)
			}
		}
	})

	t.Run("interrupted in drain: rolled back on a fresh context", func(t *testing.T) {
		rctx, interrupt := context.WithCancel(ctx)
		defer interrupt()
		go func() { // Ctrl-C once drain is under way (the PDB holds it there)
			for rctx.Err() == nil {
				if j, _ := (&journal.Store{T: f.n1.Transport()}).Load(rctx, f.n1.Name); j != nil && j.State("drain") == journal.Running {
					time.Sleep(500 * time.Millisecond)
					interrupt()
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		err := Run(rctx, f.options(t, f.n1), "")
		var pe *migrate.PhaseError
		if !errors.As(err, &pe) || !pe.Interrupted || !pe.RolledBack || pe.Phase != "drain" {
			t.Fatalf("interrupted run: %v; want an interrupt in drain, rolled back", err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
		f.released(ctx, t, f.n1)
	})

	// Signals through the real CLI, SIGINT and SIGTERM each inside drain,
	// stop-docker and verify: the switch stops at the next step boundary and
	// rolls back, the PDB never below its budget.
	bin := filepath.Join(t.TempDir(), "unshim")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/unshim/unshim/cmd/unshim").CombinedOutput(); err != nil {
		t.Fatalf("build unshim: %v\n%s", err, out)
	}
	for _, phase := range []string{"drain", "stop-docker", "verify"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(sig.String()+" in "+phase+": rolled back", func(t *testing.T) {
				if phase == "drain" {
					f.webOnNode1(ctx, t) // the drain waits on the PDB: the signal comes inside it
				}
				stop := f.watchWeb(ctx, t)
				out, inside := f.runSignalledIn(ctx, t, bin, phase, sig)
				if got := stop(); got < 1 {
					t.Errorf("the PDB (minAvailable 1) was violated: %d ready web pods seen", got)
				}
				if !inside {
					t.Errorf("the signal came after %s, not inside it", phase)
				}
				if !strings.Contains(out, "rolling back") || !strings.Contains(out, "interrupted") {
					t.Errorf("the run did not say it was interrupted and rolled back:\n%s", out)
				}
				backOnDocker(ctx, t, f, f.n1, before)
				f.released(ctx, t, f.n1)
				if n, err := f.c.CoreV1().Nodes().Get(ctx, f.n1.Name, metav1.GetOptions{}); err != nil || !strings.HasPrefix(n.Annotations[ResultAnnotation], "rolled-back") {
					t.Errorf("result annotation after the interrupt: %q, %v", n.Annotations[ResultAnnotation], err)
				}
			})
		}
	}

	t.Run("SIGINT twice: stops at once mid-rollback, node rollback finishes it", func(t *testing.T) {
		cmd, out, exited := f.startCLI(ctx, t, bin)
		f.whenRunning(ctx, t, "verify", out, exited)
		_ = cmd.Process.Signal(syscall.SIGINT)
		// The second Ctrl-C as soon as the rollback is under way.
		deadline := time.Now().Add(5 * time.Minute)
		for !strings.Contains(out.String(), "rolling back") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		var err error
		select {
		case err = <-exited:
		case <-time.After(time.Minute):
			t.Fatalf("the run did not stop at the second SIGINT:\n%s", out.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("exit after a second SIGINT: %v; want code 130\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "again: stopping now") {
			t.Errorf("the run did not say it stopped at once:\n%s", out.String())
		}
		j, err := (&journal.Store{T: f.n1.Transport()}).Load(ctx, f.n1.Name)
		if err != nil || j == nil || j.Finished || j.RolledBack {
			t.Fatalf("journal after a second SIGINT: %+v, %v; want one to resume or roll back from", j, err)
		}
		t.Logf("stopped mid-rollback:\n%s", out.String())
		// The operator rolls the rest back.
		if out, err := exec.CommandContext(ctx, bin, f.rollbackArgs()...).CombinedOutput(); err != nil {
			t.Fatalf("node rollback: %v\n%s", err, out)
		}
		backOnDocker(ctx, t, f, f.n1, before)
		f.released(ctx, t, f.n1)
	})

	t.Run("drain blocked by a PDB: pods and budget named, rolled back, uncordoned", func(t *testing.T) {
		f.webOnNode1(ctx, t)
		// A budget that allows no disruption while both replicas run.
		setMinAvailable(ctx, t, f.c, 2)
		defer setMinAvailable(ctx, t, f.c, 1)
		o := f.options(t, f.n1)
		o.Settings.DrainTimeout = 15 * time.Second
		err := Run(ctx, o, "")
		var blocked *phases.DrainBlockedError
		if !errors.As(err, &blocked) {
			t.Fatalf("switch with a drain that can never finish: %v; want a DrainBlockedError", err)
		}
		var pe *migrate.PhaseError
		if !errors.As(err, &pe) || pe.Phase != "drain" || !pe.RolledBack {
			t.Errorf("switch: %v; want drain failed and rolled back", err)
		}
		if len(blocked.PDBs) != 1 || blocked.PDBs[0] != ns+"/web" || len(blocked.Pods) != 2 {
			t.Errorf("blocked: pods %v, budgets %v; want both web pods and %s/web", blocked.Pods, blocked.PDBs, ns)
		}
		for _, p := range blocked.Pods {
			if !strings.HasPrefix(p, ns+"/web-") {
				t.Errorf("blocked names pod %s, not a web replica", p)
			}
		}
		backOnDocker(ctx, t, f, f.n1, before)
		f.released(ctx, t, f.n1)
	})

	for _, tc := range []struct{ phase, dir string }{
		{"backup", "/var/lib/unshim/backup"},
		{"save-images", "/var/lib/unshim/images"},
	} {
		t.Run("disk full at "+tc.phase+": stopped before writing, rolled back", func(t *testing.T) {
			// A 1 MiB file system where the phase writes: the check of free
			// space must stop it before it fills the disk.
			if _, err := f.n1.Run(ctx, "mkdir", "-p", tc.dir); err != nil {
				t.Fatal(err)
			}
			if _, err := f.n1.Run(ctx, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tc.dir); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if _, err := f.n1.Run(ctx, "umount", tc.dir); err != nil {
					t.Error(err)
				}
			}()
			err := Run(ctx, f.options(t, f.n1), "")
			var pe *migrate.PhaseError
			if !errors.As(err, &pe) || pe.Phase != tc.phase || !pe.RolledBack || !errors.Is(err, journal.ErrNoSpace) {
				t.Fatalf("run with %s full: %v; want %s to fail for want of space, rolled back", tc.dir, err, tc.phase)
			}
			backOnDocker(ctx, t, f, f.n1, before)
			f.released(ctx, t, f.n1)
		})
	}

	t.Run("power loss in start-containerd, then the re-run finishes", func(t *testing.T) {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cut := make(chan error, 1)
		go func() {
			for rctx.Err() == nil {
				if j, _ := (&journal.Store{T: f.n1.Transport()}).Load(rctx, f.n1.Name); j != nil && j.State("start-containerd") == journal.Running {
					cut <- f.l.PowerOff(f.n1)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		err := Run(rctx, f.options(t, f.n1), "")
		cancel()
		if perr := <-cut; perr != nil {
			t.Fatal(perr)
		}
		if err == nil {
			t.Fatal("the switch succeeded although its node lost power")
		}
		t.Logf("the run that lost its node: %v", err)
		if err := f.l.Boot(ctx, f.n1); err != nil {
			t.Fatal(err)
		}
		// The operator runs the switch again: it resumes from the journal
		// the node kept on its disk.
		if err := Run(ctx, f.options(t, f.n1), ""); err != nil {
			t.Fatalf("the re-run after the power loss: %v", err)
		}
		f.released(ctx, t, f.n1)
		if rt, ok, ann := runtimeOf(ctx, t, f.c, f.n1.Name); !strings.HasPrefix(rt, "containerd://") || !ok || ann != nodeplan.ContainerdEndpoint {
			t.Fatalf("node after the re-run: runtime %s, ready+schedulable %t, annotation %q", rt, ok, ann)
		}
		f.waitPods(ctx, t, "solo and agent running on containerd", func(pods []corev1.Pod) bool {
			return count(pods, "solo", f.n1.Name) == 1 && count(pods, "agent", f.n1.Name) == 1
		})
		if err := Rollback(ctx, f.options(t, f.n1)); err != nil {
			t.Fatal(err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
	})

	t.Run("killed inside each long phase, resumed", func(t *testing.T) {
		f.webOnNode1(ctx, t) // the drain waits on the PDB
		stop := f.watchWeb(ctx, t)
		for _, phase := range []string{"save-images", "drain", "stop-docker", "start-containerd", "verify"} {
			_, inside := f.runSignalledIn(ctx, t, bin, phase, syscall.SIGKILL)
			if phase == "drain" && !inside {
				t.Errorf("the kill came after drain, not inside it")
			}
		}
		if out, err := exec.CommandContext(ctx, bin, f.args()...).CombinedOutput(); err != nil {
			t.Fatalf("resume: %v\n%s", err, out)
		}
		if got := stop(); got < 1 {
			t.Errorf("the PDB (minAvailable 1) was violated: %d ready web pods seen", got)
		}
		f.released(ctx, t, f.n1)
		if rt, ok, ann := runtimeOf(ctx, t, f.c, f.n1.Name); !strings.HasPrefix(rt, "containerd://") || !ok || ann != nodeplan.ContainerdEndpoint {
			t.Fatalf("node after the resumed switch: runtime %s, ready+schedulable %t, annotation %q", rt, ok, ann)
		}
		if err := Rollback(ctx, f.options(t, f.n1)); err != nil {
			t.Fatal(err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
	})

	t.Run("switch to containerd", func(t *testing.T) {
		f.webOnNode1(ctx, t) // the faults above moved them; the drain must wait on the PDB
		// Watch the Deployment's ready pods throughout: the PDB says at least 1.
		stop := f.watchWeb(ctx, t)
		// The apiserver goes away for a while during drain and during
		// verify: the switch must ride both outages out.
		outages := make(chan error, 1)
		octx, ocancel := context.WithCancel(ctx)
		go func() { outages <- f.outageIn(octx, "drain", "verify") }()
		// (the watcher's LISTs fail while the apiserver is away: those
		// samples are skipped)
		start := time.Now()
		err := Run(ctx, f.options(t, f.n1), "")
		ocancel()
		if oerr := <-outages; oerr != nil {
			t.Errorf("outages: %v", oerr)
		}
		minReady := stop()
		if err != nil {
			t.Fatalf("switch: %v", err)
		}
		t.Logf("switched in %s", time.Since(start).Round(time.Second))
		f.released(ctx, t, f.n1) // though the apiserver was away twice
		if minReady < 1 {
			t.Errorf("the PDB (minAvailable 1) was violated: %d ready web pods seen", minReady)
		}
		rt, ok, ann := runtimeOf(ctx, t, f.c, f.n1.Name)
		if !strings.HasPrefix(rt, "containerd://") || !ok || ann != nodeplan.ContainerdEndpoint {
			t.Fatalf("node after switch: runtime %s, ready+schedulable %t, annotation %q", rt, ok, ann)
		}
		f.waitPods(ctx, t, "everything running again", func(pods []corev1.Pod) bool {
			return count(pods, "web", "") == 2 && count(pods, "agent", "") == 2 && count(pods, "solo", f.n1.Name) == 1
		})
		for _, p := range f.pods(ctx, t) {
			if p.Spec.NodeName == f.n1.Name && p.DeletionTimestamp == nil && !strings.HasPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://") {
				t.Errorf("pod %s on %s runs %s", p.Name, f.n1.Name, p.Status.ContainerStatuses[0].ContainerID)
			}
		}
		logs, err := f.c.CoreV1().Pods(ns).GetLogs("solo", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || !strings.Contains(string(logs), "started") {
			t.Errorf("logs of solo: %q, %v", logs, err)
		}
		// Right after the restart the kubelet may still be setting up the
		// pod's streams: try a few times.
		var out string
		for i := 0; i < 10; i++ {
			if out, err = execIn(ctx, f, "solo", "echo", "exec-through-containerd"); err == nil && strings.TrimSpace(out) == "exec-through-containerd" {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil || strings.TrimSpace(out) != "exec-through-containerd" {
			t.Errorf("exec in solo: %q, %v", out, err)
		}
		j, err := (&journal.Store{T: f.n1.Transport()}).Load(ctx, f.n1.Name)
		if err != nil || j == nil || !j.Finished {
			t.Fatalf("journal: %+v, %v", j, err)
		}
		// The dry run printed the steps the run then recorded (but the
		// containers stopped before Docker: the dry run saw the pods the
		// drain then evicted).
		comparable := func(steps []journal.Step) []string {
			var out []string
			for _, st := range steps {
				if len(st.Argv) > 1 && st.Argv[0] == "docker" && st.Argv[1] == "stop" {
					continue
				}
				out = append(out, st.Phase+": "+migrate.DescribeStep(st))
			}
			return out
		}
		if len(dry) == 0 {
			t.Log("the dry run did not run (-run left it out): its steps are not compared")
			return
		}
		var planned []journal.Step
		for _, ps := range dry {
			planned = append(planned, ps.Steps...)
		}
		want, got := comparable(planned), comparable(j.Steps)
		if strings.Join(want, "\n") != strings.Join(got, "\n") {
			t.Errorf("the run's steps differ from the dry run's:\n dry run:\n  %s\n run:\n  %s", strings.Join(want, "\n  "), strings.Join(got, "\n  "))
		}
		if len(got) < 8 {
			t.Errorf("only %d steps recorded: %v", len(got), got)
		}
	})

	t.Run("rollback on demand with replicas on the node drains first", func(t *testing.T) {
		f.webOnNode1(ctx, t) // both replicas on the node, now on containerd
		stop := f.watchWeb(ctx, t)
		err := Rollback(ctx, f.options(t, f.n1))
		if got := stop(); got < 1 {
			t.Errorf("the PDB (minAvailable 1) was violated during the rollback: %d ready web pods seen", got)
		}
		if err != nil {
			t.Fatal(err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
		f.released(ctx, t, f.n1)
		if n, err := f.c.CoreV1().Nodes().Get(ctx, f.n1.Name, metav1.GetOptions{}); err != nil || n.Annotations[ResultAnnotation] == "succeeded" {
			t.Errorf("result annotation after the rollback: %q, %v", n.Annotations[ResultAnnotation], err)
		}
		f.waitPods(ctx, t, "both web replicas running", func(pods []corev1.Pod) bool { return count(pods, "web", "") == 2 })
	})

	t.Run("a single phase after a kill records only itself", func(t *testing.T) {
		f.runKilledAfter(ctx, t, bin, "start-kubelet")
		args := f.args() // migrate node NAME ...: run as migrate node phase verify NAME ...
		args = append(append(append([]string{}, args[:6]...), "phase", "verify"), args[6:]...)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("phase verify: %v\n%s", err, out)
		}
		j, err := (&journal.Store{T: f.n1.Transport()}).Load(ctx, f.n1.Name)
		if err != nil || j == nil || j.Finished || j.State("uncordon") != "" {
			t.Fatalf("journal after a single verify: %+v, %v; want unfinished, uncordon not run", j, err)
		}
		if n, _ := f.c.CoreV1().Nodes().Get(ctx, f.n1.Name, metav1.GetOptions{}); !n.Spec.Unschedulable {
			t.Error("the node was uncordoned by a single verify")
		}
		if out, err := exec.CommandContext(ctx, bin, f.args()...).CombinedOutput(); err != nil {
			t.Fatalf("resume: %v\n%s", err, out)
		}
		if rt, ok, _ := runtimeOf(ctx, t, f.c, f.n1.Name); !strings.HasPrefix(rt, "containerd://") || !ok {
			t.Fatalf("after the resume: %s, ready+schedulable %t", rt, ok)
		}
		if err := Rollback(ctx, f.options(t, f.n1)); err != nil {
			t.Fatal(err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
	})

	t.Run("containerd fails to start: rolled back", func(t *testing.T) {
		o := f.options(t, f.n1)
		o.AfterPhase = func(name string) {
			if name == "write-config" { // a config containerd cannot read
				if err := f.n1.Transport().WriteFile(ctx, "/etc/containerd/config.toml", []byte("version = 2\n[plugins\n"), 0o644); err != nil {
					t.Error(err)
				}
			}
		}
		err := Run(ctx, o, "")
		var pe *migrate.PhaseError
		if !errors.As(err, &pe) || pe.Phase != "start-containerd" || !pe.RolledBack {
			t.Fatalf("run: %v; want start-containerd failed and rolled back", err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
	})

	t.Run("kubelet never gets Ready: rolled back", func(t *testing.T) {
		o := f.options(t, f.n1)
		o.Settings.VerifyTimeout = 30 * time.Second
		o.AfterPhase = func(name string) {
			if name == "start-kubelet" { // the kubelet dies at once and stays dead
				if _, err := f.n1.Run(ctx, "systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", "kubelet.service"); err != nil {
					t.Error(err)
				}
			}
		}
		err := Run(ctx, o, "")
		var pe *migrate.PhaseError
		if !errors.As(err, &pe) || pe.Phase != "verify" || !pe.RolledBack {
			t.Fatalf("run: %v; want verify failed and rolled back", err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
	})

	t.Run("registries", func(t *testing.T) { f.registryCases(ctx, t) })

	t.Run("killed after each phase, resumed", func(t *testing.T) {
		names := PhaseNames(nodeplan.Containerd)
		resumed := true
		for i, phase := range names {
			if i == len(names)-1 {
				break
			}
			killedAt, finished := f.runKilledAfter(ctx, t, bin, phase)
			if finished {
				// Only the instant phases were left: nothing to resume.
				t.Logf("the run finished after %s before the kill landed", phase)
				resumed = false
				break
			}
			t.Logf("killed after %s (annotation %s)", phase, killedAt)
			// The inventory shows the switch under way, for operators.
			if n, err := f.c.CoreV1().Nodes().Get(ctx, f.n1.Name, metav1.GetOptions{}); err != nil || inventory.Describe(n).Switch == "" {
				t.Errorf("after a kill at %s, unshim nodes shows no switch under way (%v)", phase, err)
			}
		}
		if resumed {
			cmd := exec.CommandContext(ctx, bin, f.args()...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("last resume: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "resuming") {
				t.Errorf("the last run did not resume:\n%s", out)
			}
		}
		rt, ok, ann := runtimeOf(ctx, t, f.c, f.n1.Name)
		if !strings.HasPrefix(rt, "containerd://") || !ok || ann != nodeplan.ContainerdEndpoint {
			t.Fatalf("node after resumed switch: runtime %s, ready+schedulable %t, annotation %q", rt, ok, ann)
		}
		f.waitPods(ctx, t, "everything running again", func(pods []corev1.Pod) bool {
			return count(pods, "web", "") == 2 && count(pods, "agent", "") == 2 && count(pods, "solo", f.n1.Name) == 1
		})
	})

	t.Run("cri-dockerd missing: refused, nothing changed", func(t *testing.T) {
		o := f.options(t, f.n2)
		o.Settings.Target = nodeplan.CRIDockerd
		err := Run(ctx, o, "")
		if err == nil || !strings.Contains(err.Error(), "cri-dockerd is not installed") {
			t.Fatalf("switch to cri-dockerd without it: %v", err)
		}
		if rt, ok, ann := runtimeOf(ctx, t, f.c, f.n2.Name); !strings.HasPrefix(rt, "docker://") || !ok || ann != lab.DockershimSocket {
			t.Errorf("node after the refusal: %s, ready+schedulable %t, annotation %q", rt, ok, ann)
		}
	})

	t.Run("switch through an agent pod", func(t *testing.T) {
		// The image `make agent-image` builds (go-containerregistry, no
		// Docker), loaded into the node's Docker and containerd.
		const image = "unshim-agent:test"
		o := release.Options{Dir: filepath.Join("..", ".."), Stamp: version.Stamp{Version: "v0.0.0-test", GitCommit: "test", BuildDate: "2025-01-01T00:00:00Z"}}
		img, err := release.BuildAgentImage(ctx, o, runtime.GOARCH, image, filepath.Join(t.TempDir(), "agent.tar"))
		if err != nil {
			t.Fatalf("build the agent image: %v", err)
		}
		if err := f.n2.LoadArchive(ctx, img.File, true); err != nil {
			t.Fatal(err)
		}
		f.applyAgentRBAC(ctx, t)
		var out bytes.Buffer
		err = RunViaPod(ctx, PodOptions{Options: f.options(t, f.n2), Image: image, Out: &out, Timeout: 10 * time.Minute})
		t.Logf("agent run:\n%s", out.String())
		if err != nil {
			t.Fatalf("switch through an agent pod: %v", err)
		}
		// The phase annotation is written at most every 5 s: some phases show.
		if !strings.Contains(out.String(), "["+f.n2.Name+"] ") {
			t.Errorf("no live progress from the node in the output")
		}
		rt, ok, ann := runtimeOf(ctx, t, f.c, f.n2.Name)
		if !strings.HasPrefix(rt, "containerd://") || !ok || ann != nodeplan.ContainerdEndpoint {
			t.Fatalf("node after the agent's switch: runtime %s, ready+schedulable %t, annotation %q", rt, ok, ann)
		}
		if _, err := f.c.CoreV1().Secrets("kube-system").Get(ctx, "unshim-agent-"+f.n2.Name, metav1.GetOptions{}); err == nil {
			t.Error("the agent's kubeconfig Secret is left in the cluster")
		}
		f.waitPods(ctx, t, "the DaemonSet pod back on lab-node-2", func(pods []corev1.Pod) bool { return count(pods, "agent", f.n2.Name) == 1 })

		// And back, through an agent pod too (`rollout undo` of a rollout
		// whose transport is the pod): the agent, now on containerd, runs
		// `unshim node rollback` on the node.
		out.Reset()
		err = RollbackViaPod(ctx, PodOptions{Options: f.options(t, f.n2), Image: image, Out: &out, Timeout: 10 * time.Minute})
		t.Logf("agent rollback:\n%s", out.String())
		if err != nil {
			t.Fatalf("rollback through an agent pod: %v", err)
		}
		n, err := f.c.CoreV1().Nodes().Get(ctx, f.n2.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r := n.Annotations[ResultAnnotation]; r != RolledBackOnDemand {
			t.Errorf("result after the agent's rollback: %q, want %q", r, RolledBackOnDemand)
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			rt, ok, ann := runtimeOf(ctx, t, f.c, f.n2.Name)
			if strings.HasPrefix(rt, "docker://") && ok && ann == lab.DockershimSocket {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node after the agent's rollback: runtime %s, ready+schedulable %t, annotation %q", rt, ok, ann)
			}
			time.Sleep(time.Second)
		}
		if _, err := f.c.CoreV1().Secrets("kube-system").Get(ctx, "unshim-agent-"+f.n2.Name, metav1.GetOptions{}); err == nil {
			t.Error("the agent's kubeconfig Secret is left in the cluster after the rollback")
		}
		f.waitPods(ctx, t, "the DaemonSet pod back on lab-node-2, on Docker", func(pods []corev1.Pod) bool { return count(pods, "agent", f.n2.Name) == 1 })
	})

	t.Run("switch over SSH, then purge Docker", func(t *testing.T) {
		// lab-node-1 back on Docker first (undo the resumed switch), then
		// switched again through its own sshd as root.
		if err := Rollback(ctx, f.options(t, f.n1)); err != nil {
			t.Fatal(err)
		}
		backOnDocker(ctx, t, f, f.n1, before)
		tr := f.sshTo(ctx, t, f.n1)
		po := dockerpurge.Options{Node: f.n1.Name, Client: f.mc, Transport: tr}
		if err := dockerpurge.Run(ctx, po); err == nil || !strings.Contains(err.Error(), "Docker is purged only from a node that runs on containerd") {
			t.Fatalf("purge of a Docker node: %v; want a refusal", err)
		}
		o := f.options(t, f.n1)
		o.Transport = tr
		if err := Run(ctx, o, ""); err != nil {
			t.Fatalf("switch over SSH: %v", err)
		}
		rt, ok, ann := runtimeOf(ctx, t, f.c, f.n1.Name)
		if !strings.HasPrefix(rt, "containerd://") || !ok || ann != nodeplan.ContainerdEndpoint {
			t.Fatalf("node after switch over SSH: runtime %s, ready+schedulable %t, annotation %q", rt, ok, ann)
		}
		f.waitPods(ctx, t, "everything running again", func(pods []corev1.Pod) bool {
			return count(pods, "agent", f.n1.Name) == 1 && count(pods, "solo", f.n1.Name) == 1
		})
		po.RemoveData = true
		if err := dockerpurge.Run(ctx, po); err != nil {
			t.Fatalf("purge Docker: %v", err)
		}
		out, _ := tr.Run(ctx, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", "docker.io", "containerd", "runc")
		if !strings.Contains(string(out), "containerd ii") || !strings.Contains(string(out), "runc ii") || strings.Contains(string(out), "docker.io ii") {
			t.Errorf("packages after the purge:\n%s", out)
		}
		if auto, _ := tr.Run(ctx, "apt-mark", "showauto", "containerd"); strings.TrimSpace(string(auto)) != "" {
			t.Errorf("containerd still marked automatically installed: autoremove would take it")
		}
		if _, err := tr.Run(ctx, "test", "-e", "/var/lib/docker"); err == nil {
			t.Error("/var/lib/docker left with --remove-data")
		}
		if _, err := tr.ReadFile(ctx, "/var/lib/unshim/backup/"+f.n1.Name+"/purge-docker/docker/daemon.json"); err != nil {
			t.Errorf("/etc/docker not backed up: %v", err)
		}
		time.Sleep(5 * time.Second)
		if rt, ok, _ := runtimeOf(ctx, t, f.c, f.n1.Name); !strings.HasPrefix(rt, "containerd://") || !ok {
			t.Errorf("node after the purge: %s, ready+schedulable %t", rt, ok)
		}
	})

}

func (f *fixture) args() []string {
	return []string{"--kubeconfig", f.l.Kubeconfig, "--as", "unshim-migrator", "migrate", "node", f.n1.Name, "--via", "nsenter",
		"--target-pid", strconv.Itoa(f.n1.LeaderPID), "--drain-timeout", "3m", "--verify-timeout", "3m"}
}

func (f *fixture) rollbackArgs() []string {
	return []string{"--kubeconfig", f.l.Kubeconfig, "--as", "unshim-migrator", "node", "rollback", f.n1.Name, "--via", "nsenter",
		"--target-pid", strconv.Itoa(f.n1.LeaderPID)}
}

// setMinAvailable sets the web PDB's minAvailable.
func setMinAvailable(ctx context.Context, t *testing.T, c kubernetes.Interface, n int) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"minAvailable":%d}}`, n)
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// The disruption controller recomputes the budget's status.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		pdb, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err == nil && pdb.Status.ObservedGeneration == pdb.Generation && pdb.Status.DesiredHealthy == int32(n) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the web PDB's status did not follow minAvailable %d", n)
}

// startCLI starts the switch of lab-node-1 through the CLI; exited receives
// its end.
func (f *fixture) startCLI(ctx context.Context, t *testing.T, bin string) (*exec.Cmd, *lockedBuffer, <-chan error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, f.args()...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return cmd, out, exited
}

// runKilledAfter runs the CLI and SIGKILLs it as soon as the node's phase
// annotation says phase is done; it returns the annotation seen.
func (f *fixture) runKilledAfter(ctx context.Context, t *testing.T, bin, phase string) (annotation string, finished bool) {
	t.Helper()
	cmd, out, exited := f.startCLI(ctx, t, bin)
	for {
		var exitErr error
		ended := false
		select {
		case exitErr = <-exited:
			ended = true
		case <-time.After(20 * time.Millisecond):
		}
		n, err := f.c.CoreV1().Nodes().Get(ctx, f.n1.Name, metav1.GetOptions{})
		j, _ := (&journal.Store{T: f.n1.Transport()}).Load(ctx, f.n1.Name)
		if err == nil && j != nil && j.State(phase) == journal.Done {
			if !ended {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				exitErr = <-exited
			}
			// Exit 0, or a journal already finished when the kill landed: the
			// run finished on its own (the phases after phase took no time:
			// uncordon after verify), and was killed, if at all, on its way out.
			after, lerr := (&journal.Store{T: f.n1.Transport()}).Load(ctx, f.n1.Name)
			if lerr != nil {
				t.Fatalf("read the journal after the kill at %s: %v", phase, lerr)
			}
			return n.Annotations[PhaseAnnotation], exitErr == nil || after == nil || after.Finished
		}
		if ended {
			t.Fatalf("run exited before phase %s was done (%v):\n%s", phase, exitErr, out.String())
		}
	}
}

// runSignalledIn runs the CLI and sends it sig as soon as the journal says
// phase is running (inside is then true), or at once if the phase ran too
// fast to be caught; it waits for the run to end and returns its output.
func (f *fixture) runSignalledIn(ctx context.Context, t *testing.T, bin, phase string, sig syscall.Signal) (string, bool) {
	t.Helper()
	cmd, out, exited := f.startCLI(ctx, t, bin)
	inside := f.whenRunning(ctx, t, phase, out, exited)
	_ = cmd.Process.Signal(sig)
	select {
	case err := <-exited:
		if err == nil {
			t.Errorf("the run succeeded although it was sent %v in %s:\n%s", sig, phase, out.String())
		}
	case <-time.After(10 * time.Minute):
		t.Fatalf("the run did not end after %v:\n%s", sig, out.String())
	}
	t.Logf("run sent %v in %s (inside it: %t):\n%s", sig, phase, inside, out.String())
	return out.String(), inside
}

// whenRunning returns as soon as the journal says phase is running (true)
// or done, if it ran too fast to be caught (false).
func (f *fixture) whenRunning(ctx context.Context, t *testing.T, phase string, out *lockedBuffer, exited <-chan error) bool {
	t.Helper()
	for {
		select {
		case err := <-exited:
			t.Fatalf("run exited before phase %s ran (%v):\n%s", phase, err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		j, _ := (&journal.Store{T: f.n1.Transport()}).Load(ctx, f.n1.Name)
		if j == nil {
			continue
		}
		if st := j.State(phase); st == journal.Running || st == journal.Done {
			return st == journal.Running
		}
	}
}

// lockedBuffer is a run's output, read while the run writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// outageFor is how long outageIn keeps the apiserver away: 8 s, or
// UNSHIM_TEST_OUTAGE (a Go duration). Over the node controller's grace
// period (40 s) the nodes' pods are marked not ready meanwhile, which is
// what the drain's budget guard must then hold (budgetGuard).
func outageFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("UNSHIM_TEST_OUTAGE")); err == nil && d > 0 {
		return d
	}
	return 8 * time.Second
}

// outageIn stops the lab's apiserver for outageFor() as soon as the journal of
// lab-node-1 says each phase is running, then starts it again.
func (f *fixture) outageIn(ctx context.Context, phases ...string) error {
	for _, phase := range phases {
		for {
			if ctx.Err() != nil {
				return fmt.Errorf("phase %s never ran", phase)
			}
			if j, _ := (&journal.Store{T: f.n1.Transport()}).Load(ctx, f.n1.Name); j != nil && j.State(phase) == journal.Running {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := f.l.StopProcess("kube-apiserver"); err != nil {
			return err
		}
		time.Sleep(outageFor())
		if err := f.l.RestartProcess(ctx, "kube-apiserver"); err != nil {
			return err
		}
		// The lab's controllers must outlive the outage (they are not what is
		// tested): start again any that did not.
		_, dead := f.l.Running()
		for _, name := range dead {
			if name == "kube-controller-manager" || name == "kube-scheduler" {
				if err := f.l.RestartProcess(ctx, name); err != nil {
					return fmt.Errorf("%s died in the outage and did not start again: %w", name, err)
				}
			}
		}
	}
	return nil
}

// webOnNode1 puts both web replicas on lab-node-1, so that draining it
// waits on the PDB.
func (f *fixture) webOnNode1(ctx context.Context, t *testing.T) {
	t.Helper()
	setUnschedulable(ctx, t, f.c, f.n2.Name, true)
	// lab-node-2 schedulable again even when the wait fails: later cases need it.
	defer func() {
		if err := phases.RetryAPI(ctx, time.Minute, func(ctx context.Context) error {
			_, err := f.c.CoreV1().Nodes().Patch(ctx, f.n2.Name, types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{})
			return err
		}); err != nil {
			t.Errorf("uncordon %s: %v", f.n2.Name, err)
		}
	}()
	// A replacement the scheduler still puts on lab-node-2 (its cache can lag
	// the cordon, as after the apiserver restarts of an outage case) is
	// deleted again until both run on lab-node-1.
	deadline := time.Now().Add(3 * time.Minute)
	for count(f.pods(ctx, t), "web", f.n1.Name) < 2 && time.Now().Before(deadline) {
		for _, p := range f.pods(ctx, t) {
			if p.Labels["app"] == "web" && p.Spec.NodeName != "" && p.Spec.NodeName != f.n1.Name && p.DeletionTimestamp == nil {
				if err := f.c.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(2 * time.Second)
	}
	f.waitPods(ctx, t, "both web replicas on lab-node-1", func(pods []corev1.Pod) bool { return count(pods, "web", f.n1.Name) == 2 })
}

// released checks that the node's lock is not held.
func (f *fixture) released(ctx context.Context, t *testing.T, n *lab.Node) {
	t.Helper()
	if l, err := f.c.CoordinationV1().Leases("kube-system").Get(ctx, "unshim-node-"+n.Name, metav1.GetOptions{}); err == nil {
		t.Errorf("the lock of %s is still held by %v", n.Name, l.Spec.HolderIdentity)
	}
}

// watchWeb samples the ready web replicas every 100 ms until the function it
// returns is called, which returns the fewest seen in two samples running
// (a real violation lasts until a replacement is Ready, seconds; a single
// sample below the budget is logged with the pods it saw, not counted).
func (f *fixture) watchWeb(ctx context.Context, t *testing.T) func() int {
	var mu sync.Mutex
	minReady, prev := 99, 99
	var dips []string
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	describe := func(list []corev1.Pod) string {
		phase := ""
		if j, _ := (&journal.Store{T: f.n1.Transport()}).Load(wctx, f.n1.Name); j != nil {
			for _, p := range j.Phases {
				if p.State == journal.Running {
					phase = p.Name
				}
			}
		}
		out := fmt.Sprintf("%s, lab-node-1 in phase %q:", time.Now().Format("15:04:05.000"), phase)
		for _, p := range list {
			ready := len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready
			// The container's ready (what count reads) and the pod's Ready
			// condition (what budgets count; the node controller sets it
			// false when the node misses its heartbeats) can differ.
			out += fmt.Sprintf("\n  %s on %s: %s, ready %t (pod Ready condition %t), deleting %t", p.Name, p.Spec.NodeName, p.Status.Phase, ready, podutils.IsPodReady(&p), p.DeletionTimestamp != nil)
		}
		if pdb, err := f.c.PolicyV1().PodDisruptionBudgets(ns).Get(wctx, "web", metav1.GetOptions{}); err == nil {
			out += fmt.Sprintf("\n  PDB web status: %d healthy, %d desired, %d allowed, observed generation %d of %d",
				pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy, pdb.Status.DisruptionsAllowed, pdb.Status.ObservedGeneration, pdb.Generation)
		}
		return out
	}
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			list, err := f.c.CoreV1().Pods(ns).List(wctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err == nil {
				n := count(list.Items, "web", "")
				mu.Lock()
				if n < 1 {
					dips = append(dips, describe(list.Items))
				}
				minReady = min(minReady, max(prev, n))
				prev = n
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() int {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, d := range dips {
			t.Logf("a sample with no ready web pod: %s", d)
		}
		return minReady
	}
}

// sshTo gives root on node an authorized key and dials its sshd, checking
// the node's host key against a known_hosts file made from it.
func (f *fixture) sshTo(ctx context.Context, t *testing.T, n *lab.Node) *transport.SSH {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "unshim test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Transport().WriteFile(ctx, "/root/.ssh/authorized_keys", ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}
	hostKey, err := n.Transport().ReadFile(ctx, lab.SSHHostKey)
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte("[127.0.0.1]:"+strconv.Itoa(n.SSHPort)+" "+string(hostKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := transport.DialSSH(ctx, transport.SSHConfig{Host: n.SSHAddr(), User: "root", KeyFile: keyFile, KnownHostsFile: known})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// applyAgentRBAC applies deploy/rbac/unshim-agent.yaml and gives the test's
// migrator user the launcher Role it defines.
func (f *fixture) applyAgentRBAC(ctx context.Context, t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "rbac", "unshim-agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta metav1.TypeMeta
		if err := sigsyaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ServiceAccount":
			var sa corev1.ServiceAccount
			if err := sigsyaml.UnmarshalStrict([]byte(doc), &sa); err != nil {
				t.Fatal(err)
			}
			_, err = f.c.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, &sa, metav1.CreateOptions{})
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			if err := sigsyaml.UnmarshalStrict([]byte(doc), &b); err != nil {
				t.Fatal(err)
			}
			_, err = f.c.RbacV1().ClusterRoleBindings().Create(ctx, &b, metav1.CreateOptions{})
		case "Role":
			var r rbacv1.Role
			if err := sigsyaml.UnmarshalStrict([]byte(doc), &r); err != nil {
				t.Fatal(err)
			}
			if _, err = f.c.RbacV1().Roles(r.Namespace).Create(ctx, &r, metav1.CreateOptions{}); err == nil {
				_, err = f.c.RbacV1().RoleBindings(r.Namespace).Create(ctx, &rbacv1.RoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: r.Name + "-test", Namespace: r.Namespace},
					RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: r.Name},
					Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "unshim-migrator"}},
				}, metav1.CreateOptions{})
			}
		default:
			t.Fatalf("unexpected kind %q in unshim-agent.yaml", meta.Kind)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
