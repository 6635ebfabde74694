package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeswitch"
	"github.com/unshim/unshim/pkg/pin"
	"github.com/unshim/unshim/pkg/rollout/store"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

// fakeSwitch stands in for the node switch on a fake cluster: a node in
// blocked ends as a drain blocked by a PDB, one in fail rolls back, any
// other is switched (its runtime set to containerd). It records, when each
// switch starts, which nodes were cordoned and tainted.
type fakeSwitch struct {
	c       *fake.Clientset
	blocked map[string]bool
	fail    map[string]bool
	// during is called while a switch runs (tests pause or abort there).
	during func(node string)

	mu      sync.Mutex
	order   []string
	held    map[string][]string // node -> nodes cordoned+tainted when it started
	running int
	maxRun  int
}

func (f *fakeSwitch) Switch(ctx context.Context, node string, s phases.Settings) error {
	f.mu.Lock()
	f.order = append(f.order, node)
	f.running++
	f.maxRun = max(f.maxRun, f.running)
	nodes, _ := f.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	var held []string
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable && hasTaint(&n) {
			held = append(held, n.Name)
		}
	}
	f.held[node] = held
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	if s.Target != v1alpha1.TargetContainerd || s.DrainTimeout != 42*time.Second || s.VerifyTimeout != v1alpha1.DefaultVerifyTimeout {
		return fmt.Errorf("settings %+v: want the spec's target and timeouts", s)
	}
	time.Sleep(20 * time.Millisecond) // let the nodes of a wave overlap
	if f.during != nil {
		f.during(node)
	}
	switch {
	case f.blocked[node]:
		return &phases.DrainBlockedError{Node: node, Timeout: s.DrainTimeout, Pods: []string{"db/pg-0"}, PDBs: []string{"db/pg"}, Err: errors.New("timed out")}
	case f.fail[node]:
		return &migrate.PhaseError{Phase: "verify", Err: errors.New("kubelet not Ready"), RolledBack: true}
	}
	n, err := f.c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	n.Status.NodeInfo.ContainerRuntimeVersion = "containerd://1.7.24"
	if n, err = f.c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return err
	}
	// The switch's last write, as nodeswitch.Run's.
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[nodeswitch.ResultAnnotation] = "succeeded"
	_, err = f.c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	return err
}

func testNode(name string, unschedulable bool) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/os": "linux"}},
		Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
		Status: corev1.NodeStatus{
			NodeInfo:   corev1.NodeSystemInfo{ContainerRuntimeVersion: "docker://20.10.24", KubeletVersion: "v1.23.17", OperatingSystem: "linux"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

type env struct {
	kc  *fake.Clientset
	st  *store.Store
	sw  *fakeSwitch
	out *bytes.Buffer
}

func newEnv(t *testing.T, nodes ...*corev1.Node) *env {
	t.Helper()
	lists := map[schema.GroupVersionResource]string{v1alpha1.GroupVersionResource: v1alpha1.ListKind}
	for _, r := range []schema.GroupVersionResource{
		{Group: "apps", Version: "v1", Resource: "deployments"}, {Group: "apps", Version: "v1", Resource: "statefulsets"},
		{Group: "apps", Version: "v1", Resource: "daemonsets"}, {Group: "apps", Version: "v1", Resource: "replicasets"},
		{Version: "v1", Resource: "replicationcontrollers"}, {Group: "batch", Version: "v1", Resource: "cronjobs"},
	} {
		lists[r] = "List"
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists)
	// As the apiserver's status subresource: an update of status changes
	// only the status (the fake would write the whole object, spec and
	// annotations the operator changed meanwhile included).
	dyn.PrependReactor("update", v1alpha1.Resource, func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		u := a.(clienttesting.UpdateAction).GetObject().(*unstructured.Unstructured)
		cur, err := dyn.Tracker().Get(v1alpha1.GroupVersionResource, "", u.GetName())
		if err != nil {
			return true, nil, err
		}
		out := cur.(*unstructured.Unstructured).DeepCopy()
		out.Object["status"] = u.Object["status"]
		if err := dyn.Tracker().Update(v1alpha1.GroupVersionResource, out, ""); err != nil {
			return true, nil, err
		}
		return true, out, nil
	})
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, n)
	}
	kc := fake.NewClientset(objs...)
	apiserverNodes(kc)
	return &env{kc: kc, st: &store.Store{Dynamic: dyn, Kube: kc, Actor: "test"},
		sw: &fakeSwitch{c: kc, held: map[string][]string{}}, out: &bytes.Buffer{}}
}

