// Package live owns what `unshim rollout status -w` shows as a rollout
// runs: a model of the rollout and its nodes fed by watch events (Feed:
// informers on the RuntimeMigration and the nodes, no polling), which gives
// one row per node (wave, phase, elapsed, result), the totals and an ETA,
// and one plain line per change for output that is not a terminal. It
// draws nothing on a terminal itself.
package live

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/inventory"
)

// Event is one change the watches saw: the rollout, or a node.
type Event struct {
	// Rollout is the RuntimeMigration as it is now.
	Rollout *v1alpha1.RuntimeMigration
	// Node is a node as it is now; NodeGone says it was deleted.
	Node     *corev1.Node
	NodeGone bool
	// RolloutGone says the RuntimeMigration was deleted.
	RolloutGone bool
}

// node is what the model keeps of a node object.
type node struct {
	phase, result, runtime string
}

// Model is the rollout as last seen. It is not safe for concurrent use:
// one goroutine applies the events and reads it.
type Model struct {
	m     *v1alpha1.RuntimeMigration
	nodes map[string]node
	gone  bool
}

// New returns an empty model.
func New() *Model { return &Model{nodes: map[string]node{}} }

// Apply applies ev and returns the plain lines that say what changed (none
// when nothing shown changed).
func (md *Model) Apply(ev Event) []string {
	switch {
	case ev.RolloutGone:
		md.gone = true
		return []string{"the runtimemigration was deleted"}
	case ev.Rollout != nil:
		return md.rollout(ev.Rollout)
	case ev.Node != nil:
		return md.node(ev.Node.Name, ev.Node, ev.NodeGone)
	}
	return nil
}

func (md *Model) rollout(m *v1alpha1.RuntimeMigration) []string {
	prev := md.m
	md.m = m.DeepCopy()
	var out []string
	if prev == nil || prev.Status.Phase != m.Status.Phase || prev.Status.Message != m.Status.Message {
		line := fmt.Sprintf("rollout %s: %s", m.Name, orPending(m.Status.Phase))
		if m.Status.Message != "" {
			line += ": " + m.Status.Message
		}
		out = append(out, line)
	}
	old := map[string]v1alpha1.NodeStatus{}
	if prev != nil {
		for _, n := range prev.Status.Nodes {
			old[n.Name] = n
		}
	}
	for _, n := range m.Status.Nodes {
		o, seen := old[n.Name]
		if seen && o.State == n.State && o.Cause == n.Cause {
			continue
		}
		if !seen && prev == nil && n.State == v1alpha1.NodePending {
			continue // the initial plan: not a change
		}
		line := fmt.Sprintf("node %s (wave %d): %s", n.Name, n.Wave+1, n.State)
		if n.FailedPhase != "" && n.State != v1alpha1.NodeDone {
			line += " in " + n.FailedPhase
		}
		if n.Cause != "" {
			line += ": " + n.Cause
		}
		out = append(out, line)
	}
	return out
}

func (md *Model) node(name string, n *corev1.Node, gone bool) []string {
	prev, had := md.nodes[name]
	if gone {
		delete(md.nodes, name)
		if had && md.planned(name) {
			return []string{fmt.Sprintf("node %s: deleted", name)}
		}
		return nil
	}
	cur := node{phase: n.Annotations[inventory.SwitchPhaseAnnotation], result: n.Annotations[inventory.SwitchResultAnnotation],
		runtime: n.Status.NodeInfo.ContainerRuntimeVersion}
	md.nodes[name] = cur
	if !md.planned(name) || !had {
		return nil
	}
	var out []string
	if cur.phase != prev.phase && cur.phase != "" {
		out = append(out, fmt.Sprintf("node %s: %s", name, cur.phase))
	}
	if cur.runtime != prev.runtime {
		out = append(out, fmt.Sprintf("node %s: runs %s", name, cur.runtime))
	}
	return out
}

func (md *Model) planned(name string) bool {
	if md.m == nil {
		return false
	}
	for _, n := range md.m.Status.Nodes {
		if n.Name == name {
			return true
		}
	}
	return false
}

// Rollout is the RuntimeMigration as last seen (nil before the first).
func (md *Model) Rollout() *v1alpha1.RuntimeMigration { return md.m }

