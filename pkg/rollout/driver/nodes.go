package driver

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeswitch"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

// TaintKey is the NoSchedule taint the driver puts on every node of a wave
// before any is drained, so evicted pods do not land on the wave's next
// victims (cordoning alone would, for pods that tolerate unschedulable).
const TaintKey = "unshim.io/switching"

// CordonedAnnotation marks a node the driver cordoned (it was schedulable
// before the wave): only such a node is uncordoned again. The switch itself
// sees the node already unschedulable and leaves it so, which is why the
// driver, not the switch, uncordons the wave's nodes.
const CordonedAnnotation = "unshim.io/rollout-cordoned"

// hold cordons and taints node for its wave. fresh also clears the last
// switch's result and phase annotations, so that a driver that restarts
// never reads an earlier run's outcome as this one's.
func hold(ctx context.Context, c kubernetes.Interface, node string, fresh bool, cur *corev1.Node) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := current(ctx, c, node, &cur)
		if err != nil {
			return err
		}
		changed := false
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		if !n.Spec.Unschedulable {
			n.Spec.Unschedulable = true
			n.Annotations[CordonedAnnotation] = "true"
			changed = true
		}
		if !hasTaint(n) {
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: TaintKey, Effect: corev1.TaintEffectNoSchedule})
			changed = true
		}
		if fresh {
			for _, k := range []string{nodeswitch.ResultAnnotation, nodeswitch.PhaseAnnotation} {
				if _, ok := n.Annotations[k]; ok {
					delete(n.Annotations, k)
					changed = true
				}
			}
		}
		if !changed {
			return nil
		}
		_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("cordon and taint node %s: %w", node, err)
	}
	return nil
}

// release removes the wave's taint and, when the driver cordoned the node,
// uncordons it; it also sets the runtime label to what the node runs now.
func release(ctx context.Context, c kubernetes.Interface, node string, cur *corev1.Node) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := current(ctx, c, node, &cur)
		if err != nil {
			return err
		}
		changed := false
		if hasTaint(n) {
			var keep []corev1.Taint
			for _, t := range n.Spec.Taints {
				if t.Key != TaintKey {
					keep = append(keep, t)
				}
			}
			n.Spec.Taints = keep
			changed = true
		}
		if _, ok := n.Annotations[CordonedAnnotation]; ok {
			n.Spec.Unschedulable = false
			delete(n.Annotations, CordonedAnnotation)
			changed = true
		}
		if want := runtimelabel.Value(n); n.Labels[runtimelabel.Key] != want {
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			if want == "" {
				delete(n.Labels, runtimelabel.Key)
			} else {
				n.Labels[runtimelabel.Key] = want
			}
			changed = true
		}
		if !changed {
			return nil
		}
		_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("uncordon and untaint node %s: %w", node, err)
	}
	return nil
}

// current is the node to change: *cur (a copy), the node as the driver
// last read it from a LIST or a watch, on the first attempt, which saves a
// GET per node (a stale copy fails the update with a conflict); a GET on
// every later attempt, or when there is none.
func current(ctx context.Context, c kubernetes.Interface, node string, cur **corev1.Node) (*corev1.Node, error) {
	if n := *cur; n != nil && n.Name == node {
		*cur = nil
		return n.DeepCopy(), nil
	}
	return c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
}

func hasTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == TaintKey {
			return true
		}
	}
	return false
}

// outcome is how one node's switch ended.
type outcome struct {
	State string // a v1alpha1 node state; Pending: interrupted, to run again
	Cause string
	// Phase is the switch phase the node stopped in (not Done).
	Phase    string
	Blocking *v1alpha1.Blocking
	// Keep leaves the node cordoned and tainted: its switch stopped half
	// way and was not rolled back, so nothing should be scheduled there.
	Keep bool
}

