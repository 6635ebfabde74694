package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/unshim/unshim/pkg/inventory"
	"io"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kubectl/pkg/drain"

	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodeplan"
)

// The names of the phases other packages wait on or refer to: a rollout
// holds a switch before the cordon and starts the next wave's once every
// switch of a wave verifies; a rollback drains again first.
const (
	CordonPhase       = "cordon"
	DrainPhase        = "drain"
	VerifyPhase       = "verify"
	StartKubeletPhase = "start-kubelet"
)

// NewCordonPhase marks the node unschedulable, first recording whether it
// was, so that only a node schedulable before is uncordoned after.
func NewCordonPhase() migrate.Phase {
	return migrate.Phase{
		Name:  CordonPhase,
		Short: "Cordon the node",
		Run: run(func(ctx context.Context, d Data) error {
			if d.DryRun() {
				return nil // an API change: the plan describes it
			}
			node, err := nodeBefore(ctx, d)
			if err != nil {
				return err
			}
			j := d.Journal()
			if _, ok := j.Values[keyWasSchedulable]; !ok {
				j.Values[keyWasSchedulable] = strconv.FormatBool(!node.Spec.Unschedulable)
				if err := d.Store().Save(ctx, j); err != nil {
					return err
				}
			}
			if node.Spec.Unschedulable && j.Values[keyWasSchedulable] == "false" {
				// Cordoned before the run (by a rollout's wave, or by the
				// operator), and the run has not cordoned it: nothing to write.
				return nil
			}
			return setUnschedulable(ctx, d, true)
		}),
		Rollback: run(func(ctx context.Context, d Data) error {
			if d.Journal().Values[keyWasSchedulable] != "true" {
				return nil
			}
			return setUnschedulable(ctx, d, false)
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			return []string{"PATCH node " + d.Node() + " spec.unschedulable=true (its current value is kept in the journal)"}, nil
		}),
	}
}