// apiserverNodes makes the fake's Nodes behave as the apiserver's where the
// driver relies on it: every write gets a new resourceVersion, an update
// with a stale one is refused (Conflict: the driver's cordon and uncordon
// write the node as the phase watch last saw it, and read it again on a
// conflict), an update of the node leaves its status as it is and an
// update of its status only the status. (The fake tracker keeps no
// resourceVersions: a stale write there silently undoes newer ones.)
func apiserverNodes(kc *fake.Clientset) {
	gvr := corev1.SchemeGroupVersion.WithResource("nodes")
	var mu sync.Mutex
	rv := 1000
	current := func(name string) (*corev1.Node, error) {
		obj, err := kc.Tracker().Get(gvr, "", name)
		if err != nil {
			return nil, err
		}
		return obj.(*corev1.Node).DeepCopy(), nil
	}
	store := func(n *corev1.Node) (bool, runtime.Object, error) {
		rv++
		n.ResourceVersion = strconv.Itoa(rv)
		return true, n, kc.Tracker().Update(gvr, n, "")
	}
	kc.PrependReactor("update", "nodes", func(a clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		n := a.(clienttesting.UpdateAction).GetObject().(*corev1.Node).DeepCopy()
		cur, err := current(n.Name)
		if err != nil {
			return true, nil, err
		}
		if n.ResourceVersion != "" && n.ResourceVersion != cur.ResourceVersion {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), n.Name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		if a.GetSubresource() == "status" {
			cur.Status = n.Status
			return store(cur)
		}
		n.Status = cur.Status
		return store(n)
	})
	kc.PrependReactor("patch", "nodes", func(a clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		p := a.(clienttesting.PatchAction)
		cur, err := current(p.GetName())
		if err != nil {
			return true, nil, err
		}
		orig, err := json.Marshal(cur)
		if err != nil {
			return true, nil, err
		}
		var patched []byte
		switch p.GetPatchType() {
		case types.MergePatchType:
			patched, err = jsonpatch.MergePatch(orig, p.GetPatch())
		case types.StrategicMergePatchType:
			patched, err = strategicpatch.StrategicMergePatch(orig, p.GetPatch(), corev1.Node{})
		default:
			return false, nil, nil
		}
		if err != nil {
			return true, nil, err
		}
		var n corev1.Node
		if err := json.Unmarshal(patched, &n); err != nil {
			return true, nil, err
		}
		if a.GetSubresource() == "status" {
			cur.Status = n.Status
			return store(cur)
		}
		n.Status = cur.Status
		return store(&n)
	})
}

