package phases

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
)

// drainData is the Data the drain's filters and the pod listing read: the
// node's name, the client and the settings.
type drainData struct {
	Data
	node string
	c    kubernetes.Interface
	s    Settings
}

func (d *drainData) Node() string                 { return d.node }
func (d *drainData) Client() kubernetes.Interface { return d.c }
func (d *drainData) Settings() *Settings          { return &d.s }
func (d *drainData) Logger() log.Logger           { return log.NoopLogger() }

// TestStaysThroughDrainMatchesTheDrainLibrary holds staysThroughDrain and
// toEvict (which save-images and the drain's re-check use instead of the
// drain library's GetPodsForDeletion, to spare its DaemonSet GETs) to what
// the library decides, on the lab's apiserver, for every kind of pod a node
// carries: a DaemonSet's, a static pod's mirror, a bare pod, a ReplicaSet's,
// a finished Job's; with and without --force.
func TestStaysThroughDrainMatchesTheDrainLibrary(t *testing.T) {
	ctx, c, ns, node := labNamespace(t, "drainfilter")
	t.Cleanup(func() { _ = c.AppsV1().DaemonSets(ns).Delete(context.Background(), "agent", metav1.DeleteOptions{}) })
	labels := map[string]string{"app": "agent"}
	ds, err := c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "agent:1"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	owner := func(kind, name string, uid string) []metav1.OwnerReference {
		api := "apps/v1"
		switch kind {
		case "Node":
			api = "v1"
		case "Job":
			api = "batch/v1"
		}
		return []metav1.OwnerReference{{APIVersion: api, Kind: kind, Name: name, UID: types.UID(uid), Controller: &yes}}
	}
	pods := []struct {
		name     string
		owners   []metav1.OwnerReference
		mirror   bool
		finished bool
	}{
		{name: "ds", owners: owner("DaemonSet", "agent", string(ds.UID))},
		{name: "static", owners: owner("Node", node, "0000"), mirror: true},
		{name: "bare"},
		{name: "web", owners: owner("ReplicaSet", "web-1", "1111")},
		{name: "job", owners: owner("Job", "once", "2222"), finished: true},
	}
	for _, p := range pods {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, OwnerReferences: p.owners},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "a", Image: p.name + ":1"}}}}
		if p.mirror {
			pod.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
		}
		created, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod %s: %v", p.name, err)
		}
		if p.finished {
			created.Status.Phase = corev1.PodSucceeded
			if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The drain library lists from the apiserver's watch cache
	// (drainClient): wait for it to hold the pods as written.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err == nil && len(list.Items) == len(pods) && slices.ContainsFunc(list.Items, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch cache does not hold the %d pods: %v", len(pods), err)
		}
	}
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%t", force), func(t *testing.T) {
			d := &drainData{node: node, c: c, s: Settings{Force: force}}
			list, errs := drainHelper(ctx, d).GetPodsForDeletion(node)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var library, ours []string
			for _, p := range list.Pods() {
				library = append(library, p.Name)
			}
			if err := eachPodOnNode(ctx, d, false, func(p *corev1.Pod) error {
				if !staysThroughDrain(p, force) {
					ours = append(ours, p.Name)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(library)
			slices.Sort(ours)
			if !slices.Equal(library, ours) {
				t.Errorf("the drain library evicts %v, staysThroughDrain lets go %v", library, ours)
			}
			if n, err := toEvict(ctx, d, ""); err != nil || n != len(library) {
				t.Errorf("toEvict: %d, %v; the drain library evicts %d", n, err, len(library))
			}
			want := []string{"job", "web"}
			if force {
				want = []string{"bare", "job", "web"}
			}
			if !slices.Equal(library, want) {
				t.Errorf("the drain library evicts %v, want %v (has it changed?)", library, want)
			}
		})
	}
}

// labNamespace gives a test a namespace of its own on the lab's apiserver
// and the name of a node no kubelet runs: its pods are bound there and
// written as a kubelet would. The namespace and its pods are gone at once
// when the test ends, even from a lab without controllers (no kubelet for
// the pods, no garbage collector, no namespace controller): other tests
// share the lab and its DaemonSets' health.
func labNamespace(t *testing.T, prefix string) (context.Context, kubernetes.Interface, string, string) {
	t.Helper()
	l := labtest.Require(t)
	rc, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	c := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	suffix := time.Now().Format("150405.000000")
	ns, node := prefix+"-"+suffix[:6]+suffix[7:], prefix+"-node-"+suffix
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg, zero := context.Background(), int64(0)
		_ = c.CoreV1().Pods(ns).DeleteCollection(bg, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = c.CoreV1().Namespaces().Delete(bg, ns, metav1.DeleteOptions{})
	})
	// The lab may run without controllers: the namespace's default
	// ServiceAccount, which admission wants, made here if they did not.
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return ctx, c, ns, node
}

