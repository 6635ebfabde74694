package phases

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// DrainBlockedError is a drain that was still waiting at its timeout for
// pods that PodDisruptionBudgets would not let go. It is not a failure of the
// node: a rollout reports the node as blocked, naming the pods and budgets,
// and goes on without it (the switch itself rolls back, which uncordons the
// node).
type DrainBlockedError struct {
	Node    string
	Timeout time.Duration
	// Pods are the pods still on the node that the drain had to evict,
	// as namespace/name.
	Pods []string
	// PDBs are the budgets covering those pods that allow no disruption
	// now (by their status, or by the drain's own count of their healthy
	// pods: budgetGuard), as namespace/name.
	PDBs []string
	Err  error
}

func (e *DrainBlockedError) Error() string {
	msg := fmt.Sprintf("drain of %s still blocked after %s: pods %s", e.Node, e.Timeout, strings.Join(e.Pods, ", "))
	if len(e.PDBs) > 0 {
		msg += "; PodDisruptionBudgets allowing no disruption: " + strings.Join(e.PDBs, ", ")
	}
	return msg + ": " + e.Err.Error()
}

func (e *DrainBlockedError) Unwrap() error { return e.Err }

// drainBlocked tells, after the drain failed at its timeout, which pods it
// was still waiting for and which budgets hold them. It returns nil when no
// budget holds any of them: the drain failed for another reason.
func drainBlocked(ctx context.Context, d Data, timeout time.Duration, cause error) error {
	list, errs := drainHelper(ctx, d).GetPodsForDeletion(d.Node())
	if len(errs) > 0 || len(list.Pods()) == 0 {
		return nil
	}
	pods := list.Pods()
	// One LIST of budgets per namespace the remaining pods are in.
	byNS := map[string]bool{}
	for _, p := range pods {
		byNS[p.Namespace] = true
	}
	blockedBy := map[string]bool{}
	held := map[string]bool{}
	guard := newBudgetGuard(d.Client())
	for ns := range byNS {
		opts := metav1.ListOptions{Limit: 500}
		for {
			pdbs, err := d.Client().PolicyV1().PodDisruptionBudgets(ns).List(ctx, opts)
			if err != nil {
				return nil
			}
			for _, pdb := range pdbs.Items {
				// policy/v1: an empty selector covers every pod of the
				// namespace, a missing one none.
				sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
				if err != nil {
					continue
				}
				var healthy *budgetPods // counted once a budget, when its status allows a disruption
				for _, p := range pods {
					if p.Namespace != ns || !sel.Matches(labels.Set(p.Labels)) {
						continue
					}
					if pdb.Status.DisruptionsAllowed > 0 {
						// Its status allows a disruption: held only if
						// the drain's own count does not (budgetGuard).
						if healthy == nil {
							if healthy, err = guard.healthyPods(ctx, &pdb, sel); err != nil || healthy == nil {
								break
							}
						}
						if short, _ := shortWithout(&pdb, healthy, p.Name); !short {
							continue
						}
					}
					blockedBy[ns+"/"+pdb.Name] = true
					held[p.Namespace+"/"+p.Name] = true
				}
			}
			if pdbs.Continue == "" {
				break
			}
			opts.Continue = pdbs.Continue
		}
	}
	if len(blockedBy) == 0 {
		return nil
	}
	e := &DrainBlockedError{Node: d.Node(), Timeout: timeout, Err: cause}
	for p := range held {
		e.Pods = append(e.Pods, p)
	}
	for p := range blockedBy {
		e.PDBs = append(e.PDBs, p)
	}
	sort.Strings(e.Pods)
	sort.Strings(e.PDBs)
	return e
}
