package phases

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// TestBudgetGuardCountsAfresh puts on the lab's apiserver the shape the
// lab's switch met after an apiserver restart inside its drain: a budget of
// minAvailable 1 over two ready replicas, one of them already terminating,
// and the budget's status still the disruption controller's stale "2
// healthy, 1 disruption allowed" (the apiserver trusts that status and lets
// the eviction of the last ready replica through). The drain's client must
// refuse that eviction as the apiserver refuses one over budget (429, which
// the drain library retries), and let through the evictions that keep the
// budget: both replicas healthy, a pod not ready itself, a pod no budget
// covers.
func TestBudgetGuardCountsAfresh(t *testing.T) {
	ctx, c, ns, node := labNamespace(t, "budget")
	const finalizer = "unshim.io/test-keeps-it-terminating"
	t.Cleanup(func() { cleanupBudgets(c, ns) })
	pod := func(name, app string, ready bool, finalizers ...string) {
		t.Helper()
		labPod(ctx, t, c, ns, node, name, app, corev1.PodRunning, ready, finalizers...)
	}
	pod("web-a", "web", true, finalizer)
	pod("web-b", "web", true)
	pod("web-c", "web", false)
	pod("other", "other", true)
	// The status a disruption controller writes for two healthy replicas
	// (and keeps while its cache has not seen one of them go).
	staleBudget(ctx, t, c, ns, "web", nil, 3)
	allowed := func(name string) error { t.Helper(); return guardAllows(ctx, t, c, ns, name) }
	// Both replicas healthy: either may go.
	for _, name := range []string{"web-a", "web-b", "web-c", "other"} {
		if err := allowed(name); err != nil {
			t.Errorf("evicting %s with both replicas ready: %v, want it allowed", name, err)
		}
	}
	// web-a terminating: web-b is the last healthy replica.
	if err := c.CoreV1().Pods(ns).Delete(ctx, "web-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := allowed("web-b")
	if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "1 healthy pods by a fresh count and wants 1") {
		t.Errorf("evicting the last ready replica while the budget's status is stale: %v, want 429 naming the fresh count", err)
	}
	// Through the client the drain library gets: the eviction never
	// reaches the apiserver, and web-b runs on.
	refusedThroughDrain(ctx, t, c, ns, "web-b")
	// What the budget does not count is not held: a replica not ready, a
	// pod of no budget.
	for _, name := range []string{"web-c", "other"} {
		if err := allowed(name); err != nil {
			t.Errorf("evicting %s: %v, want it allowed", name, err)
		}
	}
}

// labPod makes a pod on a node of that name only (no kubelet) and writes its
// status as a kubelet would: its phase, ready or not.
func labPod(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, node, name, app string, phase corev1.PodPhase, ready bool, finalizers ...string) {
	t.Helper()
	p, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}, Finalizers: finalizers},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: app + ":1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady(ctx, t, c, p, phase, ready)
}

// setReady writes the pod's phase and its Ready condition.
func setReady(ctx context.Context, t *testing.T, c kubernetes.Interface, p *corev1.Pod, phase corev1.PodPhase, ready bool) {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status = corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: status}, {Type: corev1.ContainersReady, Status: status}}}
	if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestBudgetGuardHoldsNotReadyPodsOfAShortBudget puts on the lab's
// apiserver the shape a switch's drain met after an apiserver outage long
// enough for the node controller to mark the node's pods not ready: two
// replicas of a Deployment under minAvailable 1, running but not ready, and
// the budget's status still counting them healthy. The apiserver evicts a
// not-ready pod without decrementing when that status says the budget is
// healthy (unhealthyPodEvictionPolicy IfHealthyBudget, the default:
// pkg/registry/core/pod/storage/eviction.go), so it let both go, one after
// the other, with no replica ready anywhere. The drain's client must hold
// them while the fresh count is short, and let through what the apiserver
// never holds: a pending pod, a not-ready pod of a budget whose policy is
// AlwaysAllow, and a not-ready pod once another replica is ready again.
func TestBudgetGuardHoldsNotReadyPodsOfAShortBudget(t *testing.T) {
	ctx, c, ns, node := labNamespace(t, "notready")
	t.Cleanup(func() { cleanupBudgets(c, ns) })
	labPod(ctx, t, c, ns, node, "web-a", "web", corev1.PodRunning, false)
	labPod(ctx, t, c, ns, node, "web-b", "web", corev1.PodRunning, false)
	labPod(ctx, t, c, ns, node, "web-p", "web", corev1.PodPending, false)
	labPod(ctx, t, c, ns, node, "job-a", "job", corev1.PodRunning, false)
	// Both budgets' status of before the pods were marked not ready.
	always := policyv1.AlwaysAllow
	staleBudget(ctx, t, c, ns, "web", nil, 2)
	staleBudget(ctx, t, c, ns, "job", &always, 2)
	allowed := func(name string) error { t.Helper(); return guardAllows(ctx, t, c, ns, name) }
	for _, name := range []string{"web-a", "web-b"} {
		err := allowed(name)
		if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "is short already (the pod is not ready)") || !strings.Contains(err.Error(), "0 healthy pods by a fresh count and wants 1") {
			t.Errorf("evicting %s, not ready, from a budget with no ready pod: %v, want 429 naming the fresh count", name, err)
		}
	}
	refusedThroughDrain(ctx, t, c, ns, "web-a")
	for _, name := range []string{"web-p", "job-a"} {
		if err := allowed(name); err != nil {
			t.Errorf("evicting %s: %v, want it allowed (the apiserver ignores the budget for it)", name, err)
		}
	}
	// web-b ready again: the budget has its one, web-a (not ready) may go,
	// web-b may not.
	b, err := c.CoreV1().Pods(ns).Get(ctx, "web-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady(ctx, t, c, b, corev1.PodRunning, true)
	if err := allowed("web-a"); err != nil {
		t.Errorf("evicting web-a, not ready, while web-b is ready: %v, want it allowed", err)
	}
	if err := allowed("web-b"); !apierrors.IsTooManyRequests(err) {
		t.Errorf("evicting web-b, the one ready replica: %v, want 429", err)
	}
}

