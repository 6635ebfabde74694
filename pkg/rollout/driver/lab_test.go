package driver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodelock"
	"github.com/unshim/unshim/pkg/nodeswitch"
	"github.com/unshim/unshim/pkg/rollout/driver"
	"github.com/unshim/unshim/pkg/rollout/store"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

const (
	ns         = "app"
	busybox    = "busybox:1.35"
	driverUser = "unshim-rollout-driver-test"
	operator   = "unshim-rollout-operator-test"
	viewer     = "unshim-rollout-viewer-test"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	l   *lab.Lab
	c   kubernetes.Interface
	dyn dynamic.Interface
	// dc, ddyn and drc act as a user holding only the driver role; op as
	// one holding only the operator role.
	dc   kubernetes.Interface
	ddyn dynamic.Interface
	drc  *rest.Config
	op   *store.Store
	bin  string
}

// TestRolloutOnLab is issue 10's end-to-end test of the driver on a lab of
// three Docker nodes with the controllers: a node made to fail (a verify
// timeout of 1s) rolls back and the failure budget 0 pauses the rollout,
// while a node whose drain a PDB never allows ends Blocked with the pod and
// PDB named, both uncordoned and untainted; then a rollout with
// maxUnavailable 1 and a canary, driven by the CLI as a user holding only
// the shipped driver role, switches all three nodes with a PDB never below
// its budget: a second `rollout run` is refused, a user with only the
// operator role pauses and resumes it, and the driver SIGKILLed mid-wave
// is replaced by a new `rollout run` that finishes the same rollout; then
// `rollout undo` switches them back over SSH, as spec.transport says.
func TestRolloutOnLab(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	l := labtest.UpForTest(ctx, t, "rollouttest", lab.Options{Nodes: 3, Controllers: true, Logger: log.New(testWriter{t}, 0)})
	f := &fixture{l: l}
	f.setup(ctx, t)
	n1, n2, n3 := l.Nodes[0], l.Nodes[1], l.Nodes[2]

	t.Run("failed node rolls back, budget pauses; blocked node named", func(t *testing.T) {
		// "stuck" has one replica on lab-node-2 under a PDB of minAvailable 1:
		// its drain can never evict it.
		f.stuck(ctx, t, n2.Name)
		m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "faults"}, Spec: v1alpha1.RuntimeMigrationSpec{
			Nodes: v1alpha1.NodeSelection{Names: []string{n2.Name, n3.Name}}, TargetRuntime: v1alpha1.TargetContainerd,
			MaxUnavailable: ptr(intstr.FromInt32(2)), Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone},
			DrainTimeout: &metav1.Duration{Duration: 40 * time.Second}, VerifyTimeout: &metav1.Duration{Duration: time.Second},
		}}
		f.create(ctx, t, m)
		got := f.driveUntilBudgetPause(ctx, t, "faults", testWriter{t})
		blocked, failed := nodeStatus(got, n2.Name), nodeStatus(got, n3.Name)
		if blocked.State != v1alpha1.NodeBlocked || blocked.Blocking == nil ||
			blocked.Blocking.PodDisruptionBudget != ns+"/stuck" || len(blocked.Blocking.Pods) != 1 || !strings.HasPrefix(blocked.Blocking.Pods[0], ns+"/stuck-") {
			t.Errorf("%s: %+v (blocking %+v); want Blocked by PDB %s/stuck, its pod named", n2.Name, blocked, blocked.Blocking, ns)
		}
		if failed.State != v1alpha1.NodeRolledBack || failed.Cause == "" {
			t.Errorf("%s: %+v; want RolledBack with a cause", n3.Name, failed)
		}
		if !strings.Contains(got.Status.Message, n3.Name) || strings.Contains(got.Status.Message, n2.Name) {
			t.Errorf("status message %q: want the failed %s named, not the blocked %s", got.Status.Message, n3.Name, n2.Name)
		}
		if c := got.Status.Counts; c.Blocked != 1 || c.RolledBack != 1 || c.Done != 0 || c.Total != 2 {
			t.Errorf("counts %+v", c)
		}
		for _, n := range []*lab.Node{n2, n3} {
			f.healthyOn(ctx, t, n.Name, "docker://", runtimelabel.Docker)
		}
		// `rollout status` says why, as a viewer sees it.
		out, err := exec.CommandContext(ctx, f.bin, "--kubeconfig", l.Kubeconfig, "--as", viewer, "rollout", "status", "faults").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "failureBudget") || !strings.Contains(string(out), "Paused") {
			t.Errorf("rollout status: %v\n%s\nwant the phase Paused and the failure budget named", err, out)
		}
		if _, err := f.op.Apply(ctx, "faults", store.Abort); err != nil {
			t.Fatal(err)
		}
		f.unstuck(ctx, t)
	})

	t.Run("a wave that does not start holds back the switches started ahead of it", func(t *testing.T) {
		// Two waves of one node. The first fails its verify (1s) and rolls
		// back, and the failure budget 0 pauses the rollout; the second
		// wave's switch, started ahead once the first waited on its
		// kubelet, is held back at its first change: its node is left as
		// it was (schedulable, its annotations untouched), with no lock and
		// no journal to resume.
		m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "ahead"}, Spec: v1alpha1.RuntimeMigrationSpec{
			Nodes: v1alpha1.NodeSelection{Names: []string{n2.Name, n3.Name}}, TargetRuntime: v1alpha1.TargetContainerd,
			MaxUnavailable: ptr(intstr.FromInt32(1)), Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone},
			DrainTimeout: &metav1.Duration{Duration: 40 * time.Second}, VerifyTimeout: &metav1.Duration{Duration: time.Second},
		}}
		// Each node's switch annotations before (the last subtest's results).
		before := map[string]map[string]string{}
		for _, n := range []*lab.Node{n2, n3} {
			node, err := f.c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			before[n.Name] = map[string]string{}
			for _, k := range []string{nodeswitch.ResultAnnotation, nodeswitch.PhaseAnnotation} {
				if v, ok := node.Annotations[k]; ok {
					before[n.Name][k] = v
				}
			}
		}
		f.create(ctx, t, m)
		out := &lockedBuffer{}
		got := f.driveUntilBudgetPause(ctx, t, "ahead", io.MultiWriter(testWriter{t}, out))
		if len(got.Status.Waves) != 2 {
			t.Fatalf("waves %+v: want two of one node", got.Status.Waves)
		}
		first, second := got.Status.Waves[0].Nodes[0], got.Status.Waves[1].Nodes[0]
		if s := nodeStatus(got, first); s.State != v1alpha1.NodeRolledBack {
			t.Errorf("%s: %+v; want RolledBack", first, s)
		}
		if s := nodeStatus(got, second); s.State != v1alpha1.NodePending || s.StartTime != nil {
			t.Errorf("%s: %+v; want Pending, never started", second, s)
		}
		for _, want := range []string{"wave 2/2: starting its 1 switches ahead", "held back the 1 switches started ahead"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("the driver did not say %q", want)
			}
		}
		node, err := f.c.CoreV1().Nodes().Get(ctx, second, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tainted := false
		for _, tn := range node.Spec.Taints {
			tainted = tainted || tn.Key == driver.TaintKey
		}
		changed := false
		for _, k := range []string{nodeswitch.ResultAnnotation, nodeswitch.PhaseAnnotation} {
			v, ok := node.Annotations[k]
			w, was := before[second][k]
			changed = changed || ok != was || v != w
		}
		if node.Spec.Unschedulable || tainted || changed {
			t.Errorf("%s after the hold-back: unschedulable %t, taints %v, annotations %v (before: %v); want it as it was", second, node.Spec.Unschedulable, node.Spec.Taints, node.Annotations, before[second])
		}
		if _, err := f.c.CoordinationV1().Leases(nodelock.Namespace).Get(ctx, nodelock.LeaseName(second), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s's lock after the hold-back: %v; want it released", second, err)
		}
		var sn *lab.Node
		for _, n := range l.Nodes {
			if n.Name == second {
				sn = n
			}
		}
		if j, err := (&journal.Store{T: sn.Transport()}).Load(ctx, second); err != nil || (j != nil && !j.RolledBack) {
			t.Errorf("%s's journal after the hold-back: %+v, %v; want none or rolled back", second, j, err)
		}
		f.healthyOn(ctx, t, second, "docker://", runtimelabel.Docker)
		if _, err := f.op.Apply(ctx, "ahead", store.Abort); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("canary, maxUnavailable 1, pause/resume, driver killed: all three switched", func(t *testing.T) {
		m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: v1alpha1.RuntimeMigrationSpec{
			TargetRuntime: v1alpha1.TargetContainerd, MaxUnavailable: ptr(intstr.FromInt32(1)),
			Canary:       v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1},
			DrainTimeout: &metav1.Duration{Duration: 3 * time.Minute}, VerifyTimeout: &metav1.Duration{Duration: 3 * time.Minute},
		}}
		f.create(ctx, t, m)
		stopWatch := f.watchWeb(ctx)
		first, out1, exited1 := f.startRun(ctx, t, "all")

		// A second driver is refused while the first holds the Lease.
		f.waitFor(ctx, t, "all", "the first driver running", 2*time.Minute, func(m *v1alpha1.RuntimeMigration) bool {
			return m.Status.Phase == v1alpha1.PhaseRunning && m.Status.Driver != ""
		})
		out, err := exec.CommandContext(ctx, f.bin, f.runArgs("all")...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "another rollout driver holds") {
			t.Errorf("second rollout run: %v\n%s\nwant exit 2, refused", err, out)
		}

		// The operator pauses during the canary: the canary finishes, the
		// rollout waits with phase Paused.
		f.waitFor(ctx, t, "all", "the canary switching", 3*time.Minute, func(m *v1alpha1.RuntimeMigration) bool {
			return nodeStatus(m, n1.Name).State == v1alpha1.NodeSwitching
		})
		if _, err := f.op.Apply(ctx, "all", store.Pause); err != nil {
			t.Fatalf("pause as the operator: %v", err)
		}
		paused := f.waitFor(ctx, t, "all", "paused after the canary", 6*time.Minute, func(m *v1alpha1.RuntimeMigration) bool {
			return m.Status.Phase == v1alpha1.PhasePaused
		})
		if s := nodeStatus(paused, n1.Name); s.State != v1alpha1.NodeDone {
			t.Fatalf("canary %s: %+v; want Done\n%s", n1.Name, s, out1)
		}
		if s := nodeStatus(paused, n2.Name); s.State != v1alpha1.NodePending {
			t.Errorf("%s switched while paused: %+v", n2.Name, s)
		}
		f.healthyOn(ctx, t, n1.Name, "containerd://", runtimelabel.Containerd)
		time.Sleep(3 * time.Second)
		if cur := f.get(ctx, t, "all"); nodeStatus(cur, n2.Name).State != v1alpha1.NodePending {
			t.Errorf("%s started while paused", n2.Name)
		}
		if _, err := f.op.Apply(ctx, "all", store.Resume); err != nil {
			t.Fatalf("resume as the operator: %v", err)
		}

		// Killed in the middle of lab-node-2's switch.
		f.waitNodePhase(ctx, t, n2.Name, "stop-docker")
		if err := first.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited1
		t.Logf("first driver (killed):\n%s", out1)
		mid := f.get(ctx, t, "all")
		if s := nodeStatus(mid, n2.Name); s.State != v1alpha1.NodeSwitching {
			t.Errorf("%s after the kill: %+v; want Switching", n2.Name, s)
		}

		// A new driver takes over at once (the killed one's process is gone),
		// settles lab-node-2 and finishes.
		out, err = exec.CommandContext(ctx, f.bin, f.runArgs("all")...).CombinedOutput()
		t.Logf("second driver:\n%s", out)
		if err != nil {
			t.Fatalf("second rollout run: %v", err)
		}
		if !strings.Contains(string(out), "taking over") || !strings.Contains(string(out), n2.Name+": resuming") {
			t.Errorf("the second driver did not say it took over and resumed %s", n2.Name)
		}
		// The last wave's switch ran its checks while lab-node-2 waited
		// on its kubelet, and went on when its wave started.
		if !strings.Contains(string(out), n3.Name+": switching to containerd (started ahead") {
			t.Errorf("the second driver did not start %s's switch ahead of its wave", n3.Name)
		}
		end := f.get(ctx, t, "all")
		if min := stopWatch(); min < 1 {
			t.Errorf("the web PDB (minAvailable 1) was violated: %d ready web pods seen", min)
		}
		if end.Status.Phase != v1alpha1.PhaseSucceeded || end.Status.Progress != "3/3" || end.Status.Counts.Done != 3 || end.Status.Counts.Total != 3 {
			t.Errorf("end: phase %s, progress %s, counts %+v, message %q", end.Status.Phase, end.Status.Progress, end.Status.Counts, end.Status.Message)
		}
		if len(end.Status.Waves) != 3 || end.Status.Waves[0].Kind != v1alpha1.WaveCanary || end.Status.Waves[0].Nodes[0] != n1.Name {
			t.Errorf("waves %+v: want the canary %s, then one node a wave", end.Status.Waves, n1.Name)
		}
		for _, w := range end.Status.Waves {
			if w.StartTime == nil || w.CompletionTime == nil {
				t.Errorf("wave %d: start %v, completion %v", w.Index, w.StartTime, w.CompletionTime)
			}
		}
		for _, n := range l.Nodes {
			if s := nodeStatus(end, n.Name); s.State != v1alpha1.NodeDone || s.StartTime == nil || s.CompletionTime == nil || s.FromRuntime != "docker" {
				t.Errorf("%s: %+v", n.Name, s)
			}
			f.healthyOn(ctx, t, n.Name, "containerd://", runtimelabel.Containerd)
		}
		events, err := f.c.CoreV1().Events(store.EventNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + n3.Name})
		if err != nil || !hasReason(events.Items, "Switched") {
			t.Errorf("no Switched Event on node %s: %v", n3.Name, err)
		}
	})

	t.Run("report, then undo: every node back on Docker, last wave first", func(t *testing.T) {
		// The report, as the viewer: every node of the run on its timeline.
		page := filepath.Join(t.TempDir(), "report.html")
		if out, err := exec.CommandContext(ctx, f.bin, "--kubeconfig", l.Kubeconfig, "--as", viewer, "rollout", "report", "all", "-o", "html", "--output-file", page).CombinedOutput(); err != nil {
			t.Fatalf("rollout report as the viewer: %v\n%s", err, out)
		}
		html, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range l.Nodes {
			if !strings.Contains(string(html), `data-node="`+n.Name+`"`) {
				t.Errorf("report: no timeline row for %s", n.Name)
			}
		}

		// The undo goes over SSH, as spec.transport says (the rollout went
		// through nsenter): the key and known_hosts from Secrets the
		// driver user may read, each node at its annotated address.
		f.overSSH(ctx, t, "all")

		// The operator may not undo: it switches nodes.
		opArgs := append([]string{"--kubeconfig", l.Kubeconfig, "--as", operator}, f.undoArgs("all")[4:]...)
		if out, err := exec.CommandContext(ctx, f.bin, opArgs...).CombinedOutput(); err == nil {
			t.Errorf("rollout undo as the operator succeeded:\n%s", out)
		}
		if s := nodeStatus(f.get(ctx, t, "all"), n3.Name); s.State != v1alpha1.NodeDone || s.UndoStartTime != nil {
			t.Fatalf("%s after the operator's undo: %+v; want untouched", n3.Name, s)
		}

		out, err := exec.CommandContext(ctx, f.bin, f.undoArgs("all")...).CombinedOutput()
		t.Logf("rollout undo:\n%s", out)
		if err != nil {
			t.Fatalf("rollout undo: %v", err)
		}
		m := f.get(ctx, t, "all")
		var last time.Time
		for _, n := range []*lab.Node{n3, n2, n1} { // last wave first
			s := nodeStatus(m, n.Name)
			if s.State != v1alpha1.NodeUndone || s.UndoStartTime == nil || s.UndoCompletionTime == nil {
				t.Errorf("%s: %+v; want Undone with its undo's times", n.Name, s)
				continue
			}
			if s.UndoStartTime.Time.Before(last) {
				t.Errorf("%s undone before the node of a later wave", n.Name)
			}
			last = s.UndoCompletionTime.Time
			f.healthyOn(ctx, t, n.Name, "docker://", runtimelabel.Docker)
		}
		if c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionUndone); c == nil || c.Status != metav1.ConditionTrue || m.Status.Counts.Undone != 3 {
			t.Errorf("Undone condition %+v, counts %+v", c, m.Status.Counts)
		}

		// The Events of the whole run: one LIST per involved object.
		evs, err := f.c.CoreV1().Events(store.EventNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=RuntimeMigration,involvedObject.name=all"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"Started", "WaveStarted", "WaveComplete", "Paused", "Resumed", "Succeeded", "UndoStarted", "NodeUndone", "Undone"} {
			if !hasReason(evs.Items, r) {
				t.Errorf("no %s Event on runtimemigration all", r)
			}
		}
		// Each node that switched is named by its wave's WaveComplete.
		var waves []string
		for _, e := range evs.Items {
			if e.Reason == "WaveComplete" {
				waves = append(waves, e.Message)
			}
		}
		for _, n := range l.Nodes {
			if !strings.Contains(strings.Join(waves, "\n"), n.Name) {
				t.Errorf("no WaveComplete Event on runtimemigration all names node %s: %q", n.Name, waves)
			}
		}
		for _, n := range l.Nodes {
			evs, err := f.c.CoreV1().Events(store.EventNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + n.Name})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []string{"Switching", "Switched", "Undoing", "Undone"} {
				if !hasReason(evs.Items, r) {
					t.Errorf("no %s Event on node %s", r, n.Name)
				}
			}
		}
		// The faults rollout's nodes got theirs too.
		evs, err = f.c.CoreV1().Events(store.EventNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + n2.Name})
		if err != nil || !hasReason(evs.Items, "Blocked") {
			t.Errorf("no Blocked Event on node %s: %v", n2.Name, err)
		}
		evs, err = f.c.CoreV1().Events(store.EventNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=RuntimeMigration,involvedObject.name=faults"})
		if err != nil || !hasReason(evs.Items, driver.ReasonFailureBudget) || !hasReason(evs.Items, "NodeRolledBack") {
			t.Errorf("no FailureBudget or NodeRolledBack Event on runtimemigration faults: %v", err)
		}
	})
}