func (e *env) create(t *testing.T, spec v1alpha1.RuntimeMigrationSpec) {
	t.Helper()
	spec.TargetRuntime = v1alpha1.TargetContainerd
	spec.DrainTimeout = &metav1.Duration{Duration: 42 * time.Second}
	if _, err := e.st.Create(t.Context(), &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: spec}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) driver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(Options{Name: "r", Store: e.st, Client: e.kc, Switcher: e.sw, Holder: "test-driver", Out: &syncWriter{w: e.out}, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (e *env) get(t *testing.T) *v1alpha1.RuntimeMigration {
	t.Helper()
	m, err := e.st.Get(context.WithoutCancel(t.Context()), "r")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run drives the rollout in the background; the returned function waits
// for the driver to return.
func (e *env) run(t *testing.T, ctx context.Context) func() error {
	d := e.driver(t)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("the driver did not return; output:\n%s", e.out)
			return nil
		}
	}
}

func (e *env) waitPhase(t *testing.T, phase, reason string) *v1alpha1.RuntimeMigration {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := e.get(t)
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionPaused)
		if m.Status.Phase == phase && (reason == "" || c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("phase %s %q, conditions %+v; want %s %s\n%s", m.Status.Phase, m.Status.Message, m.Status.Conditions, phase, reason, e.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func states(m *v1alpha1.RuntimeMigration) map[string]string {
	out := map[string]string{}
	for _, n := range m.Status.Nodes {
		out[n.Name] = n.State
	}
	return out
}

// released checks that no node keeps the wave's taint or cordon mark, that
// a node is unschedulable only when wantCordoned says so, and that the
// runtime label is true.
func (e *env) released(t *testing.T, wantCordoned ...string) {
	t.Helper()
	nodes, err := e.kc.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if hasTaint(&n) || n.Annotations[CordonedAnnotation] != "" {
			t.Errorf("node %s keeps the wave's taint or mark: %+v %v", n.Name, n.Spec.Taints, n.Annotations)
		}
		if n.Spec.Unschedulable != slices.Contains(wantCordoned, n.Name) {
			t.Errorf("node %s unschedulable=%t", n.Name, n.Spec.Unschedulable)
		}
		if got, want := n.Labels[runtimelabel.Key], runtimelabel.Value(&n); got != want {
			t.Errorf("node %s label %s=%q, want %q", n.Name, runtimelabel.Key, got, want)
		}
	}
}

func TestRolloutAllSwitched(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false), testNode("c", false), testNode("d", true))
	// d was cordoned by someone else before the rollout: it stays cordoned.
	e.create(t, v1alpha1.RuntimeMigrationSpec{MaxUnavailable: ptr(intstr.FromInt32(2)), Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1}})
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	m := e.get(t)
	if m.Status.Phase != v1alpha1.PhaseSucceeded || m.Status.Progress != "4/4" || m.Status.Counts.Done != 4 || m.Status.Driver != "test-driver" {
		t.Fatalf("status: phase %s %q, progress %s, counts %+v, driver %q\n%s", m.Status.Phase, m.Status.Message, m.Status.Progress, m.Status.Counts, m.Status.Driver, e.out)
	}
	var waves [][]string
	for _, w := range m.Status.Waves {
		waves = append(waves, w.Nodes)
		if w.StartTime == nil || w.CompletionTime == nil {
			t.Errorf("wave %d has no start or completion time", w.Index)
		}
	}
	if fmt.Sprint(waves) != "[[a] [b c] [d]]" {
		t.Errorf("waves %v: want the canary a, then two at a time", waves)
	}
	// Every node of a wave was cordoned and tainted before any was switched.
	if got := e.sw.held["b"]; !slices.Contains(got, "b") || !slices.Contains(got, "c") {
		t.Errorf("when b started, cordoned+tainted were %v: want b and c", got)
	}
	if got := e.sw.held["a"]; fmt.Sprint(got) != "[a]" {
		t.Errorf("when the canary started, cordoned+tainted were %v: want a alone", got)
	}
	if got := e.sw.held["d"]; fmt.Sprint(got) != "[d]" {
		t.Errorf("when d started, cordoned+tainted were %v: want d (cordoned before, tainted too)", got)
	}
	if e.sw.maxRun != 2 {
		t.Errorf("at most %d switches ran at once: want 2 (maxUnavailable)", e.sw.maxRun)
	}
	e.released(t, "d")
	evs, _ := e.kc.CoreV1().Events(store.EventNamespace).List(context.Background(), metav1.ListOptions{})
	var reasons []string
	for _, ev := range evs.Items {
		reasons = append(reasons, ev.InvolvedObject.Kind+"/"+ev.Reason)
	}
	for _, want := range []string{"Node/Switching", "Node/Switched", "RuntimeMigration/WaveStarted", "RuntimeMigration/Succeeded"} {
		if !slices.Contains(reasons, want) {
			t.Errorf("no %s Event among %v", want, reasons)
		}
	}
	if !strings.Contains(e.out.String(), "wave 2/3 (Workers): b: done") {
		t.Errorf("no progress line for b's end:\n%s", e.out)
	}
}

func TestRolloutBlockedGoesOn(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false), testNode("c", false))
	e.sw.blocked = map[string]bool{"b": true}
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}})
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	m := e.get(t)
	if got := states(m); got["a"] != v1alpha1.NodeDone || got["b"] != v1alpha1.NodeBlocked || got["c"] != v1alpha1.NodeDone {
		t.Fatalf("states %v\n%s", got, e.out)
	}
	b := m.Status.Nodes[1]
	if b.Blocking == nil || b.Blocking.PodDisruptionBudget != "db/pg" || fmt.Sprint(b.Blocking.Pods) != "[db/pg-0]" || !strings.Contains(b.Cause, "still blocked") {
		t.Errorf("b: %+v %+v", b, b.Blocking)
	}
	// Not Succeeded: b still runs Docker. Completed, with the Blocked
	// condition naming it.
	if m.Status.Phase != v1alpha1.PhaseCompleted || !strings.Contains(m.Status.Message, "blocked by PodDisruptionBudgets: b") || m.Status.Counts.Blocked != 1 {
		t.Errorf("phase %s %q counts %+v", m.Status.Phase, m.Status.Message, m.Status.Counts)
	}
	if c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionBlocked); c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "b") {
		t.Errorf("Blocked condition %+v: want True naming b", c)
	}
	if b.FailedPhase != "drain" {
		t.Errorf("b: failedPhase %q, want drain", b.FailedPhase)
	}
	if !m.Ended() {
		t.Errorf("phase %s is not an end", m.Status.Phase)
	}
	e.released(t)
}