// staleBudget makes a budget of minAvailable 1 over the pods of app, with
// the unhealthy pod policy given (nil: the default), and writes the status
// a disruption controller writes for two healthy pods of the expected
// ones (and keeps while its cache has not seen them change).
func staleBudget(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, app string, policy *policyv1.UnhealthyPodEvictionPolicyType, expected int32) {
	t.Helper()
	one := intstr.FromInt32(1)
	pdb, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, UnhealthyPodEvictionPolicy: policy,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: 2, DesiredHealthy: 1, ExpectedPods: expected, DisruptionsAllowed: 1}
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// guardAllows asks a fresh guard, as each drain makes one, after the drain
// library's LIST of the node's pods through the drain's client.
func guardAllows(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) error {
	t.Helper()
	g := newBudgetGuard(c)
	listThroughDrain(ctx, t, drainClient{c, g}, ns, name)
	return g.allow(ctx, ns, name)
}

// refusedThroughDrain evicts the pod through the client the drain library
// gets and checks that the eviction was refused (429) before it reached the
// apiserver: the pod runs on, not being deleted.
func refusedThroughDrain(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	dc := drainClient{c, newBudgetGuard(c)}
	listThroughDrain(ctx, t, dc, ns, name)
	if err := dc.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); !apierrors.IsTooManyRequests(err) {
		t.Errorf("the drain's client evicting %s: %v, want 429", name, err)
	}
	if p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("%s after the refused eviction: %v (deleting %v)", name, err, p != nil && p.DeletionTimestamp != nil)
	}
}

// listThroughDrain lists the namespace's pods through the drain's client,
// as the drain library does (from the watch cache), until the pod is there.
func listThroughDrain(ctx context.Context, t *testing.T, dc drainClient, ns, name string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		list, err := dc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			if p.Name == name {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch cache does not hold pod %s/%s", ns, name)
		}
	}
}

// TestDrainBlockedNamesTheBudgets holds what a drain still blocked at its
// timeout reports to the lab's apiserver's budgets: one whose status allows
// a disruption that the fresh count does not (the stale status above)
// holds the last ready replica; one with an empty selector (every pod of
// its namespace, in policy/v1) that allows none holds every pod.
func TestDrainBlockedNamesTheBudgets(t *testing.T) {
	ctx, c, ns, node := labNamespace(t, "blocked")
	t.Cleanup(func() { cleanupBudgets(c, ns) })
	for _, p := range []struct {
		name, app  string
		finalizers []string
	}{{"web-a", "web", []string{"unshim.io/test-keeps-it-terminating"}}, {"web-b", "web", nil}, {"other", "other", nil}} {
		pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: map[string]string{"app": p.app}, Finalizers: p.finalizers},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: p.app + ":1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}}}
		if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	budget := func(name string, sel *metav1.LabelSelector, st policyv1.PodDisruptionBudgetStatus) {
		t.Helper()
		one := intstr.FromInt32(1)
		pdb, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: sel}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st.ObservedGeneration = pdb.Generation
		pdb.Status = st
		if _, err := c.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	budget("web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 2, DesiredHealthy: 1, ExpectedPods: 2, DisruptionsAllowed: 1})
	if err := c.CoreV1().Pods(ns).Delete(ctx, "web-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The drain library lists from the watch cache: wait for web-a deleting there.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "web-a", metav1.GetOptions{ResourceVersion: "0"})
		if err == nil && p.DeletionTimestamp != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch cache does not show web-a deleting: %v", err)
		}
	}
	d := &drainData{node: node, c: c, s: Settings{Force: true}}
	blocked := func() *DrainBlockedError {
		t.Helper()
		var e *DrainBlockedError
		if err := drainBlocked(ctx, d, time.Minute, errors.New("global timeout reached")); !errors.As(err, &e) {
			t.Fatalf("drainBlocked: %v, want a DrainBlockedError", err)
		}
		return e
	}
	if e := blocked(); !slices.Equal(e.PDBs, []string{ns + "/web"}) || !slices.Equal(e.Pods, []string{ns + "/web-b"}) {
		t.Errorf("blocked by a stale budget: PDBs %v pods %v, want [%s/web] and [%s/web-b]", e.PDBs, e.Pods, ns, ns)
	}
	budget("all", &metav1.LabelSelector{}, policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 2, DesiredHealthy: 2, ExpectedPods: 3})
	e := blocked()
	if !slices.Equal(e.PDBs, []string{ns + "/all", ns + "/web"}) || !slices.Contains(e.Pods, ns+"/other") || !slices.Contains(e.Pods, ns+"/web-b") {
		t.Errorf("with a budget over every pod allowing none: PDBs %v pods %v, want [%s/all %s/web] holding other and web-b", e.PDBs, e.Pods, ns, ns)
	}
}

// cleanupBudgets lets the terminating web-a go and removes the budgets
// (labNamespace removes the rest).
func cleanupBudgets(c kubernetes.Interface, ns string) {
	bg := context.Background()
	_, _ = c.CoreV1().Pods(ns).Patch(bg, "web-a", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	_ = c.PolicyV1().PodDisruptionBudgets(ns).DeleteCollection(bg, metav1.DeleteOptions{}, metav1.ListOptions{})
}
