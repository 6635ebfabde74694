package phases

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Transient says whether err is an API error that a retry may clear: the
// apiserver unreachable, restarting, overloaded or timing out. Every error
// of an aggregate (as the drain library returns) must be transient.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			if !Transient(e) {
				return false
			}
		}
		return len(agg.Errors()) > 0
	}
	var ne net.Error
	var status apierrors.APIStatus
	switch {
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return true
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err):
		return true
	case errors.As(err, &ne):
		return true
	case errors.As(err, &status):
		return false // a typed answer of the apiserver, classified above
	}
	// k8s.io/kubectl/pkg/drain wraps the errors of an eviction and of the
	// wait for a pod's deletion with %v ("error when evicting pods/...: %v",
	// "error when waiting for pod ... to terminate: %v"), so their type is
	// lost: what is left to go by is the message of the network error.
	msg := err.Error()
	for _, m := range []string{"connection refused", "connection reset by peer", "i/o timeout", "TLS handshake timeout",
		"http2: server sent GOAWAY", "unexpected EOF", ": EOF", "the server is currently unable to handle the request"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// settleTime is how long a Forbidden or Unauthorized answer is retried: an
// apiserver that has just (re)started answers requests before its
// authorizer has loaded the RBAC objects, and forbids what it will allow a
// few seconds later. A lasting refusal still fails after this long.
const settleTime = time.Minute

// settling says whether err may come from an apiserver still loading its
// authorization (every error of an aggregate must).
func settling(err error) bool {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			if !settling(e) && !Transient(e) {
				return false
			}
		}
		return len(agg.Errors()) > 0
	}
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return true
	}
	// The drain library's errors carry only the message (see Transient).
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "is forbidden: ") || strings.Contains(msg, "Unauthorized")
}

// Retryer decides, error after error, whether an API call is worth
// another try: Transient errors always (within the caller's timeout),
// Forbidden and Unauthorized for settleTime after the first of them.
type Retryer struct{ firstRefusal time.Time }

// Retry says whether to try again after err.
func (r *Retryer) Retry(err error) bool {
	if Transient(err) {
		return true
	}
	if !settling(err) {
		return false
	}
	if r.firstRefusal.IsZero() {
		r.firstRefusal = time.Now()
	}
	return time.Since(r.firstRefusal) < settleTime
}

// RetryAPI calls f until it succeeds, fails with an error a Retryer gives
// up on, or timeout passes; it returns f's last error.
func RetryAPI(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	var last error
	var r Retryer
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		last = f(ctx)
		if last != nil && !r.Retry(last) {
			return false, last
		}
		return last == nil, nil
	})
	if last != nil {
		return last
	}
	return err
}