func TestRolloutWithoutBlockedSucceeds(t *testing.T) {
	e := newEnv(t, testNode("a", false))
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}})
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	m := e.get(t)
	c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionBlocked)
	if m.Status.Phase != v1alpha1.PhaseSucceeded || c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("phase %s, Blocked condition %+v: want Succeeded, Blocked False", m.Status.Phase, c)
	}
}

// A Windows node is planned in a wave of its own; the switch refuses
// Windows, so the driver skips it with the reason, never cordons it, and
// does not count it against the failure budget (0 here: a failure would
// pause the rollout).
func TestRolloutSkipsWindows(t *testing.T) {
	win := testNode("w", false)
	win.Labels["kubernetes.io/os"] = "windows"
	win.Status.NodeInfo.OperatingSystem = "windows"
	e := newEnv(t, testNode("a", false), win)
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}})
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	m := e.get(t)
	var w v1alpha1.NodeStatus
	for _, n := range m.Status.Nodes {
		if n.Name == "w" {
			w = n
		}
	}
	if w.State != v1alpha1.NodeSkipped || !strings.Contains(w.Cause, "Windows") {
		t.Errorf("w: %+v; want Skipped, the reason naming Windows", w)
	}
	if m.Status.Phase != v1alpha1.PhaseSucceeded || m.Status.Counts.Skipped != 1 || m.Status.Counts.Failed != 0 || m.Status.Counts.Done != 1 {
		t.Errorf("phase %s %q counts %+v; want Succeeded, 1 done, 1 skipped", m.Status.Phase, m.Status.Message, m.Status.Counts)
	}
	e.sw.mu.Lock()
	order := slices.Clone(e.sw.order)
	e.sw.mu.Unlock()
	if slices.Contains(order, "w") {
		t.Errorf("the switch ran on the Windows node: %v", order)
	}
	e.released(t)
}

func TestRolloutFailuresPause(t *testing.T) {
	for _, tc := range []struct {
		description string
		spec        v1alpha1.RuntimeMigrationSpec
		fail        string
		reason      string
		wantPending []string
		// next is switched once the rollout is resumed.
		next string
	}{
		{"a failed canary stops the rollout", v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1}, FailureBudget: v1alpha1.FailureBudget{PerWave: 5, Total: 5}},
			"a", ReasonCanaryFailed, []string{"b", "c"}, "b"},
		{"over the total budget", v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}, FailureBudget: v1alpha1.FailureBudget{PerWave: 1, Total: 0}},
			"a", ReasonFailureBudget, []string{"b", "c"}, "b"},
		{"over the per-wave budget", v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}, MaxUnavailable: ptr(intstr.FromInt32(2)), FailureBudget: v1alpha1.FailureBudget{Total: 3}},
			"b", ReasonFailureBudget, []string{"c"}, "c"},
		{"a failing gate", v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone},
			Gates: []v1alpha1.Gate{{Name: "smoke", Type: v1alpha1.GateCommand, Command: []string{"false"}}}},
			"", ReasonGateFailed, []string{"b", "c"}, "b"},
	} {
		t.Run(tc.description, func(t *testing.T) {
			e := newEnv(t, testNode("a", false), testNode("b", false), testNode("c", false))
			e.sw.fail = map[string]bool{tc.fail: true}
			e.create(t, tc.spec)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			wait := e.run(t, ctx)
			e.waitPhase(t, v1alpha1.PhasePaused, tc.reason)
			time.Sleep(50 * time.Millisecond) // it stays paused
			m := e.get(t)
			if m.Status.Phase != v1alpha1.PhasePaused {
				t.Errorf("phase %s after the pause: want it to stay Paused", m.Status.Phase)
			}
			for _, n := range tc.wantPending {
				if states(m)[n] != v1alpha1.NodePending {
					t.Errorf("%s switched while paused: %v\n%s", n, states(m), e.out)
				}
			}
			if tc.fail != "" {
				if s := states(m)[tc.fail]; s != v1alpha1.NodeRolledBack || !strings.Contains(m.Status.Message, tc.fail+": phase verify") {
					t.Errorf("%s: %s; message %q: want RolledBack and named", tc.fail, s, m.Status.Message)
				}
			}
			e.released(t)
			// Resume lifts the driver's own pause: the rollout goes on.
			if _, err := e.st.Apply(ctx, "r", store.Resume); err != nil {
				t.Fatal(err)
			}
			if tc.reason == ReasonGateFailed {
				// The gate fails again after the next wave: abort there.
				e.waitUntil(t, func(m *v1alpha1.RuntimeMigration) bool { return states(m)["b"] == v1alpha1.NodeDone })
				if _, err := e.st.Apply(ctx, "r", store.Abort); err != nil {
					t.Fatal(err)
				}
				if err := wait(); err != nil {
					t.Fatal(err)
				}
				if m := e.get(t); m.Status.Phase != v1alpha1.PhaseAborted || states(m)["c"] != v1alpha1.NodePending {
					t.Errorf("after abort: %s %v", m.Status.Phase, states(m))
				}
				return
			}
			e.waitUntil(t, func(m *v1alpha1.RuntimeMigration) bool { return states(m)[tc.next] == v1alpha1.NodeDone })
			if tc.fail != "" {
				if got := states(e.get(t))[tc.fail]; got != v1alpha1.NodeRolledBack {
					t.Errorf("%s: %s", tc.fail, got)
				}
				for _, n := range e.get(t).Status.Nodes {
					if n.Name == tc.fail && n.FailedPhase != "verify" {
						t.Errorf("%s: failedPhase %q, want verify", n.Name, n.FailedPhase)
					}
				}
			}
			cancel()
			_ = wait()
		})
	}
}

