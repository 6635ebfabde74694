package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/nodeswitch"
)

// Which phases are waiting on something else, and on what.
var (
	drainPhases   = []string{"drain"}
	switchPhases  = []string{"stop-kubelet", "stop-docker", "install-containerd", "start-containerd", "import-images"}
	readyPhases   = []string{"start-kubelet", "verify"}
	waitingPhases = append(append(append([]string{}, drainPhases...), switchPhases...), readyPhases...)
)

// BenchmarkSwitchNode measures how long a lab node is unavailable (cordon to
// uncordon) when unshim switches it from Docker to containerd, split into
// drain, the runtime switch and the wait for the kubelet to be Ready; the
// rest (preflight, backups, writing files, annotations, the journal) is the
// tool's own overhead. The node runs two replicas of a Deployment under a
// PDB (minAvailable 1), a DaemonSet pod and a bare pod. Median of 3 switches,
// each undone by a rollback that is not measured.
func BenchmarkSwitchNode(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := labtest.UpForTest(ctx, b, "switchbench", lab.Options{Nodes: 2, Controllers: true})
	rc, err := l.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	n := l.Nodes[0]
	workloads(ctx, b, l)
	// UNSHIM_BENCH_LOG=FILE keeps the switches' detail (-v 1), each line
	// stamped with the time, to see where a phase waits.
	logger := log.NoopLogger()
	if p := os.Getenv("UNSHIM_BENCH_LOG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		logger = log.New(stamped{f}, 1)
	}
	// The switch's own API requests are counted, by verb and resource.
	counter := &apiCounter{counts: map[string]int{}}
	src := rest.CopyConfig(rc)
	src.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingRT{rt, counter} })
	sc, err := kubernetes.NewForConfig(src)
	if err != nil {
		b.Fatal(err)
	}
	var totals, drains, switches, readies, overheads, beyond, requests []float64
	for i := 0; i < b.N; i++ {
		for r := 0; r < 3; r++ {
			if r > 0 {
				webOnFirst(ctx, b, l)
			}
			counter.reset()
			o := nodeswitch.Options{Node: n.Name, Client: sc, RESTConfig: src, Transport: n.Transport(), Logger: logger,
				Settings: phases.Settings{Target: nodeplan.Containerd, DrainTimeout: 5 * time.Minute, VerifyTimeout: 5 * time.Minute}}
			if err := nodeswitch.Run(ctx, o, ""); err != nil {
				b.Fatal(err)
			}
			reqs, byKind := counter.snapshot()
			requests = append(requests, float64(reqs))
			fmt.Printf("switch %d: %d API requests (evictions included): %s\n", r+1, reqs, byKind)
			j, err := (&journal.Store{T: n.Transport()}).Load(ctx, n.Name)
			if err != nil || j == nil {
				b.Fatalf("journal: %v", err)
			}
			span := func(names []string) float64 {
				var s time.Duration
				for _, p := range j.Phases {
					for _, name := range names {
						if p.Name == name {
							s += p.Ended.Sub(p.Started)
						}
					}
				}
				return s.Seconds()
			}
			var cordon, uncordon journal.PhaseRecord
			for _, p := range j.Phases {
				switch p.Name {
				case "cordon":
					cordon = p
				case "uncordon":
					uncordon = p
				}
			}
			total := uncordon.Ended.Sub(cordon.Started).Seconds()
			totals, drains, switches, readies = append(totals, total), append(drains, span(drainPhases)), append(switches, span(switchPhases)), append(readies, span(readyPhases))
			overheads = append(overheads, total-span(waitingPhases))
			beyond = append(beyond, total-span(drainPhases))
			fmt.Printf("switch %d: unavailable %.1fs: drain %.1fs, runtime switch %.1fs, kubelet Ready %.1fs, unshim's own work %.1fs\n",
				r+1, total, span(drainPhases), span(switchPhases), span(readyPhases), total-span(waitingPhases))
			var per []string
			for _, p := range j.Phases {
				per = append(per, fmt.Sprintf("%s %.1fs", p.Name, p.Ended.Sub(p.Started).Seconds()))
			}
			fmt.Printf("  phases: %s\n", strings.Join(per, ", "))
			if err := nodeswitch.Rollback(ctx, o); err != nil {
				b.Fatal(err)
			}
			waitDocker(ctx, b, l, n.Name)
		}
	}
	b.ReportMetric(med(totals), "unavailable-s")
	b.ReportMetric(med(drains), "drain-s")
	// The goal: at most 10 s unavailable beyond the drain.
	b.ReportMetric(med(beyond), "beyond-drain-s")
	b.ReportMetric(med(switches), "runtime-switch-s")
	b.ReportMetric(med(readies), "kubelet-ready-s")
	b.ReportMetric(med(overheads), "unshim-overhead-s")
	b.ReportMetric(med(requests), "api-requests/switch")
}

// apiCounter counts requests by verb and resource, and keeps how long each
// took (the round trip as the client saw it, its rate limiter's wait aside).
type apiCounter struct {
	mu     sync.Mutex
	counts map[string]int
	took   map[string][]time.Duration
}

// latencies says, for each kind of request that took at least 50 ms at its
// slowest, its count, median, 99th percentile and maximum, slowest first.
func (a *apiCounter) latencies() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	type row struct {
		key           string
		med, p99, max time.Duration
		n             int
	}
	var rows []row
	for k, ds := range a.took {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		if s[len(s)-1] < 50*time.Millisecond {
			continue
		}
		rows = append(rows, row{k, s[len(s)/2], s[len(s)*99/100], s[len(s)-1], len(s)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].max > rows[j].max })
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("  %-45s %7d  median %7s  p99 %7s  max %7s", r.key, r.n,
			r.med.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.max.Round(time.Millisecond)))
	}
	return strings.Join(out, "\n")
}

