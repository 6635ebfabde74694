package phases

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
)

// evictionDiscoveryTTL is how long the apiserver's list of core (v1)
// resources is kept for the drains of one process.
const evictionDiscoveryTTL = 10 * time.Minute

// The drain library asks discovery, before every drain, which version of
// the Eviction subresource the apiserver serves (drain.CheckEvictionSupport
// reads GET /api/v1: every core resource, a few tens of kilobytes). The
// answer is the apiserver's, not the node's: a process that drains a wave of
// nodes (a rollout with switches in its process) reads it once per
// apiserver and keeps it for evictionDiscoveryTTL (the policy/v1 Eviction is
// served from Kubernetes 1.22 and policy/v1beta1 until 1.25, so an
// apiserver upgraded meanwhile still takes the kept version).
var coreResources = struct {
	sync.Mutex
	byHost map[string]keptResources
}{byHost: map[string]keptResources{}}

type keptResources struct {
	at   time.Time
	list *metav1.APIResourceList
}

// evictionDiscovery is the discovery client the drain library gets.
type evictionDiscovery struct {
	discovery.DiscoveryInterfaces
}

// ServerResourcesForGroupVersion answers "v1" from what was read from the
// same apiserver within evictionDiscoveryTTL; anything else, and a client
// whose apiserver it cannot name, as discovery does.
func (d evictionDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	return d.ServerResourcesForGroupVersionWithContext(context.Background(), gv)
}

func (d evictionDiscovery) ServerResourcesForGroupVersionWithContext(ctx context.Context, gv string) (*metav1.APIResourceList, error) {
	read := func() (*metav1.APIResourceList, error) {
		return d.DiscoveryInterfaces.ServerResourcesForGroupVersionWithContext(ctx, gv)
	}
	rc := d.RESTClient()
	if gv != "v1" || rc == nil {
		return read()
	}
	u := rc.Get().URL()
	if u == nil || u.Host == "" {
		return read()
	}
	host := u.Scheme + "://" + u.Host
	coreResources.Lock()
	k, ok := coreResources.byHost[host]
	coreResources.Unlock()
	if ok && time.Since(k.at) < evictionDiscoveryTTL {
		return k.list.DeepCopy(), nil
	}
	list, err := read()
	if err != nil {
		return nil, err
	}
	coreResources.Lock()
	coreResources.byHost[host] = keptResources{at: time.Now(), list: list.DeepCopy()}
	coreResources.Unlock()
	return list, nil
}