// A resume past the total budget means "go on despite it": no pause after
// the next wave, but a new failure pauses again.
func TestRolloutResumedPastBudget(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false), testNode("c", false), testNode("d", false))
	e.sw.fail = map[string]bool{"a": true, "c": true}
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}, FailureBudget: v1alpha1.FailureBudget{PerWave: 1, Total: 0}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wait := e.run(t, ctx)
	e.waitPhase(t, v1alpha1.PhasePaused, ReasonFailureBudget)
	if _, err := e.st.Apply(ctx, "r", store.Resume); err != nil {
		t.Fatal(err)
	}
	// b switches and the rollout goes on to c without pausing; c fails: a
	// new failure, so it pauses again before d.
	e.waitUntil(t, func(m *v1alpha1.RuntimeMigration) bool { return states(m)["c"] == v1alpha1.NodeRolledBack })
	e.waitPhase(t, v1alpha1.PhasePaused, ReasonFailureBudget)
	m := e.get(t)
	if got := states(m); got["b"] != v1alpha1.NodeDone || got["d"] != v1alpha1.NodePending {
		t.Errorf("states %v: want b Done, d Pending (paused on c's failure)\n%s", got, e.out)
	}
	if m.Status.AcceptedFailures != 1 {
		t.Errorf("acceptedFailures %d, want 1 (a, resumed past)", m.Status.AcceptedFailures)
	}
	if c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionPaused); c == nil || !strings.Contains(c.Message, "c: phase verify") {
		t.Errorf("paused condition %+v: want c named", c)
	}
	// Resumed again: d switches and the rollout ends Failed.
	if _, err := e.st.Apply(ctx, "r", store.Resume); err != nil {
		t.Fatal(err)
	}
	e.waitUntil(t, func(m *v1alpha1.RuntimeMigration) bool { return m.Ended() })
	if m := e.get(t); m.Status.Phase != v1alpha1.PhaseFailed || states(m)["d"] != v1alpha1.NodeDone {
		t.Errorf("end: %s %v", m.Status.Phase, states(m))
	}
	cancel()
	_ = wait()
}

func (e *env) waitUntil(t *testing.T, ok func(*v1alpha1.RuntimeMigration) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(e.get(t)) {
		if time.Now().After(deadline) {
			m := e.get(t)
			t.Fatalf("timed out: phase %s %q %v\n%s", m.Status.Phase, m.Status.Message, states(m), e.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRolloutPauseAndResume(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false))
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}})
	paused := make(chan struct{})
	e.sw.during = func(node string) {
		if node == "a" {
			if _, err := e.st.Apply(context.Background(), "r", store.Pause); err != nil {
				t.Error(err)
			}
			close(paused)
		}
	}
	wait := e.run(t, t.Context())
	<-paused
	m := e.waitPhase(t, v1alpha1.PhasePaused, ReasonSpecPaused)
	if got := states(m); got["a"] != v1alpha1.NodeDone || got["b"] != v1alpha1.NodePending {
		t.Fatalf("paused during a: %v; want a finished, b not started", got)
	}
	if _, err := e.st.Apply(t.Context(), "r", store.Resume); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if m := e.get(t); m.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Errorf("after resume: %s %v", m.Status.Phase, states(m))
	}
}

