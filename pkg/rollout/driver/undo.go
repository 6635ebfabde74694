package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/inventory"
)

// NotUndoableError says a rollout cannot be undone now, and why.
type NotUndoableError struct{ Name, Why string }

func (e *NotUndoableError) Error() string {
	return fmt.Sprintf("runtimemigration %s cannot be undone: %s", e.Name, e.Why)
}

// ErrNoRollback says the Switcher has no on-demand rollback.
var ErrNoRollback = errors.New("this transport has no on-demand rollback")

// UndoWaves lists the nodes undo switches back, wave by wave: the Done
// nodes of the rollout's waves, last wave first, and within a wave in
// reverse order. The waves kept every maxUnavailable going forward, so they
// keep it going back. A node whose undo was cut short (still Done, an undo
// start recorded) is in it again.
func UndoWaves(st *v1alpha1.RuntimeMigrationStatus) [][]string {
	state := map[string]string{}
	for _, n := range st.Nodes {
		state[n.Name] = n.State
	}
	var out [][]string
	for i := len(st.Waves) - 1; i >= 0; i-- {
		w := st.Waves[i].Nodes
		var group []string
		for j := len(w) - 1; j >= 0; j-- {
			if state[w[j]] == v1alpha1.NodeDone {
				group = append(group, w[j])
			}
		}
		if len(group) > 0 {
			out = append(out, group)
		}
	}
	return out
}

// UndoOrder is UndoWaves, one list.
func UndoOrder(st *v1alpha1.RuntimeMigrationStatus) []string {
	var out []string
	for _, g := range UndoWaves(st) {
		out = append(out, g...)
	}
	return out
}

// Undo switches the rollout's Done nodes back to Docker, a wave at a time,
// last wave first (UndoWaves), each node through the switch's on-demand
// rollback (from its journal): the wave's nodes cordoned and tainted first,
// then rolled back together (drained by the rollback), each uncordoned and
// untainted once its kubelet reports Docker and Ready. Each node ends
// Undone, with Events on it and on the rollout. It stops after the first
// wave with a node that cannot be switched back (left cordoned). Only an
// ended or aborted rollout is undone; the caller holds the rollout's Lease.
func (d *Driver) Undo(ctx context.Context) error {
	defer d.events.Wait()
	rb, ok := d.o.Switcher.(Rollbacker)
	if !ok {
		return ErrNoRollback
	}
	m, err := d.o.Store.Get(ctx, d.o.Name)
	if err != nil {
		return err
	}
	d.m = m
	if !ended(m) && !m.Spec.Abort {
		return &NotUndoableError{Name: m.Name, Why: fmt.Sprintf("it is %s; abort it first (unshim rollout abort %s)", orPending(m.Status.Phase), m.Name)}
	}
	d.mu.Lock()
	d.st = *m.Status.DeepCopy()
	d.st.Driver = d.o.Holder
	waves := UndoWaves(&d.st)
	d.mu.Unlock()
	var todo []string
	for _, g := range waves {
		todo = append(todo, g...)
	}
	if len(todo) == 0 {
		d.printf("rollout %s: no switched node to undo", d.o.Name)
		return nil
	}
	d.printf("rollout %s: switching back %d nodes in %d waves, last wave first: %s", d.o.Name, len(todo), len(waves), strings.Join(todo, ", "))
	d.event(ctx, corev1.EventTypeNormal, "UndoStarted", fmt.Sprintf("driver %s: switching back %d nodes: %s", d.o.Holder, len(todo), strings.Join(todo, ", ")))
	d.mu.Lock()
	d.setCondition(v1alpha1.ConditionUndone, metav1.ConditionFalse, "Undoing", fmt.Sprintf("switching back %d nodes", len(todo)))
	d.mu.Unlock()
	if err := d.write(ctx); err != nil {
		return err
	}
	done := 0
	for _, group := range waves {
		err := d.undoWave(ctx, rb, group, done, len(todo))
		done += len(group)
		if err != nil {
			d.mu.Lock()
			d.setCondition(v1alpha1.ConditionUndone, metav1.ConditionFalse, "UndoFailed", err.Error())
			d.mu.Unlock()
			d.event(ctx, corev1.EventTypeWarning, "UndoFailed", err.Error())
			d.warn(d.write(context.WithoutCancel(ctx)))
			return err
		}
	}
	msg := fmt.Sprintf("%d nodes switched back: %s", len(todo), strings.Join(todo, ", "))
	d.mu.Lock()
	d.setCondition(v1alpha1.ConditionUndone, metav1.ConditionTrue, "Undone", msg)
	d.mu.Unlock()
	d.printf("rollout %s undone: %s", d.o.Name, msg)
	d.event(ctx, corev1.EventTypeNormal, "Undone", msg)
	return d.write(ctx)
}