// Ended tells whether the rollout ended or was deleted: nothing more will
// change.
func (md *Model) Ended() bool { return md.gone || (md.m != nil && md.m.Ended()) }

// Row is one node in the live table.
type Row struct {
	Node, Wave, State, Phase, Elapsed, Result string
}

// Rows are the planned nodes in wave order, at now.
func (md *Model) Rows(now time.Time) []Row {
	if md.m == nil {
		return nil
	}
	kinds := map[int32]string{}
	for _, w := range md.m.Status.Waves {
		kinds[w.Index] = w.Kind
	}
	nodes := append([]v1alpha1.NodeStatus(nil), md.m.Status.Nodes...)
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Wave < nodes[j].Wave })
	rows := make([]Row, 0, len(nodes))
	for _, n := range nodes {
		r := Row{Node: n.Name, Wave: fmt.Sprintf("%d %s", n.Wave+1, kinds[n.Wave]), State: n.State}
		// The phase: the node's own annotation while it switches (it
		// changes before the driver writes the status), else the status's.
		r.Phase = n.Phase
		if live := md.nodes[n.Name].phase; n.State == v1alpha1.NodeSwitching && live != "" {
			r.Phase = live
		}
		if n.State != v1alpha1.NodeSwitching && n.State != v1alpha1.NodePending {
			r.Phase = n.FailedPhase
		}
		if n.StartTime != nil {
			end := now
			if n.CompletionTime != nil {
				end = n.CompletionTime.Time
			}
			r.Elapsed = end.Sub(n.StartTime.Time).Round(time.Second).String()
		}
		switch n.State {
		case v1alpha1.NodeDone:
			// What the node reports, once its watch has said; the target
			// until then.
			r.Result = "on " + md.m.Spec.TargetRuntime
			if rt := md.nodes[n.Name].runtime; rt != "" {
				r.Result = "on " + runtimeName(rt)
			}
		case v1alpha1.NodePending, v1alpha1.NodeSwitching:
		default:
			r.Result = n.Cause
			if n.Blocking != nil {
				r.Result = fmt.Sprintf("PDB %s (pods %s)", n.Blocking.PodDisruptionBudget, strings.Join(n.Blocking.Pods, ", "))
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func runtimeName(v string) string {
	name, _, _ := strings.Cut(v, "://")
	return name
}

// Summary is the headline: the rollout, its phase and why, the totals and
// the ETA.
func (md *Model) Summary(now time.Time) string {
	if md.m == nil {
		return "waiting for the rollout..."
	}
	st := md.m.Status
	c := st.Counts
	s := fmt.Sprintf("rollout %s to %s: %s", md.m.Name, md.m.Spec.TargetRuntime, orPending(st.Phase))
	if st.Message != "" {
		s += " (" + st.Message + ")"
	}
	s += fmt.Sprintf("\n%d/%d done, %d switching, %d pending, %d failed, %d rolled back, %d blocked, %d skipped",
		c.Done, c.Total, c.Switching, c.Pending, c.Failed, c.RolledBack, c.Blocked, c.Skipped)
	if eta, ok := md.ETA(now); ok {
		s += ", ETA " + eta.Round(time.Second).String()
	} else if !md.Ended() {
		s += ", ETA unknown until a wave ends"
	}
	return s
}

// ETA estimates the time left: the mean time of the waves that completed,
// for each wave still to run, less the time the current one has run. ok is
// false before any wave completed, or when the rollout ended.
func (md *Model) ETA(now time.Time) (time.Duration, bool) {
	if md.m == nil || md.Ended() {
		return 0, false
	}
	var sum time.Duration
	var done, left int
	var current time.Duration
	for _, w := range md.m.Status.Waves {
		switch {
		case w.StartTime != nil && w.CompletionTime != nil:
			sum += w.CompletionTime.Sub(w.StartTime.Time)
			done++
		case w.StartTime != nil:
			current = now.Sub(w.StartTime.Time)
			left++
		default:
			left++
		}
	}
	if done == 0 {
		return 0, false
	}
	eta := sum/time.Duration(done)*time.Duration(left) - current
	return max(eta, 0), true
}

func orPending(p string) string {
	if p == "" {
		return v1alpha1.PhasePending
	}
	return p
}
