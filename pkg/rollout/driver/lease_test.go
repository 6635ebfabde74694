package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func lease(holder string, renewed time.Time, secs int32) *coordinationv1.Lease {
	t := metav1.NewMicroTime(renewed)
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: LeaseNamespace, Name: LeaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &t, RenewTime: &t}}
}

func TestHold(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	deadHolder := fmt.Sprintf("unshim-rollout@%s/%d", host, dead.Process.Pid)
	for _, tc := range []struct {
		description string
		existing    *coordinationv1.Lease
		wantRun     bool
	}{
		{"no Lease: taken", nil, true},
		{"held and renewed by another driver: refused", lease("unshim-rollout@elsewhere/1", time.Now(), 15), false},
		{"held by a driver of this machine that is alive: refused", lease(fmt.Sprintf("unshim-rollout@%s/%d", host, os.Getppid()), time.Now(), 15), false},
		{"held by a killed driver of this machine: taken at once", lease(deadHolder, time.Now(), 15), true},
		{"expired: taken", lease("unshim-rollout@elsewhere/1", time.Now().Add(-time.Minute), 15), true},
		{"released (no holder): taken", lease("", time.Now(), 15), true},
	} {
		t.Run(tc.description, func(t *testing.T) {
			c := fake.NewClientset()
			if tc.existing != nil {
				if _, err := c.CoordinationV1().Leases(LeaseNamespace).Create(context.Background(), tc.existing, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			ran := false
			var holderDuring string
			err := Hold(context.Background(), c, "me", LeaseTiming{RetryPeriod: 100 * time.Millisecond}, func(ctx context.Context) error {
				ran = true
				l, err := c.CoordinationV1().Leases(LeaseNamespace).Get(ctx, LeaseName, metav1.GetOptions{})
				if err == nil && l.Spec.HolderIdentity != nil {
					holderDuring = *l.Spec.HolderIdentity
				}
				return nil
			})
			if ran != tc.wantRun {
				t.Fatalf("ran %t, err %v; want ran %t", ran, err, tc.wantRun)
			}
			if !tc.wantRun {
				var held *HeldError
				if !errors.As(err, &held) || held.Holder != *tc.existing.Spec.HolderIdentity {
					t.Errorf("refusal %v: want a HeldError naming %s", err, *tc.existing.Spec.HolderIdentity)
				}
				return
			}
			if err != nil || holderDuring != "me" {
				t.Errorf("err %v, holder while running %q", err, holderDuring)
			}
			l, err := c.CoordinationV1().Leases(LeaseNamespace).Get(context.Background(), LeaseName, metav1.GetOptions{})
			if err != nil || l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
				t.Errorf("after the run the Lease is held by %v (%v): want it released", l.Spec.HolderIdentity, err)
			}
		})
	}
}