// undoWave switches one wave's nodes back together, all of them cordoned
// and tainted first (as a wave going forward: pods one rollback evicts do
// not land on the next node); done nodes came before, of total.
func (d *Driver) undoWave(ctx context.Context, rb Rollbacker, group []string, done, total int) error {
	for i, name := range group {
		if err := hold(ctx, d.o.Client, name, false, nil); err != nil {
			// None of the wave has started: let the held ones go.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			for _, h := range group[:i] {
				d.warn(release(rctx, d.o.Client, h, nil))
			}
			cancel()
			return fmt.Errorf("switch %s back: %w", name, err)
		}
	}
	errs := make([]error, len(group))
	var wg sync.WaitGroup
	for i, name := range group {
		label := fmt.Sprintf("undo %d/%d", done+i+1, total)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.undoNode(ctx, rb, label, name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func orPending(phase string) string {
	if phase == "" {
		return v1alpha1.PhasePending
	}
	return phase
}

// undoNode switches one node back; it is held (cordoned and tainted).
func (d *Driver) undoNode(ctx context.Context, rb Rollbacker, label, name string) error {
	now := metav1.NewTime(d.o.Now())
	d.mu.Lock()
	ns := d.node(name)
	ns.UndoStartTime, ns.UndoCompletionTime = &now, nil
	d.mu.Unlock()
	d.warn(d.write(ctx))
	d.printf("%s: %s: switching back to Docker", label, name)
	d.nodeEvent(ctx, name, corev1.EventTypeNormal, "Undoing", fmt.Sprintf("runtimemigration %s: undo: switching back to Docker", d.o.Name))
	err := rb.Rollback(ctx, name, d.settings())
	if err == nil {
		err = d.waitBack(ctx, name)
	}
	// Recorded even when interrupted.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err != nil {
		cause := "undo failed: " + firstLine(err.Error())
		d.mu.Lock()
		d.node(name).Cause = cause
		d.mu.Unlock()
		d.printf("%s: %s: %s (left cordoned)", label, name, cause)
		d.nodeEvent(wctx, name, corev1.EventTypeWarning, "UndoFailed", fmt.Sprintf("runtimemigration %s: %s", d.o.Name, cause))
		return fmt.Errorf("switch %s back: %w", name, err)
	}
	d.warn(release(wctx, d.o.Client, name, nil))
	end := metav1.NewTime(d.o.Now())
	d.mu.Lock()
	ns = d.node(name)
	ns.State, ns.UndoCompletionTime, ns.Phase = v1alpha1.NodeUndone, &end, ""
	d.mu.Unlock()
	d.printf("%s: %s: back on Docker", label, name)
	d.nodeEvent(wctx, name, corev1.EventTypeNormal, "Undone", fmt.Sprintf("runtimemigration %s: undo: back on Docker", d.o.Name))
	d.event(wctx, corev1.EventTypeNormal, "NodeUndone", name+": back on Docker")
	d.warn(d.write(wctx))
	return nil
}

// waitBack waits, up to the verify timeout, for the node's kubelet to
// report Docker and Ready (the runtime label is set from what it reports).
func (d *Driver) waitBack(ctx context.Context, name string) error {
	deadline := d.o.Now().Add(v1alpha1.DurationOr(d.spec().VerifyTimeout, v1alpha1.DefaultVerifyTimeout))
	for {
		n, err := d.o.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil && ready(n) && inventory.Describe(n).Runtime == inventory.RuntimeDocker {
			return nil
		}
		if d.o.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("its kubelet reports %q, Ready %v", n.Status.NodeInfo.ContainerRuntimeVersion, ready(n))
			}
			return fmt.Errorf("node %s not back on Docker and Ready after the rollback: %w", name, err)
		}
		if err := d.sleep(ctx, d.o.Poll); err != nil {
			return err
		}
	}
}