// A driver that takes over settles a node a killed driver left Switching
// from the result the switch recorded on it, without switching it again.
func TestRolloutTakeOver(t *testing.T) {
	a, b := testNode("a", false), testNode("b", false)
	b.Status.NodeInfo.ContainerRuntimeVersion = "containerd://1.7.24" // its switch finished
	b.Annotations = map[string]string{nodeswitch.ResultAnnotation: "succeeded", CordonedAnnotation: "true"}
	b.Spec.Unschedulable = true
	b.Spec.Taints = []corev1.Taint{{Key: TaintKey, Effect: corev1.TaintEffectNoSchedule}}
	e := newEnv(t, a, b)
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}})
	// What the killed driver wrote: b switching in the first wave.
	m := e.get(t)
	now := metav1.Now()
	m.Status = v1alpha1.RuntimeMigrationStatus{Phase: v1alpha1.PhaseRunning, StartTime: &now, Driver: "killed",
		Waves: []v1alpha1.WaveStatus{{Index: 0, Kind: v1alpha1.WaveWorkers, Nodes: []string{"b"}, StartTime: &now}, {Index: 1, Kind: v1alpha1.WaveWorkers, Nodes: []string{"a"}}},
		Nodes: []v1alpha1.NodeStatus{{Name: "b", State: v1alpha1.NodeSwitching, StartTime: &now, FromRuntime: "docker"}, {Name: "a", Wave: 1, State: v1alpha1.NodePending, FromRuntime: "docker"}}}
	u, err := v1alpha1.ToUnstructured(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Dynamic.Resource(v1alpha1.GroupVersionResource).UpdateStatus(t.Context(), u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	m = e.get(t)
	if m.Status.Phase != v1alpha1.PhaseSucceeded || states(m)["b"] != v1alpha1.NodeDone || m.Status.Driver != "test-driver" {
		t.Fatalf("phase %s %v driver %s\n%s", m.Status.Phase, states(m), m.Status.Driver, e.out)
	}
	if fmt.Sprint(e.sw.order) != "[a]" {
		t.Errorf("switched %v: want only a (b's switch had ended)", e.sw.order)
	}
	if !strings.Contains(e.out.String(), "taking over from driver \"killed\"") {
		t.Errorf("no take-over line:\n%s", e.out)
	}
	e.released(t)
}

func TestRolloutAbortAndBadSpec(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false))
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}, Abort: true})
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	if m := e.get(t); m.Status.Phase != v1alpha1.PhaseAborted || len(e.sw.order) != 0 {
		t.Errorf("aborted before the first wave: phase %s, switched %v", m.Status.Phase, e.sw.order)
	}

	e = newEnv(t, testNode("a", false))
	e.create(t, v1alpha1.RuntimeMigrationSpec{Nodes: v1alpha1.NodeSelection{Names: []string{"nope"}}})
	err := e.run(t, t.Context())()
	if m := e.get(t); err == nil || m.Status.Phase != v1alpha1.PhaseFailed || !strings.Contains(m.Status.Message, "node not found: nope") {
		t.Errorf("a plan that cannot be made: %v; phase %s %q", err, m.Status.Phase, m.Status.Message)
	}
}

func TestClassifyAndResult(t *testing.T) {
	pe := &migrate.PhaseError{Phase: "verify", Err: errors.New("x"), RolledBack: true}
	for _, tc := range []struct {
		description string
		err         error
		interrupted bool
		want        string
		keep        bool
	}{
		{"success", nil, false, v1alpha1.NodeDone, false},
		{"rolled back", pe, false, v1alpha1.NodeRolledBack, false},
		{"interrupted and rolled back: run again", &migrate.PhaseError{Phase: "drain", Err: migrate.ErrInterrupted, RolledBack: true, Interrupted: true}, true, v1alpha1.NodePending, false},
		{"rollback failed: left cordoned", &migrate.PhaseError{Phase: "verify", Err: errors.New("x"), RollbackErr: errors.New("y")}, false, v1alpha1.NodeFailed, true},
		{"refused before any change", errors.New("node lock held"), false, v1alpha1.NodeFailed, false},
		{"drain blocked", fmt.Errorf("wrapped: %w", &phases.DrainBlockedError{Node: "n", Pods: []string{"a/b"}, PDBs: []string{"a/p"}, Err: errors.New("t")}), false, v1alpha1.NodeBlocked, false},
		{"pod result rolled back", &ResultError{Node: "n", Result: "rolled-back: phase verify: x"}, false, v1alpha1.NodeRolledBack, false},
		{"pod result blocked", &ResultError{Node: "n", Result: "rolled-back: phase drain: drain of n still blocked after 2m0s: pods a/b-1, a/c; PodDisruptionBudgets allowing no disruption: a/p: timed out"}, false, v1alpha1.NodeBlocked, false},
		{"pod result failed", &ResultError{Node: "n", Result: "failed: phase verify: x"}, false, v1alpha1.NodeFailed, true},
	} {
		t.Run(tc.description, func(t *testing.T) {
			o := classify(tc.err, tc.interrupted)
			if o.State != tc.want || o.Keep != tc.keep {
				t.Errorf("%v: %+v; want %s keep=%t", tc.err, o, tc.want, tc.keep)
			}
			if o.State == v1alpha1.NodeBlocked && (o.Blocking == nil || o.Blocking.PodDisruptionBudget != "a/p" || o.Blocking.Pods[0] != "a/b-1" && o.Blocking.Pods[0] != "a/b") {
				t.Errorf("blocking %+v", o.Blocking)
			}
		})
	}
}