// classify reads a switch's error. interrupted says the driver itself was
// stopping (its context cancelled).
func classify(err error, interrupted bool) outcome {
	var db *phases.DrainBlockedError
	var pe *migrate.PhaseError
	var nd *nodeswitch.NotDockerError
	var re *ResultError
	switch {
	case err == nil:
		return outcome{State: v1alpha1.NodeDone}
	case errors.As(err, &db):
		return outcome{State: v1alpha1.NodeBlocked, Cause: firstLine(err.Error()), Phase: phaseOf(err, "drain"),
			Blocking: &v1alpha1.Blocking{PodDisruptionBudget: strings.Join(db.PDBs, ", "), Pods: db.Pods}}
	case errors.As(err, &pe) && pe.RolledBack && (pe.Interrupted || interrupted):
		return outcome{State: v1alpha1.NodePending, Cause: "interrupted and rolled back: " + firstLine(err.Error())}
	case errors.As(err, &pe) && pe.RolledBack:
		return outcome{State: v1alpha1.NodeRolledBack, Cause: firstLine(err.Error()), Phase: pe.Phase}
	case errors.As(err, &pe):
		// Not rolled back (the rollback failed): the journal keeps the state.
		return outcome{State: v1alpha1.NodeFailed, Cause: firstLine(err.Error()), Phase: pe.Phase, Keep: true}
	case errors.As(err, &re):
		return fromResult(re.Result)
	case errors.As(err, &nd):
		return outcome{State: v1alpha1.NodeFailed, Cause: firstLine(err.Error())}
	case interrupted:
		return outcome{State: v1alpha1.NodePending, Cause: "interrupted: " + firstLine(err.Error())}
	}
	// Refused before any change (the node's lock, a preflight blocker, an
	// unreachable node): nothing to undo.
	return outcome{State: v1alpha1.NodeFailed, Cause: firstLine(err.Error())}
}

// ResultError is a switch that ran where the driver cannot see its error
// (an agent pod on the node): its result annotation says how it ended.
type ResultError struct {
	Node, Result string
}

func (e *ResultError) Error() string { return fmt.Sprintf("the switch of %s: %s", e.Node, e.Result) }

// blockedRE reads DrainBlockedError's message as the result annotation
// carries it: "drain of N still blocked after D: pods A, B[; PodDisruptionBudgets allowing no disruption: X, Y]: ...".
var blockedRE = regexp.MustCompile(`drain of \S+ still blocked after \S+: pods (.+?)(?:; PodDisruptionBudgets allowing no disruption: (.+?))?: `)

// phaseRE finds the phase in migrate.PhaseError's message ("phase drain: ...").
var phaseRE = regexp.MustCompile(`(?:^|: )phase ([a-z][a-z0-9-]*): `)

// phaseOf is the phase a switch error's message names, or def.
func phaseOf(err error, def string) string {
	var pe *migrate.PhaseError
	if errors.As(err, &pe) {
		return pe.Phase
	}
	return phaseIn(err.Error(), def)
}

func phaseIn(msg, def string) string {
	if m := phaseRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return def
}

// fromResult reads the switch's result annotation ("succeeded",
// "rolled-back: ERROR", "failed: ERROR").
func fromResult(r string) outcome {
	switch {
	case r == "succeeded":
		return outcome{State: v1alpha1.NodeDone}
	case strings.HasPrefix(r, "rolled-back: "):
		msg := strings.TrimPrefix(r, "rolled-back: ")
		if m := blockedRE.FindStringSubmatch(msg); m != nil {
			b := &v1alpha1.Blocking{Pods: strings.Split(m[1], ", "), PodDisruptionBudget: m[2]}
			return outcome{State: v1alpha1.NodeBlocked, Cause: msg, Phase: phaseIn(msg, "drain"), Blocking: b}
		}
		return outcome{State: v1alpha1.NodeRolledBack, Cause: msg, Phase: phaseIn(msg, "")}
	case strings.HasPrefix(r, "failed: "):
		msg := strings.TrimPrefix(r, "failed: ")
		return outcome{State: v1alpha1.NodeFailed, Cause: msg, Phase: phaseIn(msg, ""), Keep: true}
	}
	return outcome{State: v1alpha1.NodeFailed, Cause: "unknown result " + r, Keep: true}
}

// onTarget tells whether n runs target now.
func onTarget(n *corev1.Node, target string) bool {
	r := inventory.Describe(n)
	switch target {
	case v1alpha1.TargetContainerd:
		return r.Runtime == inventory.RuntimeContainerd
	case v1alpha1.TargetCRIDockerd:
		return r.Runtime == inventory.RuntimeDocker && r.Via == inventory.ViaCRIDockerd
	}
	return false
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}
