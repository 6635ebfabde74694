// Package owner rolls objects up to their top-level owner (Pod → ReplicaSet →
// Deployment, Pod → Job → CronJob, Pod → DaemonSet/StatefulSet/
// ReplicationController) from owner references, without any API calls: the
// caller feeds it the ReplicaSets and Jobs it has listed.
package owner

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/check"
)

// Index remembers which ReplicaSets and Jobs have an owner of their own.
// Only owned ones are kept, so its size is bounded by the number of
// Deployments' ReplicaSets and CronJobs' Jobs, not by the number of pods.
type Index struct {
	parents map[key]check.ObjectRef
}

type key struct{ kind, namespace, name string }

// NewIndex returns an empty Index.
func NewIndex() *Index { return &Index{parents: map[key]check.ObjectRef{}} }

// Controller returns the controlling owner reference (or the first one) and false when there is none.
func Controller(refs []metav1.OwnerReference) (metav1.OwnerReference, bool) {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			return r, true
		}
	}
	if len(refs) > 0 {
		return refs[0], true
	}
	return metav1.OwnerReference{}, false
}

// Add records an intermediate object (a ReplicaSet or a Job) and its owner references.
func (ix *Index) Add(kind, namespace, name string, refs []metav1.OwnerReference) {
	if kind != "ReplicaSet" && kind != "Job" {
		return
	}
	if c, ok := Controller(refs); ok {
		ix.parents[key{kind, namespace, name}] = check.ObjectRef{Kind: c.Kind, Namespace: namespace, Name: c.Name}
	}
}

// Len returns how many owned intermediate objects the index holds.
func (ix *Index) Len() int { return len(ix.parents) }

// Top returns the top-level owner of the object kind/namespace/name with owner references refs.
func (ix *Index) Top(kind, namespace, name string, refs []metav1.OwnerReference) check.ObjectRef {
	cur := check.ObjectRef{Kind: kind, Namespace: namespace, Name: name}
	c, ok := Controller(refs)
	if !ok {
		return cur
	}
	cur = check.ObjectRef{Kind: c.Kind, Namespace: namespace, Name: c.Name}
	// Follow known intermediate objects; the chain is short (at most Pod→RS→Deployment), the bound guards cycles.
	for i := 0; i < 8; i++ {
		p, ok := ix.parents[key{cur.Kind, cur.Namespace, cur.Name}]
		if !ok {
			return cur
		}
		cur = p
	}
	return cur
}