func setUnschedulable(ctx context.Context, d Data, v bool) error {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"unschedulable": v}})
	err := RetryAPI(ctx, apiRetryTimeout, func(ctx context.Context) error {
		_, err := d.Client().CoreV1().Nodes().Patch(ctx, d.Node(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set node %s unschedulable=%t: %w", d.Node(), v, err)
	}
	return nil
}

// NewDrainPhase evicts the node's pods through the Eviction API (PDBs are
// respected: a blocked eviction is retried until the timeout). DaemonSet and
// static pods stay. Pods without a controller stay too unless Force: nothing
// would recreate them elsewhere, and the kubelet restarts them on the new
// runtime, as after a reboot.
func NewDrainPhase() migrate.Phase {
	return migrate.Phase{
		Name:  DrainPhase,
		Short: "Evict the node's pods (PDBs respected, DaemonSets ignored)",
		Run: run(func(ctx context.Context, d Data) error {
			if d.DryRun() {
				return nil // an API change: the plan describes it
			}
			// The drain as a whole is retried on API errors a retry may
			// clear (an apiserver restarting), until --drain-timeout.
			timeout := d.Settings().DrainTimeout
			if timeout <= 0 {
				timeout = 10 * time.Minute
			}
			deadline := time.Now().Add(timeout)
			var r Retryer
			for {
				seenRV, err := drainOnce(ctx, d)
				if err != nil && ctx.Err() == nil && (time.Now().After(deadline) || strings.Contains(err.Error(), "global timeout reached")) {
					// Still waiting on pods at the timeout: say which, and
					// which budgets hold them.
					if blocked := drainBlocked(ctx, d, timeout, err); blocked != nil {
						return blocked
					}
				}
				if err == nil {
					// A pod bound to the node after the drain listed its
					// pods (a scheduler whose cache lags the cordon, as after
					// an apiserver restart; a pod that tolerates it) would
					// die with the runtime, outside its budget: drain again
					// until nothing to evict is left. One LIST tells: the
					// drain library's own listing GETs every DaemonSet pod's
					// DaemonSet too.
					came, lerr := toEvict(ctx, d, seenRV)
					if lerr != nil || came == 0 {
						return nil
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("drain %s: %d pod(s) still came to the node at the drain's timeout", d.Node(), came)
					}
					d.Logger().V(0).Infof("[drain] %d pod(s) came to the node during the drain: evicting them too", came)
					continue
				}
				if !r.Retry(err) || ctx.Err() != nil || time.Now().After(deadline) {
					return err
				}
				d.Logger().V(0).Infof("[drain] the API failed, retrying: %v", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(2 * time.Second):
				}
			}
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			h := drainHelper(ctx, d)
			list, errs := h.GetPodsForDeletion(d.Node())
			if len(errs) > 0 {
				return []string{fmt.Sprintf("drain would fail now: %v", errs)}, nil
			}
			lines := []string{fmt.Sprintf("evict %d pods (timeout %s)", len(list.Pods()), d.Settings().DrainTimeout)}
			for _, p := range list.Pods() {
				lines = append(lines, "  evict "+p.Namespace+"/"+p.Name)
			}
			if w := list.Warnings(); w != "" {
				lines = append(lines, "  "+w)
			}
			return lines, nil
		}),
	}
}

// apiRetryTimeout bounds the retries of one API change (a patch of the
// node) through a short outage of the apiserver.
const apiRetryTimeout = time.Minute

// drainOnce evicts the node's pods and waits for them to end. It returns
// the resourceVersion of an evicted pod as last read while it ended, else
// (nothing evicted, or every evicted pod gone at the first look) the
// revision of its LIST of the node's pods.
func drainOnce(ctx context.Context, d Data) (string, error) {
	h := drainHelper(ctx, d)
	list, errs := h.GetPodsForDeletion(d.Node())
	if len(errs) > 0 {
		return "", fmt.Errorf("drain %s: %w", d.Node(), utilerrors.NewAggregate(errs))
	}
	if w := list.Warnings(); w != "" {
		d.Logger().V(0).Infof("[drain] %s", w)
	}
	pods := list.Pods()
	d.Logger().V(0).Infof("[drain] evicting %d pods", len(pods))
	if err := h.DeleteOrEvictPods(pods); err != nil {
		return "", fmt.Errorf("drain %s: %w", d.Node(), err)
	}
	g := h.Client.(drainClient).g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.evictedRV != "" {
		return g.evictedRV, nil
	}
	return g.listedRV, nil
}

// toEvict counts the pods bound to the node that a drain would evict now
// (not staying through it, not already going).
//
// With seenRV, a revision from the drain (drainOnce), it reads them from the
// apiserver's watch cache once the cache holds that revision
// (resourceVersionMatch NotOlderThan), and what the cache holds beyond it,
// milliseconds behind etcd. When the drain evicted a pod, seenRV is the
// pod's revision at its eviction: every pod bound before the evictions is
// seen even from a cache that had fallen behind (etcd's current revision
// would not do: a pods cache before 1.31 reaches it only with the next pod
// event). When it evicted none, seenRV is its LIST's: the re-check sees
// what the cache received since, and a quorum read would add only what a
// cache stuck behind etcd did not get, for a node that had nothing to
// evict. A quorum LIST instead, before 1.31 (ConsistentListFromCache),
// reads every pod of the cluster out of etcd: in the benchmark, with a
// wave's switches at once, 1.2 s at the median at 1,000 nodes, 7.5 s at
// 5,000; at a real cluster's tens of thousands of pods, a wave of them is
// the apiserver's whole load. The quorum LIST stays for a cache that cannot
// reach seenRV within the apiserver's wait ("Too large resource version",
// not retried), and for a drain that read no revision.
func toEvict(ctx context.Context, d Data, seenRV string) (int, error) {
	n, force := 0, d.Settings().Force
	count := func(p *corev1.Pod) error {
		if p.DeletionTimestamp == nil && !staysThroughDrain(p, force) {
			n++
		}
		return nil
	}
	if seenRV != "" {
		opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", d.Node()).String(),
			ResourceVersion: seenRV, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}
		// No limit: the cache hands a LIST with a limit and a
		// resourceVersion other than "0" to etcd. A node holds at most its
		// kubelet's maxPods. Not retried: a 504 carries a Retry-After that
		// client-go honours ten times over.
		list := &corev1.PodList{}
		err := d.Client().CoreV1().RESTClient().Get().Resource("pods").
			VersionedParams(&opts, scheme.ParameterCodec).MaxRetries(0).Do(ctx).Into(list)
		if err == nil {
			for i := range list.Items {
				_ = count(&list.Items[i])
			}
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		d.Logger().V(1).Infof("[drain] the re-check's read of the cache at %s failed, reading etcd: %v", seenRV, err)
	}
	err := eachPodOnNode(ctx, d, false, count)
	return n, err
}

func drainHelper(ctx context.Context, d Data) *drain.Helper {
	s := d.Settings()
	out := s.Progress
	if out == nil {
		out = io.Discard
	}
	g := newBudgetGuard(d.Client())
	if s.DrainTimeout > 0 {
		g.until = time.Now().Add(s.DrainTimeout)
	}
	h := &drain.Helper{
		Ctx:                             ctx,
		Client:                          drainClient{d.Client(), g},
		Force:                           true, // bare pods are filtered below unless s.Force
		GracePeriodSeconds:              -1,
		IgnoreAllDaemonSets:             true,
		DeleteEmptyDirData:              s.DeleteEmptyDirData,
		Timeout:                         s.DrainTimeout,
		EvictErrorRetryDelay:            5 * time.Second,
		SkipWaitForDeleteTimeoutSeconds: 60,
		Out:                             out,
		ErrOut:                          out,
		OnPodDeletionOrEvictionFinished: func(pod *corev1.Pod, usingEviction bool, err error) {
			if err == nil {
				fmt.Fprintf(out, "evicted %s/%s\n", pod.Namespace, pod.Name)
			}
		},
	}
	if !s.Force {
		h.AdditionalFilters = append(h.AdditionalFilters, func(pod corev1.Pod) drain.PodDeleteStatus {
			if metav1.GetControllerOf(&pod) == nil && pod.Annotations[corev1.MirrorPodAnnotationKey] == "" {
				return drain.MakePodDeleteStatusWithWarning(false, "pod without a controller stays and restarts on the new runtime (--force evicts it)")
			}
			return drain.MakePodDeleteStatusOkay()
		})
	}
	return h
}

// NewUncordonPhase makes the node schedulable again if it was before.
func NewUncordonPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "uncordon",
		Short: "Uncordon the node if it was schedulable before",
		Run: run(func(ctx context.Context, d Data) error {
			if d.DryRun() {
				return nil // an API change: the plan describes it
			}
			if d.Journal().Values[keyWasSchedulable] != "true" {
				d.Logger().V(0).Infof("[uncordon] the node was cordoned before the migration: it stays cordoned")
				return nil
			}
			return setUnschedulable(ctx, d, false)
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			node, err := d.Client().CoreV1().Nodes().Get(ctx, d.Node(), metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			if node.Spec.Unschedulable {
				return []string{"the node is cordoned now: it stays cordoned"}, nil
			}
			return []string{"PATCH node " + d.Node() + " spec.unschedulable=false"}, nil
		}),
	}
}

// NewKubeadmRecordPhase points kubeadm's cri-socket annotation at the new
// runtime (when the plan says kubeadm reads it); rollback puts the old value back.
func NewKubeadmRecordPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "kubeadm-record",
		Short: "Update kubeadm's record of the CRI socket",
		Run: run(func(ctx context.Context, d Data) error {
			if d.DryRun() {
				return nil // an API change: the plan describes it
			}
			p := d.Plan()
			if p.Annotation == "" {
				return nil
			}
			j := d.Journal()
			if _, ok := j.Values[keyHadAnnotation]; !ok {
				// The run's first read: only unshim changes this
				// annotation, and only here.
				node, err := nodeBefore(ctx, d)
				if err != nil {
					return err
				}
				old, had := node.Annotations[inventory.CRISocketAnnotation]
				j.Values[keyOldAnnotation], j.Values[keyHadAnnotation] = old, strconv.FormatBool(had)
				if err := d.Store().Save(ctx, j); err != nil {
					return err
				}
			}
			return annotate(ctx, d, &p.Annotation)
		}),
		Rollback: run(func(ctx context.Context, d Data) error {
			j := d.Journal()
			switch j.Values[keyHadAnnotation] {
			case "true":
				old := j.Values[keyOldAnnotation]
				return annotate(ctx, d, &old)
			case "false":
				return annotate(ctx, d, nil)
			}
			return nil
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			p := d.Plan()
			if p.Annotation == "" {
				return []string{"annotation " + inventory.CRISocketAnnotation + " left alone (kubeadm reads " + nodeplan.InstanceConfigFile + ")"}, nil
			}
			return []string{fmt.Sprintf("PATCH node %s annotation %s: %q -> %q", d.Node(), inventory.CRISocketAnnotation, p.OldAnnotation, p.Annotation)}, nil
		}),
	}
}

// annotate sets (or, with nil, removes) the cri-socket annotation.
func annotate(ctx context.Context, d Data, v *string) error {
	return Annotate(ctx, d.Client(), d.Node(), inventory.CRISocketAnnotation, v)
}

// Annotate sets (or, with nil, removes) annotation key on node.
func Annotate(ctx context.Context, c kubernetes.Interface, node, key string, v *string) error {
	return AnnotateAll(ctx, c, node, map[string]*string{key: v})
}

// AnnotateAll sets the annotations of node in one patch (a nil value
// removes its key).
func AnnotateAll(ctx context.Context, c kubernetes.Interface, node string, kv map[string]*string) error {
	vals := map[string]any{}
	for k, v := range kv {
		if v == nil {
			vals[k] = nil
		} else {
			vals[k] = *v
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": vals}})
	err := RetryAPI(ctx, apiRetryTimeout, func(ctx context.Context) error {
		_, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("annotate node %s: %w", node, err)
	}
	return nil
}