// TestDrainRecheckReadsTheCacheAtItsEvictions drains a node of the lab's
// apiserver (a goroutine ends evicted pods as a kubelet would) and holds the
// re-check after it (toEvict) to its reads: the drain hands back the
// revision of the pod it evicted; the re-check lists the node's pods from
// the watch cache not older than that revision, without a limit (the cache
// serves that), and sees a pod bound after the drain's LIST and before its
// eviction (a scheduler that had not seen the cordon); a revision the cache
// cannot reach (set far ahead on the request here) makes the real
// apiserver answer "Too large resource version", which is not retried and
// sends the re-check to a quorum LIST, as no revision does; a drain with
// nothing to evict hands back the revision of its LIST, read at again.
func TestDrainRecheckReadsTheCacheAtItsEvictions(t *testing.T) {
	ctx, c, ns, node := labNamespace(t, "recheck")
	rc, err := labtest.Require(t).RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		lists []url.Values
		skew  bool // ask the cache for a revision far ahead
		// beforeEviction runs once, as the drain's first eviction goes out.
		beforeEviction func()
	)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/eviction") {
				mu.Lock()
				f := beforeEviction
				beforeEviction = nil
				mu.Unlock()
				if f != nil {
					f()
				}
			}
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/pods") && req.URL.Query().Get("fieldSelector") != "" {
				q := req.URL.Query()
				mu.Lock()
				if skew && q.Get("resourceVersionMatch") != "" {
					rv, err := strconv.ParseUint(q.Get("resourceVersion"), 10, 64)
					if err != nil {
						mu.Unlock()
						return nil, fmt.Errorf("resourceVersion %q: %w", q.Get("resourceVersion"), err)
					}
					q.Set("resourceVersion", strconv.FormatUint(rv+1_000_000, 10))
					req = req.Clone(req.Context())
					req.URL.RawQuery = q.Encode()
				}
				lists = append(lists, q)
				mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	taken := func() []url.Values {
		mu.Lock()
		defer mu.Unlock()
		out := lists
		lists = nil
		return out
	}
	// The node's "kubelet": an evicted pod ends 200 ms after it saw it
	// terminating (the drain library's first look, right after the
	// eviction, finds it still there).
	defer endEvicted(ctx, c, ns, 200*time.Millisecond, nil)()
	yes := true
	bind := func(name string) {
		t.Helper()
		if _, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: types.UID("6f1c1a52-0000-4000-8000-00000000000a"), Controller: &yes}}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "a", Image: "app:1"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	d := &drainData{node: node, c: kubernetes.NewForConfigOrDie(rc), s: Settings{DrainTimeout: time.Minute}}

	bind("web-1")
	// The drain lists from the cache: wait until it holds the pod.
	for deadline := time.Now().Add(10 * time.Second); ; {
		l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err == nil && len(l.Items) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache does not hold the pod: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Bound after the drain listed the node's pods, before it evicted: a
	// scheduler that had not seen the cordon. The eviction's revision
	// comes after this binding, so the re-check at it must see the pod.
	mu.Lock()
	beforeEviction = func() { bind("web-2") }
	mu.Unlock()
	rv, err := drainOnce(ctx, d)
	if err != nil || rv == "" {
		t.Fatalf("drain: evicted revision %q, %v", rv, err)
	}
	taken()
	if n, err := toEvict(ctx, d, rv); err != nil || n != 1 {
		t.Fatalf("re-check after the drain: %d to evict, %v; want web-2", n, err)
	}
	if got := taken(); len(got) != 1 || got[0].Get("resourceVersion") != rv ||
		got[0].Get("resourceVersionMatch") != string(metav1.ResourceVersionMatchNotOlderThan) || got[0].Get("limit") != "" {
		t.Errorf("the re-check should read the cache not older than %s, without a limit: %v", rv, got)
	}

	mu.Lock()
	skew = true
	mu.Unlock()
	start := time.Now()
	if n, err := toEvict(ctx, d, rv); err != nil || n != 1 {
		t.Fatalf("re-check from a cache that cannot catch up: %d, %v", n, err)
	}
	// The apiserver waits 3 s for its cache; client-go would retry that ten times.
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the re-check took %s: retried the cache's refusal", took)
	}
	if got := taken(); len(got) != 2 || got[1].Get("resourceVersion") != "" {
		t.Errorf("want the cache's refusal, then a quorum LIST; got %v", got)
	}
	if n, err := toEvict(ctx, d, ""); err != nil || n != 1 {
		t.Fatalf("re-check without a revision: %d, %v", n, err)
	}
	if got := taken(); len(got) != 1 || got[0].Get("resourceVersion") != "" {
		t.Errorf("a re-check without a revision: want a quorum LIST, got %v", got)
	}

	// A drain with nothing to evict hands back its LIST's revision, and the
	// re-check reads the cache at it.
	mu.Lock()
	skew = false
	mu.Unlock()
	if _, err := drainOnce(ctx, d); err != nil { // web-2 goes
		t.Fatal(err)
	}
	taken()
	listed, err := drainOnce(ctx, d)
	if err != nil || listed == "" {
		t.Fatalf("a drain with nothing to evict: revision %q, %v", listed, err)
	}
	if got := taken(); len(got) != 1 || got[0].Get("resourceVersion") != "0" {
		t.Fatalf("a drain with nothing to evict should make one LIST, from the cache: %v", got)
	}
	if n, err := toEvict(ctx, d, listed); err != nil || n != 0 {
		t.Fatalf("re-check after a drain with nothing to evict: %d, %v", n, err)
	}
	if got := taken(); len(got) != 1 || got[0].Get("resourceVersion") != listed || got[0].Get("resourceVersionMatch") == "" {
		t.Errorf("the re-check after a drain with nothing to evict should read the cache at %s: %v", listed, got)
	}
}

