package phases

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	policyv1client "k8s.io/client-go/kubernetes/typed/policy/v1"
	policyv1beta1client "k8s.io/client-go/kubernetes/typed/policy/v1beta1"
	"k8s.io/kubectl/pkg/util/podutils"
)

// The drain's second check of PodDisruptionBudgets.
//
// The apiserver lets an eviction through when the budget's status allows a
// disruption, and that status is the disruption controller's count of the
// healthy pods, made from its informers' cache. After an apiserver restart
// that cache can lag for many seconds: a restarted apiserver refuses
// requests until its authorizer has loaded RBAC, kube-controller-manager's
// watches fail and back off, and its disruption controller goes on counting
// a pod the drain had evicted (and its ReplicaSet controller goes on
// believing it runs, so no replacement comes). The lab showed it: after a
// restart inside the drain, the apiserver allowed the eviction of the last
// ready replica of a Deployment under minAvailable 1 while the other one was
// already terminating and no replacement existed. kubectl drain has the same
// hole. So before each eviction the drain counts the budget's healthy pods
// itself, with a quorum read, and does not evict when that count, less the
// pod, is under the budget's desired count: it answers the drain library as
// the apiserver does (429 Too Many Requests), and the library tries again
// in 5 s. The apiserver's own check still applies after this one.

// budgetGuard counts, before each eviction of a drain, the healthy pods of
// every PodDisruptionBudget covering the pod. One guard serves one drain:
// the budgets are listed once per namespace (from the watch cache: only
// their selector and desired count are read from them), the pods of a
// budget freshly at each eviction.
type budgetGuard struct {
	c kubernetes.Interface

	mu   sync.Mutex
	pods map[string]*corev1.Pod // namespace/name: the node's pods as the drain listed them
	pdbs map[string][]policyv1.PodDisruptionBudget
	// evictedRV is the resourceVersion of a pod the drain evicted, as its
	// wait for the pod's end last read it (being deleted); listedRV the
	// revision of the drain's LIST of the node's pods.
	evictedRV, listedRV string
	// until is the drain's deadline: Get waits no later for a pod's end.
	until time.Time
}

func newBudgetGuard(c kubernetes.Interface) *budgetGuard {
	return &budgetGuard{c: c, pods: map[string]*corev1.Pod{}, pdbs: map[string][]policyv1.PodDisruptionBudget{}}
}

// disruptedFor is how long a pod the apiserver recorded as evicted
// (status.disruptedPods) is not counted healthy, as the disruption
// controller does (its DeletionTimeout).
const disruptedFor = 2 * time.Minute

// listed remembers the pods the drain library listed (an eviction names
// only the pod, and its labels tell which budgets cover it) and the LIST's
// revision.
func (g *budgetGuard) listed(list *corev1.PodList) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.listedRV = list.ResourceVersion
	for i := range list.Items {
		p := &list.Items[i]
		g.pods[p.Namespace+"/"+p.Name] = p
	}
}

// allow returns nil when evicting the pod leaves every budget covering it
// with as many healthy pods as it wants by a fresh count, a 429 error (what
// the drain library retries) when not, or the API's error.
func (g *budgetGuard) allow(ctx context.Context, namespace, name string) error {
	g.mu.Lock()
	pod := g.pods[namespace+"/"+name]
	g.mu.Unlock()
	if pod == nil {
		// Not one the drain listed: the apiserver's check alone.
		return nil
	}
	pdbs, err := g.budgets(ctx, namespace)
	if err != nil {
		return err
	}
	for i := range pdbs {
		pdb := &pdbs[i]
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		healthy, err := g.healthyPods(ctx, pdb, sel)
		if err != nil {
			return err
		}
		if short, msg := shortWithout(pdb, healthy, name); short {
			return apierrors.NewTooManyRequests(msg, 0)
		}
	}
	return nil
}

// budgetPods is a fresh count of a budget's pods: each one's standing by
// name, and how many are healthy.
type budgetPods struct {
	pods    map[string]podStanding
	healthy int
}

// podStanding is a pod's standing under a budget.
type podStanding int

const (
	// healthyPod: ready, not being deleted, not recorded as evicted a
	// moment ago.
	healthyPod podStanding = iota + 1
	// unhealthyPod: running, not healthy.
	unhealthyPod
	// freePod: one the apiserver evicts without looking at the budget
	// (pending, ended or being deleted).
	freePod
)

