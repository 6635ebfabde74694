// Package record owns what a rollout report shows: it reads a
// RuntimeMigration and the cluster's nodes (one paged LIST) and joins them
// into a Record, the before and after of every node the rollout planned.
// It renders nothing (pkg/report/rolloutreport does) and changes nothing.
package record

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

// Record is one rollout, as a report shows it.
type Record struct {
	// Name of the RuntimeMigration.
	Name string
	// Created is when the RuntimeMigration was created.
	Created time.Time
	Spec    v1alpha1.RuntimeMigrationSpec
	Status  v1alpha1.RuntimeMigrationStatus
	// Generated is when the record was read (the end of the timeline of a
	// rollout still under way).
	Generated time.Time
	// Nodes are the planned nodes in wave order, each with its current state.
	Nodes []Node
}

// Node is one planned node: the rollout's record of it, and what it runs now.
type Node struct {
	v1alpha1.NodeStatus
	// WaveKind is its wave's kind (Canary, Workers, Windows, ControlPlane).
	WaveKind string
	// Gone says the node no longer exists; the fields below are then empty.
	Gone bool
	// RuntimeLabel is the node's unshim.io/runtime label now.
	RuntimeLabel string
	// RuntimeVersion is the kubelet's containerRuntimeVersion now.
	RuntimeVersion string
	// Ready and Schedulable are the node's state now.
	Ready, Schedulable bool
	// SwitchPhase and SwitchResult are the switch's annotations now.
	SwitchPhase, SwitchResult string
}

// Source is where a record is read from.
type Source struct {
	// Get reads the RuntimeMigration (store.Store.Get).
	Get func(ctx context.Context, name string) (*v1alpha1.RuntimeMigration, error)
	// Client lists the nodes.
	Client kubernetes.Interface
	// PageSize of the LIST of nodes; 0: kubelist's default.
	PageSize int64
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Read reads rollout name and the nodes.
func Read(ctx context.Context, src Source, name string) (*Record, error) {
	m, err := src.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	nodes := map[string]*corev1.Node{}
	err = kubelist.Each(ctx, "nodes", src.PageSize, metav1.ListOptions{},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return src.Client.CoreV1().Nodes().List(ctx, opts)
		},
		func(obj runtime.Object) error {
			n := obj.(*corev1.Node)
			nodes[n.Name] = n.DeepCopy()
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("report on runtimemigration %s: %w", name, err)
	}
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	return Join(m, nodes, now()), nil
}

// Join builds the record of m from the nodes as they are now (by name).
func Join(m *v1alpha1.RuntimeMigration, nodes map[string]*corev1.Node, now time.Time) *Record {
	r := &Record{Name: m.Name, Created: m.CreationTimestamp.Time, Spec: m.Spec, Status: m.Status, Generated: now}
	kinds := map[int32]string{}
	for _, w := range m.Status.Waves {
		kinds[w.Index] = w.Kind
	}
	for _, ns := range m.Status.Nodes {
		n := Node{NodeStatus: ns, WaveKind: kinds[ns.Wave]}
		if k, ok := nodes[ns.Name]; ok {
			n.RuntimeLabel = k.Labels[runtimelabel.Key]
			n.RuntimeVersion = k.Status.NodeInfo.ContainerRuntimeVersion
			n.Schedulable = !k.Spec.Unschedulable
			n.Ready = ready(k)
			n.SwitchPhase = k.Annotations[inventory.SwitchPhaseAnnotation]
			n.SwitchResult = k.Annotations[inventory.SwitchResultAnnotation]
		} else {
			n.Gone = true
		}
		r.Nodes = append(r.Nodes, n)
	}
	sort.SliceStable(r.Nodes, func(i, j int) bool { return r.Nodes[i].Wave < r.Nodes[j].Wave })
	return r
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Now is the runtime the node runs now: the runtime label, else the name
// in containerRuntimeVersion ("gone" when the node was deleted).
func (n Node) Now() string {
	switch {
	case n.Gone:
		return "gone"
	case n.RuntimeLabel != "":
		return n.RuntimeLabel
	case n.RuntimeVersion != "":
		name, _, _ := strings.Cut(n.RuntimeVersion, "://")
		return name
	}
	return "unknown"
}

// Span is when the node's switch ran: from its start to its end, or to at
// when it has not ended. ok is false for a node that never started.
func (n Node) Span(at time.Time) (start, end time.Time, ok bool) {
	if n.StartTime == nil {
		return time.Time{}, time.Time{}, false
	}
	start, end = n.StartTime.Time, at
	if n.CompletionTime != nil {
		end = n.CompletionTime.Time
	}
	if end.Before(start) {
		end = start
	}
	return start, end, true
}

// UndoSpan is when `rollout undo` switched the node back, if it did.
func (n Node) UndoSpan(at time.Time) (start, end time.Time, ok bool) {
	if n.UndoStartTime == nil {
		return time.Time{}, time.Time{}, false
	}
	start, end = n.UndoStartTime.Time, at
	if n.UndoCompletionTime != nil {
		end = n.UndoCompletionTime.Time
	}
	if end.Before(start) {
		end = start
	}
	return start, end, true
}

// Problem says whether the node needs a reader's attention: failed,
// blocked, rolled back or skipped.
func (n Node) Problem() bool {
	switch n.State {
	case v1alpha1.NodeFailed, v1alpha1.NodeBlocked, v1alpha1.NodeRolledBack, v1alpha1.NodeSkipped:
		return true
	}
	return false
}

// Bounds are the earliest start and latest end over every node's switch
// and undo; ok is false when no node started.
func (r *Record) Bounds() (start, end time.Time, ok bool) {
	for _, n := range r.Nodes {
		for _, span := range []func(time.Time) (time.Time, time.Time, bool){n.Span, n.UndoSpan} {
			s, e, has := span(r.Generated)
			if !has {
				continue
			}
			if !ok || s.Before(start) {
				start = s
			}
			if !ok || e.After(end) {
				end = e
			}
			ok = true
		}
	}
	return start, end, ok
}