// undoArgs undo the rollout as the driver user, reaching the nodes as its
// spec.transport says (over SSH after overSSH).
func (f *fixture) undoArgs(name string) []string {
	return []string{"--kubeconfig", f.l.Kubeconfig, "--as", driverUser, "rollout", "undo", name}
}

// overSSH makes the rollout reach the lab's nodes over SSH, as an operator
// would set it up: a key authorized on every node, a known_hosts made from
// the nodes' host keys, both in a Secret that a Role lets the driver user
// read, each node annotated with its sshd's address (the lab's nodes share
// 127.0.0.1, a port each), and spec.transport pointing at the Secret.
func (f *fixture) overSSH(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "unshim rollout test")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var known bytes.Buffer
	for _, n := range f.l.Nodes {
		if err := n.Transport().WriteFile(ctx, "/root/.ssh/authorized_keys", ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
			t.Fatal(err)
		}
		hostKey, err := n.Transport().ReadFile(ctx, lab.SSHHostKey)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&known, "[127.0.0.1]:%d %s\n", n.SSHPort, bytes.TrimSpace(hostKey))
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"127.0.0.1:%d"}}}`, v1alpha1.SSHAddressAnnotation, n.SSHPort)
		if _, err := f.c.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const secret = "unshim-rollout-ssh"
	if _, err := f.c.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret},
		Data: map[string][]byte{"id_ed25519": pem.EncodeToMemory(block), "known_hosts": known.Bytes()}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// What the README says the driver then needs: get on that Secret.
	if _, err := f.c.RbacV1().Roles("kube-system").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: secret},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{secret}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.RbacV1().RoleBindings("kube-system").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: secret},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: secret},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: driverUser}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := func(key string) v1alpha1.SecretKeyRef {
		return v1alpha1.SecretKeyRef{Namespace: "kube-system", Name: secret, Key: key}
	}
	spec, err := json.Marshal(map[string]any{"spec": map[string]any{"transport": v1alpha1.Transport{Via: v1alpha1.TransportSSH,
		SSH: &v1alpha1.SSHTransport{KeySecret: ref("id_ed25519"), KnownHostsSecret: ref("known_hosts")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.dyn.Resource(v1alpha1.GroupVersionResource).Patch(ctx, name, types.MergePatchType, spec, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func hasReason(evs []corev1.Event, reason string) bool {
	for _, e := range evs {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

func nodeStatus(m *v1alpha1.RuntimeMigration, name string) v1alpha1.NodeStatus {
	for _, n := range m.Status.Nodes {
		if n.Name == name {
			return n
		}
	}
	return v1alpha1.NodeStatus{}
}

// setupAPI makes the fixture's clients (the lab's admin, the driver and
// the operator users, with the shipped roles bound) and installs the CRD.
func (f *fixture) setupAPI(ctx context.Context, t *testing.T) {
	var err error
	if f.c, err = f.l.Client(); err != nil {
		t.Fatal(err)
	}
	rc, err := f.l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if f.dyn, err = dynamic.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	f.installCRD(ctx, t)
	f.bindRoles(ctx, t)
	f.drc = rest.CopyConfig(rc)
	f.drc.Impersonate = rest.ImpersonationConfig{UserName: driverUser}
	if f.dc, err = kubernetes.NewForConfig(f.drc); err != nil {
		t.Fatal(err)
	}
	if f.ddyn, err = dynamic.NewForConfig(f.drc); err != nil {
		t.Fatal(err)
	}
	orc := rest.CopyConfig(rc)
	orc.Impersonate = rest.ImpersonationConfig{UserName: operator}
	oc, err := kubernetes.NewForConfig(orc)
	if err != nil {
		t.Fatal(err)
	}
	odyn, err := dynamic.NewForConfig(orc)
	if err != nil {
		t.Fatal(err)
	}
	f.op = &store.Store{Dynamic: odyn, Kube: oc, Actor: operator}
}

// setup is setupAPI, then builds the CLI and deploys the workloads: web,
// two replicas under a PDB of minAvailable 1, and a DaemonSet.
func (f *fixture) setup(ctx context.Context, t *testing.T) {
	f.setupAPI(ctx, t)
	f.bin = buildUnshim(ctx, t)

	if _, err := f.c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := lab.EnsureServiceAccount(ctx, f.c, ns); err != nil {
		t.Fatal(err)
	}
	replicas := int32(2)
	if _, err := f.c.AppsV1().Deployments(ns).Create(ctx, deployment("web", replicas, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.pdb(ctx, t, "web", 1)
	if _, err := f.c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels("agent")},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels("agent")}, Spec: podSpec()}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitPods(ctx, t, "web x2 and agent on every node", func(pods []corev1.Pod) bool {
		return count(pods, "web", "") == 2 && count(pods, "agent", "") == len(f.l.Nodes)
	})
}

// buildUnshim builds the unshim binary into the test's temporary directory.
func buildUnshim(ctx context.Context, t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "unshim")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/unshim/unshim/cmd/unshim").CombinedOutput(); err != nil {
		t.Fatalf("build unshim: %v\n%s", err, out)
	}
	return bin
}

func labels(app string) map[string]string { return map[string]string{"app": app} }

func podSpec() corev1.PodSpec {
	grace := int64(1)
	return corev1.PodSpec{
		AutomountServiceAccountToken:  new(bool),
		TerminationGracePeriodSeconds: &grace,
		Containers: []corev1.Container{{Name: "main", Image: busybox, ImagePullPolicy: corev1.PullNever,
			Command: []string{"sh", "-c", "while true; do sleep 1; done"}}},
	}
}

func deployment(name string, replicas int32, nodeSelector map[string]string) *appsv1.Deployment {
	spec := podSpec()
	spec.NodeSelector = nodeSelector
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels(name)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(name)}, Spec: spec}},
	}
}

func (f *fixture) pdb(ctx context.Context, t *testing.T, app string, minAvailable int32) {
	t.Helper()
	mv := intstr.FromInt32(minAvailable)
	if _, err := f.c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &mv, Selector: &metav1.LabelSelector{MatchLabels: labels(app)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// stuck runs one replica of "stuck" on node under a PDB that never allows
// its eviction (minAvailable = replicas).
func (f *fixture) stuck(ctx context.Context, t *testing.T, node string) {
	t.Helper()
	if _, err := f.c.AppsV1().Deployments(ns).Create(ctx, deployment("stuck", 1, map[string]string{"kubernetes.io/hostname": node}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.pdb(ctx, t, "stuck", 1)
	f.waitPods(ctx, t, "stuck on "+node, func(pods []corev1.Pod) bool { return count(pods, "stuck", node) == 1 })
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := f.c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "stuck", metav1.GetOptions{})
		if err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == 1 && p.Status.DisruptionsAllowed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PDB stuck: %+v, %v", p, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (f *fixture) unstuck(ctx context.Context, t *testing.T) {
	if err := f.c.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, "stuck", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.AppsV1().Deployments(ns).Delete(ctx, "stuck", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
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

func (f *fixture) waitPods(ctx context.Context, t *testing.T, what string, ok func([]corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		list, err := f.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && ok(list.Items) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%v)", what, err)
		}
		time.Sleep(time.Second)
	}
}

// watchWeb records the fewest ready web pods seen until the returned
// function is called.
func (f *fixture) watchWeb(ctx context.Context) func() int {
	var mu sync.Mutex
	minReady := 99
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			list, err := f.c.CoreV1().Pods(ns).List(wctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err == nil {
				mu.Lock()
				minReady = min(minReady, count(list.Items, "web", ""))
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
		return minReady
	}
}

// healthyOn checks the node runs runtime (prefix), is Ready, schedulable,
// without the driver's taint or cordon mark, and labelled label.
func (f *fixture) healthyOn(ctx context.Context, t *testing.T, name, runtime, label string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := f.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var problems []string
		if !strings.HasPrefix(n.Status.NodeInfo.ContainerRuntimeVersion, runtime) {
			problems = append(problems, "runtime "+n.Status.NodeInfo.ContainerRuntimeVersion)
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		if !ready {
			problems = append(problems, "not Ready")
		}
		if n.Spec.Unschedulable {
			problems = append(problems, "unschedulable")
		}
		for _, tt := range n.Spec.Taints {
			if tt.Key == driver.TaintKey {
				problems = append(problems, "tainted "+tt.Key)
			}
		}
		if _, ok := n.Annotations[driver.CordonedAnnotation]; ok {
			problems = append(problems, "still marked "+driver.CordonedAnnotation)
		}
		if n.Labels[runtimelabel.Key] != label {
			problems = append(problems, fmt.Sprintf("label %s=%q", runtimelabel.Key, n.Labels[runtimelabel.Key]))
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("node %s: %s; want %s, Ready, schedulable, untainted, labelled %s", name, strings.Join(problems, ", "), runtime, label)
			return
		}
		time.Sleep(time.Second)
	}
}

func (f *fixture) installCRD(ctx context.Context, t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "crd", "unshim.io_runtimemigrations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := sigsyaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	crds := f.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := f.dyn.Resource(v1alpha1.GroupVersionResource).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the RuntimeMigration CRD is not served")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bindRoles creates the shipped rollout roles and binds each to its test
// user.
func (f *fixture) bindRoles(ctx context.Context, t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "rbac", "unshim-rollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"unshim-rollout-driver": driverUser, "unshim-rollout-operator": operator, "unshim-rollout-viewer": viewer}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var r rbacv1.ClusterRole
		if err := sigsyaml.UnmarshalStrict(doc, &r); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.RbacV1().ClusterRoles().Create(ctx, &r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		user, ok := users[r.Name]
		if !ok {
			continue
		}
		if _, err := f.c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: r.Name + "-test"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: r.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) create(ctx context.Context, t *testing.T, m *v1alpha1.RuntimeMigration) {
	t.Helper()
	if _, err := f.op.Create(ctx, m); err != nil {
		t.Fatalf("create as the operator: %v", err)
	}
}

func (f *fixture) get(ctx context.Context, t *testing.T, name string) *v1alpha1.RuntimeMigration {
	t.Helper()
	m, err := (&store.Store{Dynamic: f.dyn}).Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) waitFor(ctx context.Context, t *testing.T, name, what string, timeout time.Duration, ok func(*v1alpha1.RuntimeMigration) bool) *v1alpha1.RuntimeMigration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := f.get(ctx, t, name)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: phase %s %q, nodes %+v", what, m.Status.Phase, m.Status.Message, m.Status.Nodes)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitNodePhase returns once the node's journal says phase is running
// (the phase annotation is written at most every few seconds, and a short
// phase may never show there).
func (f *fixture) waitNodePhase(ctx context.Context, t *testing.T, node, phase string) {
	t.Helper()
	var n *lab.Node
	for _, ln := range f.l.Nodes {
		if ln.Name == node {
			n = ln
		}
	}
	if n == nil {
		t.Fatalf("no lab node %s", node)
	}
	st := &journal.Store{T: n.Transport()}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if j, err := st.Load(ctx, node); err == nil && j != nil && j.State(phase) == journal.Running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s never reached phase %s", node, phase)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// driveUntilBudgetPause drives the rollout name in this process, its lines
// to out, until the failure budget pauses it, and returns it as then.
func (f *fixture) driveUntilBudgetPause(ctx context.Context, t *testing.T, name string, out io.Writer) *v1alpha1.RuntimeMigration {
	t.Helper()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.driveTo(rctx, t, name, out) }()
	got := f.waitFor(ctx, t, name, "Paused by the failure budget", 10*time.Minute, func(m *v1alpha1.RuntimeMigration) bool {
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionPaused)
		return m.Status.Phase == v1alpha1.PhasePaused && c != nil && c.Reason == driver.ReasonFailureBudget
	})
	stop()
	if err := <-done; err != nil && rctx.Err() == nil {
		t.Errorf("driver: %v", err)
	}
	return got
}

// driveTo runs the driver in this process, as the driver user, reaching the
// lab's nodes through nsenter, its progress lines to out.
func (f *fixture) driveTo(ctx context.Context, t *testing.T, name string, out io.Writer) error {
	pids := map[string]int{}
	for _, n := range f.l.Nodes {
		pids[n.Name] = n.LeaderPID
	}
	sw, cleanup, err := driver.NewSwitcher(ctx, &v1alpha1.RuntimeMigrationSpec{}, driver.SwitcherOptions{Client: f.dc, RESTConfig: f.drc,
		Via: driver.TransportNsenter, PIDs: pids, Logger: log.New(testWriter{t}, 0)})
	if err != nil {
		return err
	}
	defer cleanup()
	d, err := driver.New(driver.Options{Name: name, Store: &store.Store{Dynamic: f.ddyn, Kube: f.dc, Actor: "test"}, Client: f.dc,
		Switcher: sw, Holder: "test", Out: out})
	if err != nil {
		return err
	}
	return driver.Hold(ctx, f.dc, "test-"+strconv.Itoa(os.Getpid()), driver.LeaseTiming{}, d.Run)
}

func (f *fixture) runArgs(name string) []string {
	args := []string{"--kubeconfig", f.l.Kubeconfig, "--as", driverUser, "rollout", "run", name, "--via", "nsenter"}
	for _, n := range f.l.Nodes {
		args = append(args, "--target-pid", n.Name+"="+strconv.Itoa(n.LeaderPID))
	}
	return args
}

func (f *fixture) startRun(ctx context.Context, t *testing.T, name string) (*exec.Cmd, *lockedBuffer, <-chan error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, f.bin, f.runArgs(name)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return cmd, out, exited
}