func TestInWindow(t *testing.T) {
	mon := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) // a Monday
	at := func(day, h, m int) time.Time {
		return mon.Add(time.Duration(day)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	night := v1alpha1.Window{Days: []v1alpha1.Weekday{"Friday"}, Start: "22:00", End: "04:00"}
	office := v1alpha1.Window{Days: []v1alpha1.Weekday{"Monday", "Tuesday"}, Start: "09:00", End: "17:00", TimeZone: "Europe/Berlin"}
	for _, tc := range []struct {
		description string
		ws          []v1alpha1.Window
		now         time.Time
		want        bool
	}{
		{"no windows: always", nil, at(0, 3, 0), true},
		{"inside office hours (Berlin is UTC+1)", []v1alpha1.Window{office}, at(0, 8, 30), true},
		{"before office hours in Berlin", []v1alpha1.Window{office}, at(0, 7, 59), false},
		{"at the end: closed", []v1alpha1.Window{office}, at(1, 16, 0), false},
		{"wrong day", []v1alpha1.Window{office}, at(2, 10, 0), false},
		{"Friday night", []v1alpha1.Window{night}, at(4, 23, 0), true},
		{"past midnight into Saturday", []v1alpha1.Window{night}, at(5, 3, 59), true},
		{"Saturday morning after it closed", []v1alpha1.Window{night}, at(5, 4, 0), false},
		{"Friday early morning belongs to Thursday's night", []v1alpha1.Window{night}, at(4, 1, 0), false},
		{"either window", []v1alpha1.Window{night, office}, at(4, 23, 30), true},
	} {
		t.Run(tc.description, func(t *testing.T) {
			got, err := InWindow(tc.ws, tc.now)
			if err != nil || got != tc.want {
				t.Errorf("InWindow at %s = %t, %v; want %t", tc.now, got, err, tc.want)
			}
		})
	}
	if _, err := InWindow([]v1alpha1.Window{{Start: "25:00", End: "01:00"}}, mon); err == nil {
		t.Error("a bad time passed")
	}
}

func ptr[T any](v T) *T { return &v }

// The mixed-cluster guard: a wave that would leave no Docker node for a
// workload pinned to Docker waits, with the reason, until the spec allows
// it (allowLastDockerNodes).
func TestRolloutLastDockerNodes(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false))
	dep := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "legacy", "namespace": "ci", "annotations": map[string]any{pin.Annotation: "{}"}},
	}}
	if _, err := e.st.Dynamic.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace("ci").Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.create(t, v1alpha1.RuntimeMigrationSpec{Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}})
	wait := e.run(t, t.Context())
	m := e.waitPhase(t, v1alpha1.PhasePaused, ReasonLastDockerNodes)
	if got := states(m); got["a"] != v1alpha1.NodeDone || got["b"] != v1alpha1.NodePending || !strings.Contains(m.Status.Message, "Deployment/ci/legacy") {
		t.Fatalf("states %v, message %q: want a switched, b held back naming the pinned Deployment", got, m.Status.Message)
	}
	patch := []byte(`{"spec":{"allowLastDockerNodes":true}}`)
	if _, err := e.st.Dynamic.Resource(v1alpha1.GroupVersionResource).Patch(t.Context(), "r", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if m := e.get(t); m.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Errorf("after allowLastDockerNodes: %s %v", m.Status.Phase, states(m))
	}
}