// healthyPods counts afresh the budget's pods (budgetPods). It is nil for a
// budget whose status was never computed for its spec: the apiserver
// refuses its evictions on its own.
func (g *budgetGuard) healthyPods(ctx context.Context, pdb *policyv1.PodDisruptionBudget, sel labels.Selector) (*budgetPods, error) {
	if pdb.Status.ObservedGeneration < pdb.Generation {
		return nil, nil
	}
	count := &budgetPods{pods: map[string]podStanding{}}
	opts := metav1.ListOptions{LabelSelector: sel.String(), Limit: 500}
	for {
		list, err := g.c.CoreV1().Pods(pdb.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("count the healthy pods of PodDisruptionBudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			switch {
			case healthyFor(pdb, p):
				count.pods[p.Name] = healthyPod
				count.healthy++
			case ignoresBudgets(p):
				count.pods[p.Name] = freePod
			default:
				count.pods[p.Name] = unhealthyPod
			}
		}
		if list.Continue == "" {
			return count, nil
		}
		opts.Continue = list.Continue
	}
}

// ignoresBudgets is the apiserver's rule for a pod whose eviction never
// consults a budget: one that has ended or not started (Succeeded, Failed,
// Pending) or is being deleted already (canIgnorePDB in
// pkg/registry/core/pod/storage/eviction.go).
func ignoresBudgets(p *corev1.Pod) bool {
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed, corev1.PodPending:
		return true
	}
	return p.DeletionTimestamp != nil
}

// shortWithout tells whether evicting pod would leave the budget under its
// desired healthy count by the fresh count (healthyPods), and why.
//
// A healthy pod takes one from the count. A running pod that is not
// healthy takes nothing, and the apiserver evicts it when the budget's
// unhealthyPodEvictionPolicy is AlwaysAllow, or (IfHealthyBudget, the
// default) when the budget's status says it has its desired healthy count
// (eviction.go). That status is the disruption controller's and can be
// stale in the same way as its disruptionsAllowed: when the node
// controller marks a node's pods not ready (the node missed its heartbeats
// through an apiserver outage) while the budget's status still counts them,
// the apiserver lets the eviction of every one of them through though no
// replica is ready anywhere. So the fresh count decides that too: a budget
// under its desired count keeps its not-ready pods, as the apiserver keeps
// them when its status is up to date, and the drain waits for them to turn
// ready again or for their replacements.
//
// A pod not in the count (gone, or no longer the budget's) is not held: the
// apiserver answers for it.
func shortWithout(pdb *policyv1.PodDisruptionBudget, count *budgetPods, pod string) (bool, string) {
	if count == nil {
		return false, ""
	}
	desired := int(pdb.Status.DesiredHealthy)
	what := "it would violate the pod's disruption budget"
	switch count.pods[pod] {
	case healthyPod:
		if count.healthy-1 >= desired {
			return false, ""
		}
	case unhealthyPod:
		if count.healthy >= desired ||
			(pdb.Spec.UnhealthyPodEvictionPolicy != nil && *pdb.Spec.UnhealthyPodEvictionPolicy == policyv1.AlwaysAllow) {
			return false, ""
		}
		what = "the pod's disruption budget is short already (the pod is not ready)"
	default: // free, or not in the count
		return false, ""
	}
	return true, fmt.Sprintf("Cannot evict pod as %s: PodDisruptionBudget %s/%s has %d healthy pods by a fresh count and wants %d (its status says %d healthy, %d disruptions allowed: the disruption controller has not caught up)",
		what, pdb.Namespace, pdb.Name, count.healthy, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy, pdb.Status.DisruptionsAllowed)
}

// healthyFor is the disruption controller's "healthy" for a budget's pod.
func healthyFor(pdb *policyv1.PodDisruptionBudget, p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || !podutils.IsPodReady(p) {
		return false
	}
	if t, ok := pdb.Status.DisruptedPods[p.Name]; ok && time.Since(t.Time) < disruptedFor {
		return false
	}
	return true
}