// endEvicted plays the kubelet of a test's node until the returned stop is
// called: a pod of the namespace being deleted ends after it first saw it
// so (unless keep says to leave it terminating).
func endEvicted(ctx context.Context, c kubernetes.Interface, ns string, after time.Duration, keep func(name string) bool) (stop func()) {
	kctx, stop := context.WithCancel(ctx)
	go func() {
		zero := int64(0)
		terminating := map[types.UID]time.Time{}
		for kctx.Err() == nil {
			if l, err := c.CoreV1().Pods(ns).List(kctx, metav1.ListOptions{}); err == nil {
				for _, p := range l.Items {
					if p.DeletionTimestamp == nil || (keep != nil && keep(p.Name)) {
						continue
					}
					if seen, ok := terminating[p.UID]; !ok {
						terminating[p.UID] = time.Now()
					} else if time.Since(seen) >= after {
						_ = c.CoreV1().Pods(ns).Delete(kctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return stop
}

// TestDrainWaitsForAnEvictedPodByWatch drains a node of the lab's apiserver
// whose "kubelet" ends an evicted pod 300 ms after it saw it terminating.
// The drain library looks for the pod right after its eviction and then
// every second; its read (podsForDrain.Get) watches the terminating pod
// instead of letting the library look again a second later: one GET of the
// pod, one WATCH of it from the revision read, and the drain is over. A pod
// that never ends is waited for no later than the drain's timeout: the
// drain fails at it, with the library's error.
func TestDrainWaitsForAnEvictedPodByWatch(t *testing.T) {
	ctx, c, ns, node := labNamespace(t, "drainwatch")
	rc, err := labtest.Require(t).RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu             sync.Mutex
		gets, watches  map[string]int
		watchedFromRVs []string
	)
	reset := func() {
		mu.Lock()
		gets, watches, watchedFromRVs = map[string]int{}, map[string]int{}, nil
		mu.Unlock()
	}
	reset()
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			q := req.URL.Query()
			mu.Lock()
			switch {
			case req.Method != http.MethodGet:
			case q.Get("watch") == "true" && strings.HasPrefix(q.Get("fieldSelector"), "metadata.name="):
				watches[strings.TrimPrefix(q.Get("fieldSelector"), "metadata.name=")]++
				watchedFromRVs = append(watchedFromRVs, q.Get("resourceVersion"))
			case strings.Contains(req.URL.Path, "/pods/"):
				gets[req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]]++
			}
			mu.Unlock()
			return rt.RoundTrip(req)
		})
	})
	defer endEvicted(ctx, c, ns, 300*time.Millisecond, func(name string) bool { return name == "stuck" })()
	yes := true
	bind := func(name string) {
		t.Helper()
		if _, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: types.UID("6f1c1a52-0000-4000-8000-00000000000b"), Controller: &yes}}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "a", Image: "app:1"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The drain lists from the cache: wait until it holds the pod.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if _, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{ResourceVersion: "0"}); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cache does not hold pod %s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	d := &drainData{node: node, c: kubernetes.NewForConfigOrDie(rc), s: Settings{DrainTimeout: time.Minute}}

	bind("web-1")
	reset()
	rv, err := drainOnce(ctx, d)
	if err != nil || rv == "" {
		t.Fatalf("drain: revision %q, %v", rv, err)
	}
	if _, err := c.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the drain ended before web-1 did: %v", err)
	}
	mu.Lock()
	if gets["web-1"] != 1 || watches["web-1"] != 1 || len(watchedFromRVs) != 1 || watchedFromRVs[0] == "" {
		t.Errorf("want one GET of web-1 (the library's first look) and one WATCH of it from the revision read; got %d GET(s), WATCHes from %q", gets["web-1"], watchedFromRVs)
	}
	mu.Unlock()

	// A pod that never ends: the drain fails at its timeout, not later.
	bind("stuck")
	d.s.DrainTimeout = 2 * time.Second
	start := time.Now()
	_, err = drainOnce(ctx, d)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("drain of a pod that never ends: %v; want its timeout, naming the pod", err)
	}
	// One wait of Get alone is up to goneWait (5 s).
	if took > d.s.DrainTimeout+2*time.Second {
		t.Errorf("the drain took %s with a timeout of %s: a wait for the pod outlived it", took, d.s.DrainTimeout)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
