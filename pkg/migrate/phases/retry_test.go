package phases

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

func TestTransient(t *testing.T) {
	gr := schema.GroupResource{Resource: "nodes"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("get node: %w", syscall.ECONNREFUSED), true},
		{"service unavailable", apierrors.NewServiceUnavailable("starting"), true},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), true},
		{"not found", apierrors.NewNotFound(gr, "n1"), false},
		{"forbidden", apierrors.NewForbidden(gr, "n1", errors.New("no")), false},
		{"aggregate of transient", utilerrors.NewAggregate([]error{syscall.ECONNREFUSED, apierrors.NewInternalError(errors.New("x"))}), true},
		{"aggregate with a real failure", utilerrors.NewAggregate([]error{syscall.ECONNREFUSED, apierrors.NewNotFound(gr, "n1")}), false},
		{"nil", nil, false},
		// as k8s.io/kubectl/pkg/drain reports them: wrapped with %v, the type lost
		{"drain's eviction error", utilerrors.NewAggregate([]error{fmt.Errorf("error when evicting pods/%q -n %q: %v", "web-1", "app",
			errors.New(`Get "https://127.0.0.1:6443/apis/policy/v1/namespaces/app/poddisruptionbudgets/web": dial tcp 127.0.0.1:6443: connect: connection refused`))}), true},
		{"drain's refusal", utilerrors.NewAggregate([]error{fmt.Errorf("error when evicting pods/%q -n %q: %v", "web-1", "app", errors.New("pods \"web-1\" is forbidden"))}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Transient(tt.err); got != tt.want {
				t.Errorf("Transient(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryAPI(t *testing.T) {
	calls := 0
	err := RetryAPI(context.Background(), 10*time.Second, func(context.Context) error {
		calls++
		if calls < 3 {
			return syscall.ECONNREFUSED
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("transient errors: %v after %d calls, want success after 3", err, calls)
	}
	calls = 0
	gr := schema.GroupResource{Resource: "nodes"}
	err = RetryAPI(context.Background(), 10*time.Second, func(context.Context) error {
		calls++
		return apierrors.NewNotFound(gr, "n1")
	})
	if !apierrors.IsNotFound(err) || calls != 1 {
		t.Errorf("a lasting error: %v after %d calls, want NotFound at once", err, calls)
	}
}

// TestRetryerSettles: a refusal (as from an apiserver that has just started
// and not yet loaded RBAC) is retried for a while, a lasting one not for ever.
func TestRetryerSettles(t *testing.T) {
	gr := schema.GroupResource{Resource: "nodes"}
	forbidden := apierrors.NewForbidden(gr, "n1", errors.New("RBAC: not yet"))
	var r Retryer
	if !r.Retry(forbidden) || !r.Retry(utilerrors.NewAggregate([]error{forbidden, syscall.ECONNREFUSED})) {
		t.Error("a fresh refusal is not retried")
	}
	r.firstRefusal = time.Now().Add(-2 * settleTime)
	if r.Retry(forbidden) {
		t.Error("a refusal older than settleTime is still retried")
	}
	if !r.Retry(syscall.ECONNREFUSED) {
		t.Error("a transient error after a lasting refusal is not retried")
	}
	drainRefusal := fmt.Errorf("error when evicting pods/%q -n %q: %v", "web-1", "app", errors.New(`pods "web-1" is forbidden: User "u" cannot create resource "pods/eviction"`))
	if !(&Retryer{}).Retry(utilerrors.NewAggregate([]error{drainRefusal})) {
		t.Error("a fresh refusal reported by the drain library is not retried")
	}
	if (&Retryer{}).Retry(apierrors.NewNotFound(gr, "n1")) {
		t.Error("NotFound is retried")
	}
}
