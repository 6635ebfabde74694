package phases

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubectl/pkg/drain"

	"github.com/unshim/unshim/pkg/lab/labtest"
)

// countCoreDiscovery counts the reads of GET /api/v1 (the core resources).
type countCoreDiscovery struct {
	rt http.RoundTripper
	n  *atomic.Int32
}

func (c countCoreDiscovery) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Path == "/api/v1" {
		c.n.Add(1)
	}
	return c.rt.RoundTrip(r)
}

// TestDrainDiscoveryReadOncePerApiserver runs the drain library's own check
// of the Eviction version (drain.CheckEvictionSupport, which each drain
// calls) through two switches' drain clients on the lab's apiserver: both
// get the apiserver's answer (policy/v1), with one read of its core
// resources between them; once the kept answer is older than its TTL it is
// read again.
func TestDrainDiscoveryReadOncePerApiserver(t *testing.T) {
	l := labtest.Require(t)
	rc, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int32
	client := func() drainClient {
		t.Helper()
		cfg := rest.CopyConfig(rc)
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countCoreDiscovery{rt: rt, n: &reads} })
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return drainClient{c, newBudgetGuard(c)}
	}
	coreResources.Lock()
	clear(coreResources.byHost)
	coreResources.Unlock()
	for i, c := range []drainClient{client(), client()} {
		gv, err := drain.CheckEvictionSupport(c)
		if err != nil {
			t.Fatal(err)
		}
		if gv != policyv1.SchemeGroupVersion {
			t.Errorf("drain %d: eviction version %v, want %v", i, gv, policyv1.SchemeGroupVersion)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("two drains read the core resources %d times, want 1", n)
	}
	coreResources.Lock()
	for h, k := range coreResources.byHost {
		k.at = k.at.Add(-evictionDiscoveryTTL - time.Second)
		coreResources.byHost[h] = k
	}
	coreResources.Unlock()
	if gv, err := drain.CheckEvictionSupport(client()); err != nil || gv != policyv1.SchemeGroupVersion {
		t.Errorf("after the TTL: %v, %v", gv, err)
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("after the TTL: %d reads in all, want 2", n)
	}
}
