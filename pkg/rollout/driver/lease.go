package driver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/unshim/unshim/pkg/nodelock"
)

// The rollout's Lease: one driver at a time in a cluster, whether `unshim
// rollout run` or a replica of `unshim rollout controller`.
const (
	LeaseNamespace = "kube-system"
	LeaseName      = "unshim-rollout"
)

// LeaseTiming are the leader election's durations.
type LeaseTiming struct {
	// Duration a Lease not renewed stays valid (default 15s).
	Duration time.Duration
	// RenewDeadline is how long the holder retries renewing before it gives
	// up (default 10s).
	RenewDeadline time.Duration
	// RetryPeriod between attempts (default 2s).
	RetryPeriod time.Duration
}

func (t LeaseTiming) complete() LeaseTiming {
	if t.Duration == 0 {
		t.Duration = 15 * time.Second
	}
	if t.RenewDeadline == 0 {
		t.RenewDeadline = t.Duration * 2 / 3
	}
	if t.RetryPeriod == 0 {
		t.RetryPeriod = 2 * time.Second
	}
	return t
}

// Identity names a driver on this machine: "unshim-rollout@HOST/PID".
func Identity() string { return nodelock.Holder(identityKind) }

const identityKind = "unshim-rollout"

// HeldError says another driver holds the rollout's Lease.
type HeldError struct {
	Holder  string
	Expires time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("another rollout driver holds Lease %s/%s: %s (valid until %s unless renewed); wait for it, or stop it",
		LeaseNamespace, LeaseName, e.Holder, e.Expires.Format(time.RFC3339))
}

func lock(c kubernetes.Interface, id string) *resourcelock.LeaseLock {
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: LeaseNamespace, Name: LeaseName},
		Client:     c.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
}

// Hold runs fn holding the rollout's Lease as id, and releases it after.
// A Lease another driver holds and renews is refused with a *HeldError at
// once, unless its holder was a driver on this machine whose process is
// gone (killed): that one is taken over without waiting for it to expire.
// fn's context ends when the Lease is lost.
func Hold(ctx context.Context, c kubernetes.Interface, id string, t LeaseTiming, fn func(context.Context) error) error {
	t = t.complete()
	l := lock(c, id)
	rec, _, err := l.Get(ctx)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read Lease %s/%s: %w", LeaseNamespace, LeaseName, err)
	case rec.HolderIdentity != "" && rec.HolderIdentity != id:
		exp := rec.RenewTime.Add(time.Duration(rec.LeaseDurationSeconds) * time.Second)
		if time.Now().Before(exp) && !nodelock.DeadHere(identityKind, rec.HolderIdentity) {
			return &HeldError{Holder: rec.HolderIdentity, Expires: exp}
		}
		// Expired, or its holder is gone: free it, at the resourceVersion
		// read (a driver that took it in between makes this a conflict).
		// The elector would otherwise wait a whole Lease duration from the
		// moment it first saw the record, whatever its renew time says.
		now := metav1.NewTime(time.Now())
		free := resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1, AcquireTime: now, RenewTime: now, LeaderTransitions: rec.LeaderTransitions}
		if err := l.Update(ctx, free); err != nil {
			return fmt.Errorf("take over Lease %s/%s from %s (expired, or its process is gone): %w", LeaseNamespace, LeaseName, rec.HolderIdentity, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		result  error
		started bool
	)
	fnDone := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock(c, id), LeaseDuration: t.Duration, RenewDeadline: t.RenewDeadline, RetryPeriod: t.RetryPeriod,
		ReleaseOnCancel: true, Name: LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				defer close(fnDone)
				mu.Lock()
				if started || result != nil || lctx.Err() != nil { // given up already
					mu.Unlock()
					return
				}
				started = true
				mu.Unlock()
				err := fn(lctx)
				if err == nil && lctx.Err() != nil && ctx.Err() == nil {
					err = errors.New("lost the rollout's Lease")
				}
				mu.Lock()
				result = err
				mu.Unlock()
				cancel()
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	// Another driver that took the Lease at the same moment wins: give up
	// when this one has not led within a few attempts.
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(3*t.RetryPeriod + time.Second):
			mu.Lock()
			if !started {
				result = &HeldError{Holder: le.GetLeader(), Expires: time.Now().Add(t.Duration)}
				cancel()
			}
			mu.Unlock()
		}
	}()
	le.Run(ctx)
	mu.Lock()
	s := started
	mu.Unlock()
	if s {
		<-fnDone // the Lease may be lost while fn still winds down
	}
	mu.Lock()
	defer mu.Unlock()
	if result == nil && !s {
		return ctx.Err()
	}
	return result
}

// Elect runs fn each time this replica becomes the leader, until ctx ends
// (the controller: replicas wait for the Lease instead of being refused).
func Elect(ctx context.Context, c kubernetes.Interface, id string, t LeaseTiming, fn func(context.Context)) error {
	t = t.complete()
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock(c, id), LeaseDuration: t.Duration, RenewDeadline: t.RenewDeadline, RetryPeriod: t.RetryPeriod,
			ReleaseOnCancel: true, Name: LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: fn, OnStoppedLeading: func() {}},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
	}
	return ctx.Err()
}
