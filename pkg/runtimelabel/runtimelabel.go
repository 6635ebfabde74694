// Package runtimelabel owns the node label unshim.io/runtime: what it says
// of a node (docker, cri-dockerd or containerd, from pkg/inventory's reading
// of the node's status) and keeping it true on every node. Workloads that
// still need Docker are pinned to it (pkg/pin), and the rollout reads it.
package runtimelabel

import (
	"context"
	"encoding/json"
	"fmt"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/kubelist"
)

// Key is the label.
const Key = "unshim.io/runtime"

// The label's values.
const (
	Docker     = "docker"
	CRIDockerd = "cri-dockerd"
	Containerd = "containerd"
)

// DockerValues are the values of nodes that still run Docker.
var DockerValues = []string{Docker, CRIDockerd}

// Value is what the label should say of n: docker (Docker through
// dockershim), cri-dockerd, containerd, or "" (no label) for a node whose
// runtime is another or not reported yet.
func Value(n *corev1.Node) string {
	r := inventory.Describe(n)
	switch {
	case r.Runtime == inventory.RuntimeDocker && r.Via == inventory.ViaCRIDockerd:
		return CRIDockerd
	case r.Runtime == inventory.RuntimeDocker:
		return Docker
	case r.Runtime == inventory.RuntimeContainerd:
		return Containerd
	}
	return ""
}

// Change is one node whose label is (or would be) changed.
type Change struct {
	Node string `json:"node"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Sync reads every node matching selector with paged LISTs and sets the
// label where it is wrong (removes it where Value is ""). With dryRun it
// only reports the changes.
func Sync(ctx context.Context, c kubernetes.Interface, selector string, pageSize int64, dryRun bool) ([]Change, error) {
	var changes []Change
	err := kubelist.Each(ctx, "nodes", pageSize, metav1.ListOptions{LabelSelector: selector},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Nodes().List(ctx, opts)
		},
		func(obj runtime.Object) error {
			n := obj.(*corev1.Node)
			want := Value(n)
			have, has := n.Labels[Key]
			if have == want && (has || want == "") {
				return nil
			}
			changes = append(changes, Change{Node: n.Name, From: have, To: want})
			return nil
		})
	if err != nil || dryRun {
		return changes, err
	}
	// A few at once: on a cluster labelled for the first time that is a
	// PATCH per node, one after another a minute and more at 5,000 nodes.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(patchParallel)
	for _, ch := range changes {
		g.Go(func() error {
			var v any = ch.To
			if ch.To == "" {
				v = nil
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{Key: v}}})
			if err != nil {
				return err
			}
			if _, err := c.CoreV1().Nodes().Patch(gctx, ch.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "unshim"}); err != nil {
				return fmt.Errorf("label node %s %s=%s: %w", ch.Node, Key, ch.To, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return changes, nil
}

// patchParallel is how many nodes Sync labels at once: a rollout labels
// every node before its first wave, and 8 at once kept a first rollout of
// 1,000 unlabelled nodes waiting ~2 s on it (one round trip each, 125
// rounds), ~10 s at 5,000.
const patchParallel = 32
