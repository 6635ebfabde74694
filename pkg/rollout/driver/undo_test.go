package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// undoSwitch is the fake switch with an on-demand rollback: it records the
// order and, for each node, whether the node was cordoned and tainted when
// its rollback started, and puts the node back on Docker (unless fail).
type undoSwitch struct {
	*fakeSwitch
	fail string

	umu     sync.Mutex
	undone  []string
	heldAt  map[string]bool
	running map[string]bool
	maxRun  int
	// together are the nodes whose rollbacks overlapped another's.
	together map[string]bool
}

func (u *undoSwitch) Rollback(ctx context.Context, node string, s phases.Settings) error {
	n, err := u.c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	u.umu.Lock()
	u.undone = append(u.undone, node)
	u.heldAt[node] = n.Spec.Unschedulable && hasTaint(n)
	if u.running == nil {
		u.running, u.together = map[string]bool{}, map[string]bool{}
	}
	u.running[node] = true
	u.maxRun = max(u.maxRun, len(u.running))
	if len(u.running) > 1 {
		for r := range u.running {
			u.together[r] = true
		}
	}
	u.umu.Unlock()
	// Long enough for the rollbacks of one wave to overlap.
	time.Sleep(50 * time.Millisecond)
	u.umu.Lock()
	delete(u.running, node)
	u.umu.Unlock()
	if node == u.fail {
		return errors.New("journal damaged")
	}
	n.Status.NodeInfo.ContainerRuntimeVersion = "docker://20.10.24"
	_, err = u.c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

func TestUndoOrder(t *testing.T) {
	st := &v1alpha1.RuntimeMigrationStatus{
		Waves: []v1alpha1.WaveStatus{{Nodes: []string{"a"}}, {Nodes: []string{"b", "c"}}, {Nodes: []string{"d", "e"}}},
		Nodes: []v1alpha1.NodeStatus{{Name: "a", State: v1alpha1.NodeDone}, {Name: "b", State: v1alpha1.NodeDone}, {Name: "c", State: v1alpha1.NodeRolledBack},
			{Name: "d", State: v1alpha1.NodeBlocked}, {Name: "e", State: v1alpha1.NodeDone}},
	}
	if got := fmt.Sprint(UndoOrder(st)); got != "[e b a]" {
		t.Errorf("order %s, want [e b a]: the Done nodes, last wave first", got)
	}
}

func TestUndo(t *testing.T) {
	tests := []struct {
		description string
		fail        string
		wantUndone  []string
		wantState   map[string]string
		wantErr     bool
	}{
		{"every node back, last wave first", "", []string{"c", "b", "a"},
			map[string]string{"a": v1alpha1.NodeUndone, "b": v1alpha1.NodeUndone, "c": v1alpha1.NodeUndone}, false},
		{"a node that cannot be switched back stops the undo", "b", []string{"c", "b"},
			map[string]string{"a": v1alpha1.NodeDone, "b": v1alpha1.NodeDone, "c": v1alpha1.NodeUndone}, true},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			e := newEnv(t, testNode("a", false), testNode("b", false), testNode("c", false))
			e.create(t, v1alpha1.RuntimeMigrationSpec{MaxUnavailable: ptr(intstr.FromInt32(1)), Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1}})
			if err := e.run(t, t.Context())(); err != nil {
				t.Fatal(err)
			}
			u := &undoSwitch{fakeSwitch: e.sw, heldAt: map[string]bool{}, fail: tt.fail}
			d, err := New(Options{Name: "r", Store: e.st, Client: e.kc, Switcher: u, Holder: "undoer", Out: &syncWriter{w: e.out}, Poll: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = d.Undo(t.Context())
			if (err != nil) != tt.wantErr {
				t.Fatalf("undo: %v; want error %v\n%s", err, tt.wantErr, e.out)
			}
			if !slices.Equal(u.undone, tt.wantUndone) {
				t.Errorf("rolled back %v, want %v", u.undone, tt.wantUndone)
			}
			for n, held := range u.heldAt {
				if !held {
					t.Errorf("%s was not cordoned and tainted when its rollback started", n)
				}
			}
			m := e.get(t)
			if got := states(m); fmt.Sprint(got) != fmt.Sprint(tt.wantState) {
				t.Errorf("states %v, want %v", got, tt.wantState)
			}
			c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionUndone)
			evs, _ := e.kc.CoreV1().Events(store.EventNamespace).List(t.Context(), metav1.ListOptions{})
			var reasons []string
			for _, ev := range evs.Items {
				reasons = append(reasons, ev.InvolvedObject.Kind+"/"+ev.InvolvedObject.Name+"/"+ev.Reason)
			}
			if tt.wantErr {
				// The node that failed stays cordoned and tainted, and says why.
				n, _ := e.kc.CoreV1().Nodes().Get(t.Context(), tt.fail, metav1.GetOptions{})
				if !n.Spec.Unschedulable || !hasTaint(n) {
					t.Errorf("%s after its failed undo: unschedulable %v, taints %v; want it held", tt.fail, n.Spec.Unschedulable, n.Spec.Taints)
				}
				if c == nil || c.Reason != "UndoFailed" || !slices.Contains(reasons, "Node/"+tt.fail+"/UndoFailed") {
					t.Errorf("condition %+v, events %v: want UndoFailed", c, reasons)
				}
				return
			}
			e.released(t)
			if c == nil || c.Status != metav1.ConditionTrue || m.Status.Counts.Undone != 3 {
				t.Errorf("condition %+v, counts %+v", c, m.Status.Counts)
			}
			for _, n := range m.Status.Nodes {
				if n.UndoStartTime == nil || n.UndoCompletionTime == nil {
					t.Errorf("%s: undo times %v %v", n.Name, n.UndoStartTime, n.UndoCompletionTime)
				}
			}
			for _, want := range []string{"RuntimeMigration/r/UndoStarted", "RuntimeMigration/r/Undone", "Node/a/Undoing", "Node/a/Undone", "Node/c/Undone"} {
				if !slices.Contains(reasons, want) {
					t.Errorf("no %s Event among %v", want, reasons)
				}
			}
			// Nothing left: a second undo does nothing.
			u.undone = nil
			if err := d.Undo(t.Context()); err != nil || len(u.undone) != 0 {
				t.Errorf("second undo: %v, rolled back %v", err, u.undone)
			}
		})
	}
}