// The controller drives the rollouts that have not ended, oldest first, and
// one created later once it is idle.
func TestController(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false))
	// "broken", the oldest, cannot be driven (its transport fails): it does
	// not hold the others up.
	for _, name := range []string{"broken", "first", "second"} {
		spec := v1alpha1.RuntimeMigrationSpec{TargetRuntime: v1alpha1.TargetContainerd, DrainTimeout: &metav1.Duration{Duration: 42 * time.Second},
			Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}, Nodes: v1alpha1.NodeSelection{Names: []string{map[string]string{"broken": "a", "first": "a", "second": "b"}[name]}}}
		if _, err := e.st.Create(t.Context(), &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	out := &syncWriter{w: e.out}
	go func() {
		done <- RunController(ctx, ControllerOptions{
			Driver: Options{Store: e.st, Client: e.kc, Holder: "replica-1", Out: out, Poll: 10 * time.Millisecond},
			Switcher: func(_ context.Context, m *v1alpha1.RuntimeMigration) (Switcher, func(), error) {
				if m.Name == "broken" {
					return nil, nil, errors.New("no transport")
				}
				return e.sw, func() {}, nil
			},
			Lease: LeaseTiming{RetryPeriod: 100 * time.Millisecond}, Idle: 100 * time.Millisecond, Out: out,
		})
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, errA := e.st.Get(ctx, "first")
		b, errB := e.st.Get(ctx, "second")
		if errA == nil && errB == nil && a.Status.Phase == v1alpha1.PhaseSucceeded && b.Status.Phase == v1alpha1.PhaseSucceeded {
			if a.Status.Driver != "replica-1" {
				t.Errorf("driver %q", a.Status.Driver)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollouts not driven to the end:\n%s", e.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(e.out.String(), "rollout broken: no transport (trying again") {
		t.Errorf("the broken rollout's error was not printed:\n%s", e.out)
	}
	if fmt.Sprint(e.sw.order) != "[a b]" {
		t.Errorf("switched %v: want the older rollout's node first", e.sw.order)
	}
}

// The status carries every node's entry, so at a few thousand nodes a
// write per node start and end is what the rollout costs the apiserver:
// the driver writes it a bounded number of times per wave, whatever the
// wave's size, and still records each node Switching before its switch
// starts (what a driver that takes over relies on).
func TestRolloutStatusWritesPerWave(t *testing.T) {
	var nodes []*corev1.Node
	for i := 0; i < 8; i++ {
		nodes = append(nodes, testNode(fmt.Sprintf("n%d", i), false))
	}
	e := newEnv(t, nodes...)
	e.create(t, v1alpha1.RuntimeMigrationSpec{MaxUnavailable: ptr(intstr.FromInt32(4)), Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1}})
	var mu sync.Mutex
	notSwitching := map[string]string{}
	e.sw.during = func(node string) {
		if st := states(e.get(t))[node]; st != v1alpha1.NodeSwitching {
			mu.Lock()
			notSwitching[node] = st
			mu.Unlock()
		}
	}
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	m := e.get(t)
	if m.Status.Phase != v1alpha1.PhaseSucceeded || m.Status.Counts.Done != 8 {
		t.Fatalf("status: phase %s %q, counts %+v\n%s", m.Status.Phase, m.Status.Message, m.Status.Counts, e.out)
	}
	if len(notSwitching) > 0 {
		t.Errorf("nodes not recorded Switching while their switch ran: %v", notSwitching)
	}
	writes := 0
	for _, a := range e.st.Dynamic.(*dynfake.FakeDynamicClient).Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			writes++
		}
	}
	// The cordon updates the node as the wave's LIST read it: no GET of its
	// own. The fake switch GETs each node once, to set its runtime; the
	// uncordon GETs it unless the wave's watch saw it.
	gets := 0
	for _, a := range e.kc.Actions() {
		if a.GetVerb() == "get" && a.GetResource().Resource == "nodes" {
			gets++
		}
	}
	if gets > 2*len(nodes) {
		t.Errorf("%d GETs of nodes for %d nodes: want at most two each, the fake switch's and the uncordon's", gets, len(nodes))
	}
	// The plan, then one a wave: its cordon, which also carries the wave
	// before's outcomes and end; then the rollout's end, carrying the last
	// wave's. The flusher (every 5s) has no time to.
	if waves := len(m.Status.Waves); waves != 3 || writes > 2+waves {
		t.Errorf("%d status writes for %d nodes in %d waves: want at most %d (1 a wave, 2 more)", writes, len(nodes), waves, 2+waves)
	}
}