// budgets lists the namespace's budgets once for this drain.
func (g *budgetGuard) budgets(ctx context.Context, namespace string) ([]policyv1.PodDisruptionBudget, error) {
	g.mu.Lock()
	pdbs, ok := g.pdbs[namespace]
	g.mu.Unlock()
	if ok {
		return pdbs, nil
	}
	var items []policyv1.PodDisruptionBudget
	list, err := g.c.PolicyV1().PodDisruptionBudgets(namespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	switch {
	case err == nil:
		items = list.Items
	case apierrors.IsNotFound(err):
		// An apiserver older than 1.21 serves no policy/v1: its own check
		// of the budgets alone.
	default:
		return nil, fmt.Errorf("list the PodDisruptionBudgets of namespace %s: %w", namespace, err)
	}
	g.mu.Lock()
	g.pdbs[namespace] = items
	g.mu.Unlock()
	return items, nil
}

// drainClient is the client the drain library gets. Its LIST of the node's
// pods reads the apiserver's watch cache (as eachPodOnNode's fromCache:
// before 1.31 a quorum LIST with a field selector reads every pod of the
// cluster out of etcd; a pod bound in the milliseconds the cache lags is not
// lost: after every drain the re-check, toEvict, lists the node's pods
// again, from a cache that holds the drain's evictions, and drains again if
// one came), and every eviction passes the budget guard first.
type drainClient struct {
	kubernetes.Interface
	g *budgetGuard
}

func (c drainClient) CoreV1() corev1client.CoreV1Interface {
	return coreForDrain{c.Interface.CoreV1(), c.g}
}

// Discovery keeps the apiserver's core resources for the process's drains
// (evictionDiscovery).
func (c drainClient) Discovery() discovery.DiscoveryInterfaces {
	return evictionDiscovery{c.Interface.Discovery()}
}

func (c drainClient) PolicyV1() policyv1client.PolicyV1Interface {
	return policyForDrain{c.Interface.PolicyV1(), c.g}
}

func (c drainClient) PolicyV1beta1() policyv1beta1client.PolicyV1beta1Interface {
	return policyBetaForDrain{c.Interface.PolicyV1beta1(), c.g}
}

type coreForDrain struct {
	corev1client.CoreV1Interface
	g *budgetGuard
}

func (c coreForDrain) Pods(namespace string) corev1client.PodInterface {
	return podsForDrain{c.CoreV1Interface.Pods(namespace), c.g}
}

type podsForDrain struct {
	corev1client.PodInterface
	g *budgetGuard
}

// Get is the drain library's read of a pod it evicted, while it waits for
// the pod to end: a pod being deleted carries the revision of its eviction
// or a later one, which the re-check after the drain reads the cache at
// (toEvict). It then waits for the pod's end by watching it from that
// revision, for up to goneWait (and never past the drain's timeout), and
// answers NotFound when it ended: the library polls every second, fixed, so
// a pod that ends 200 ms after its eviction otherwise holds the drain a
// whole second, and at a wave's 50 drains at once the slowest one's poll
// lands a second later still. Still the library's loop and timeout; the
// watch replaces the GET of its next poll, so no more requests.
func (p podsForDrain) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Pod, error) {
	pod, err := p.PodInterface.Get(ctx, name, opts)
	if err != nil || pod.DeletionTimestamp == nil || pod.ResourceVersion == "" {
		return pod, err
	}
	p.g.mu.Lock()
	p.g.evictedRV = pod.ResourceVersion
	until := p.g.until
	p.g.mu.Unlock()
	wait := goneWait
	if !until.IsZero() {
		wait = min(wait, time.Until(until))
	}
	if wait > 0 && p.ended(ctx, pod, wait) {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	return pod, nil
}

// goneWait bounds one wait of Get for an evicted pod's end.
const goneWait = 5 * time.Second

// ended watches the pod from the revision it was read at, for at most
// wait, and tells whether it was deleted. A watch that fails (a revision
// the cache no longer holds, an outage) says no: the library reads again.
func (p podsForDrain) ended(ctx context.Context, pod *corev1.Pod, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	w, err := p.PodInterface.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", pod.Name).String(),
		ResourceVersion: pod.ResourceVersion,
	})
	if err != nil {
		return false
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false
			}
			switch ev.Type {
			case watch.Deleted:
				if gone, ok := ev.Object.(*corev1.Pod); ok && gone.UID == pod.UID {
					p.g.mu.Lock()
					p.g.evictedRV = gone.ResourceVersion
					p.g.mu.Unlock()
					return true
				}
			case watch.Error:
				return false
			}
		}
	}
}

func (p podsForDrain) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	if opts.ResourceVersion == "" {
		opts.ResourceVersion = "0"
	}
	list, err := p.PodInterface.List(ctx, opts)
	if err == nil {
		p.g.listed(list)
	}
	return list, err
}

type policyForDrain struct {
	policyv1client.PolicyV1Interface
	g *budgetGuard
}

func (p policyForDrain) Evictions(namespace string) policyv1client.EvictionInterface {
	return evictionsForDrain{p.PolicyV1Interface.Evictions(namespace), p.g}
}

type evictionsForDrain struct {
	policyv1client.EvictionInterface
	g *budgetGuard
}

func (e evictionsForDrain) Evict(ctx context.Context, ev *policyv1.Eviction) error {
	if err := e.g.allow(ctx, ev.Namespace, ev.Name); err != nil {
		return err
	}
	return e.EvictionInterface.Evict(ctx, ev)
}

// policyBetaForDrain guards the policy/v1beta1 evictions the drain library
// sends to apiservers older than 1.22.
type policyBetaForDrain struct {
	policyv1beta1client.PolicyV1beta1Interface
	g *budgetGuard
}

func (p policyBetaForDrain) Evictions(namespace string) policyv1beta1client.EvictionInterface {
	return evictionsBetaForDrain{p.PolicyV1beta1Interface.Evictions(namespace), p.g}
}

type evictionsBetaForDrain struct {
	policyv1beta1client.EvictionInterface
	g *budgetGuard
}

func (e evictionsBetaForDrain) Evict(ctx context.Context, ev *policyv1beta1.Eviction) error {
	if err := e.g.allow(ctx, ev.Namespace, ev.Name); err != nil {
		return err
	}
	return e.EvictionInterface.Evict(ctx, ev)
}