// TestUndoByWaves: with maxUnavailable 2 the rollout ran the canary a,
// then [b c], then [d]; undo switches d back, then b and c together (never
// more than the wave), then a.
func TestUndoByWaves(t *testing.T) {
	e := newEnv(t, testNode("a", false), testNode("b", false), testNode("c", false), testNode("d", false))
	e.create(t, v1alpha1.RuntimeMigrationSpec{MaxUnavailable: ptr(intstr.FromInt32(2)), Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1}})
	if err := e.run(t, t.Context())(); err != nil {
		t.Fatal(err)
	}
	m := e.get(t)
	var waves []string
	for _, w := range m.Status.Waves {
		waves = append(waves, fmt.Sprint(w.Nodes))
	}
	if fmt.Sprint(waves) != "[[a] [b c] [d]]" {
		t.Fatalf("waves %v, want [[a] [b c] [d]]", waves)
	}
	if got := fmt.Sprint(UndoWaves(&m.Status)); got != "[[d] [c b] [a]]" {
		t.Errorf("undo waves %s, want [[d] [c b] [a]]", got)
	}
	u := &undoSwitch{fakeSwitch: e.sw, heldAt: map[string]bool{}}
	d, err := New(Options{Name: "r", Store: e.st, Client: e.kc, Switcher: u, Holder: "undoer", Out: &syncWriter{w: e.out}, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Undo(t.Context()); err != nil {
		t.Fatalf("undo: %v\n%s", err, e.out)
	}
	if len(u.undone) != 4 || u.undone[0] != "d" || u.undone[3] != "a" {
		t.Errorf("rolled back %v: want d first, a last", u.undone)
	}
	if u.maxRun != 2 || !u.together["b"] || !u.together["c"] || u.together["a"] || u.together["d"] {
		t.Errorf("at most %d rollbacks at once, overlapping: %v; want b and c together, a and d alone", u.maxRun, u.together)
	}
	for n, held := range u.heldAt {
		if !held {
			t.Errorf("%s was not cordoned and tainted when its rollback started", n)
		}
	}
	if c := e.get(t).Status.Counts; c.Undone != 4 {
		t.Errorf("counts %+v, want 4 Undone", c)
	}
	e.released(t)
}

func TestUndoRefused(t *testing.T) {
	e := newEnv(t, testNode("a", false))
	e.create(t, v1alpha1.RuntimeMigrationSpec{})
	u := &undoSwitch{fakeSwitch: e.sw, heldAt: map[string]bool{}}
	d, err := New(Options{Name: "r", Store: e.st, Client: e.kc, Switcher: u, Holder: "undoer"})
	if err != nil {
		t.Fatal(err)
	}
	var nu *NotUndoableError
	if err := d.Undo(t.Context()); !errors.As(err, &nu) {
		t.Errorf("undo of a rollout not ended: %v; want NotUndoableError", err)
	}
	// A Switcher with no on-demand rollback is refused.
	d, _ = New(Options{Name: "r", Store: e.st, Client: e.kc, Switcher: e.sw, Holder: "undoer"})
	if err := d.Undo(t.Context()); !errors.Is(err, ErrNoRollback) {
		t.Errorf("undo without a rollback: %v", err)
	}
	n, _ := e.kc.CoreV1().Nodes().Get(t.Context(), "a", metav1.GetOptions{})
	if n.Spec.Unschedulable || len(u.undone) > 0 {
		t.Error("a refused undo changed a node")
	}
}