func (a *apiCounter) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.counts = map[string]int{}
	a.took = nil
}

func (a *apiCounter) snapshot() (int, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	total := 0
	var keys []string
	for k, n := range a.counts {
		total += n
		keys = append(keys, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(keys)
	return total, strings.Join(keys, ", ")
}

type countingRT struct {
	rt http.RoundTripper
	c  *apiCounter
}

// RoundTrip counts the request as VERB RESOURCE[/SUBRESOURCE], the verb as
// the apiserver's audit log names it.
func (c *countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	// /api/v1/... or /apis/GROUP/VERSION/...; then [namespaces/NS/]RESOURCE[/NAME[/SUB]]
	i := 2
	if len(parts) > 0 && parts[0] == "apis" {
		i = 3
	}
	rest := parts[min(i, len(parts)):]
	if len(rest) >= 2 && rest[0] == "namespaces" && len(rest) > 2 {
		rest = rest[2:]
	}
	res, named := "", false
	if len(rest) > 0 {
		res = rest[0]
	}
	if len(rest) > 1 {
		named = true
	}
	if len(rest) > 2 {
		res += "/" + rest[2]
	}
	verb := map[string]string{"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[req.Method]
	if req.Method == "GET" {
		switch {
		case req.URL.Query().Get("watch") == "true":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	if verb == "list" && res != "" {
		// Where the apiserver serves it from: its watch cache
		// (resourceVersion=0, or not older than a given one) or etcd (a
		// quorum read, the costly one).
		switch rv := req.URL.Query().Get("resourceVersion"); {
		case rv == "":
			res += " (etcd)"
		case rv == "0":
			res += " (cache)"
		default:
			res += " (cache, not older)"
		}
	}
	start := time.Now()
	resp, err := c.rt.RoundTrip(req)
	took := time.Since(start)
	if os.Getenv("UNSHIM_BENCH_TRACE") != "" {
		pcs := make([]uintptr, 40)
		fr := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
		var at []string
		for {
			f, more := fr.Next()
			if strings.Contains(f.Function, "unshim/pkg/") {
				at = append(at, f.Function[strings.LastIndex(f.Function, "/")+1:])
			}
			if !more || len(at) == 3 {
				break
			}
		}
		// When it was sent, and how long its answer took (a watch: until
		// its headers).
		fmt.Fprintf(os.Stderr, "TRACE %s %5dms %s %s?%s %v\n", start.Format("15:04:05.000"), took.Milliseconds(), req.Method, req.URL.Path, req.URL.RawQuery, at)
	}
	key := verb + " " + res
	c.c.mu.Lock()
	c.c.counts[key]++
	if verb != "watch" {
		if c.c.took == nil {
			c.c.took = map[string][]time.Duration{}
		}
		c.c.took[key] = append(c.c.took[key], took)
	}
	c.c.mu.Unlock()
	return resp, err
}

func med(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// workloads puts two replicas under a PDB on the first node, a DaemonSet and a bare pod.
func workloads(ctx context.Context, b *testing.B, l *lab.Lab) {
	c, _ := l.Client()
	n1 := l.Nodes[0].Name
	ns := "default"
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	grace := int64(1)
	spec := corev1.PodSpec{AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: &grace,
		Containers: []corev1.Container{{Name: "main", Image: lab.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sh", "-c", "while true; do sleep 1; done"}}}}
	lbl := func(v string) map[string]string { return map[string]string{"app": v} }
	two := int32(2)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	_, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: &two,
		Selector: &metav1.LabelSelector{MatchLabels: lbl("web")}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl("web")}, Spec: spec}}}, metav1.CreateOptions{})
	must(err)
	one := intstr.FromInt32(1)
	_, err = c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: lbl("web")}}}, metav1.CreateOptions{})
	must(err)
	_, err = c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: lbl("agent")}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl("agent")}, Spec: spec}}}, metav1.CreateOptions{})
	must(err)
	solo := spec
	solo.NodeName = n1
	_, err = c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "solo"}, Spec: solo}, metav1.CreateOptions{})
	must(err)
	webOnFirst(ctx, b, l)
}

// webOnFirst puts both web replicas on the first node (so that every switch
// drains them, the second eviction waiting on the PDB), and waits until all
// five pods run.
func webOnFirst(ctx context.Context, b *testing.B, l *lab.Lab) {
	c, _ := l.Client()
	n1, n2 := l.Nodes[0].Name, l.Nodes[1].Name
	ns := "default"
	cordon := func(node string, v bool) {
		nd, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		nd.Spec.Unschedulable = v
		if _, err := c.CoreV1().Nodes().Update(ctx, nd, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	cordon(n2, true)
	defer cordon(n2, false)
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != n1 {
			if err := c.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		running, webOn1 := 0, 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
				if p.Labels["app"] == "web" && p.Spec.NodeName == n1 {
					webOn1++
				}
			}
		}
		if running == 5 && webOn1 == 2 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("workloads not in place: %d of 5 running, %d of 2 web pods on %s", running, webOn1, n1)
		}
		time.Sleep(time.Second)
	}
}

// waitDocker waits until the node is back on Docker, Ready and schedulable.
func waitDocker(ctx context.Context, b *testing.B, l *lab.Lab, node string) {
	c, _ := l.Client()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil && !n.Spec.Unschedulable && strings.HasPrefix(n.Status.NodeInfo.ContainerRuntimeVersion, "docker://") {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("node %s not back on Docker", node)
		}
		time.Sleep(time.Second)
	}
}

// stamped writes each line with the time it was written.
type stamped struct{ w io.Writer }

func (s stamped) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(s.w, "%s %s", time.Now().Format("15:04:05.000"), p); err != nil {
		return 0, err
	}
	return len(p), nil
}
