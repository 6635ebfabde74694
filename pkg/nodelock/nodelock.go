// Package nodelock keeps two unshim runs from acting on one node at once: a
// coordination/v1 Lease per node, taken with the API's optimistic
// concurrency (create, or update at the read resourceVersion), renewed while
// the run lasts, and taken over only once it has expired.
package nodelock

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Namespace holds the locks.
const Namespace = "kube-system"

// LeaseName is the Lease that locks node.
func LeaseName(node string) string { return "unshim-node-" + node }

// Lock is a held node lock.
type Lock struct {
	client kubernetes.Interface
	lease  *coordinationv1.Lease
	Holder string
}

// HeldError says another run holds the lock.
type HeldError struct {
	Node, Holder string
	RenewedAt    time.Time
	Expires      time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("node %s is locked by %s (renewed %s, expires %s); wait, or remove Lease %s/%s if that run is gone",
		e.Node, e.Holder, e.RenewedAt.Format(time.RFC3339), e.Expires.Format(time.RFC3339), Namespace, LeaseName(e.Node))
}

// Acquire takes the lock on node for holder, for ttl. The same holder may
// take it again (a resumed run); another holder only once it has expired.
func Acquire(ctx context.Context, c kubernetes.Interface, node, holder string, ttl time.Duration) (*Lock, error) {
	return AcquireUnlessStale(ctx, c, node, holder, ttl, nil)
}

// AcquireUnlessStale is Acquire, but also takes over a lock that has not
// expired when stale says its holder is gone (a run on this machine whose
// process no longer exists).
func AcquireUnlessStale(ctx context.Context, c kubernetes.Interface, node, holder string, ttl time.Duration, stale func(holder string) bool) (*Lock, error) {
	leases := c.CoordinationV1().Leases(Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(ttl / time.Second)
	want := coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}
	l, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LeaseName(node), Namespace: Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "unshim"}},
		Spec:       want,
	}, metav1.CreateOptions{})
	if err == nil {
		return &Lock{client: c, lease: l, Holder: holder}, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("lock node %s: %w", node, err)
	}
	cur, err := leases.Get(ctx, LeaseName(node), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("lock node %s: %w", node, err)
	}
	if h := cur.Spec.HolderIdentity; h != nil && *h != "" && *h != holder {
		if exp, ok := expiry(cur); ok && time.Now().Before(exp) && (stale == nil || !stale(*h)) {
			return nil, &HeldError{Node: node, Holder: *h, RenewedAt: cur.Spec.RenewTime.Time, Expires: exp}
		}
	}
	cur.Spec = want
	// The update carries the resourceVersion read above: if another run took
	// the lock in between, it fails with a conflict instead of stealing it.
	l, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil, fmt.Errorf("lock node %s: taken by another run at the same moment: %w", node, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock node %s: %w", node, err)
	}
	return &Lock{client: c, lease: l, Holder: holder}, nil
}

func expiry(l *coordinationv1.Lease) (time.Time, bool) {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return time.Time{}, false
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second), true
}

// Renew extends the lock; it fails if the lock was lost.
func (l *Lock) Renew(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	l.lease.Spec.RenewTime = &now
	updated, err := l.client.CoordinationV1().Leases(Namespace).Update(ctx, l.lease, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("renew lock %s: %w", l.lease.Name, err)
	}
	l.lease = updated
	return nil
}

// Release gives the lock up; releasing a lock already lost is not an error.
func (l *Lock) Release(ctx context.Context) error {
	err := l.client.CoordinationV1().Leases(Namespace).Delete(ctx, l.lease.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{ResourceVersion: &l.lease.ResourceVersion},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("release lock %s: %w", l.lease.Name, err)
	}
	return nil
}
