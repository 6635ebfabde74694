package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/rollout/driver"
	"github.com/unshim/unshim/pkg/rollout/store"
	"github.com/unshim/unshim/pkg/transport"
)

// BenchmarkRolloutKWOK runs a whole rollout (RuntimeMigration, driver and
// every node's switch in this process, as `unshim rollout run --via ssh`
// runs them) over 1,000 and 5,000 nodes that kwok keeps Ready on the lab's
// apiserver; each node's machine is a simulated Docker node (simnode_test.go)
// whose services take fixed times. It reports the API requests per node by
// verb (the driver's and the switches', evictions aside; the simulated
// kubelets' apart), the process's CPU time and peak heap and RSS, and the
// wall time against the ideal: the number of waves times one node's switch
// alone (the canary's).
//
// UNSHIM_BENCH_KWOK_NODES=1000,5000 picks the sizes; UNSHIM_BENCH_KWOK_MAXUNAVAILABLE
// the rollout's maxUnavailable (default 5%).
func BenchmarkRolloutKWOK(b *testing.B) {
	sizes := []int{1000, 5000}
	if s := os.Getenv("UNSHIM_BENCH_KWOK_NODES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				b.Fatalf("UNSHIM_BENCH_KWOK_NODES=%q: want sizes of at least 2, comma-separated", s)
			}
			sizes = append(sizes, n)
		}
	}
	maxUnavailable := intstr.FromString("5%")
	if s := os.Getenv("UNSHIM_BENCH_KWOK_MAXUNAVAILABLE"); s != "" {
		maxUnavailable = intstr.Parse(s)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			l := labtest.Require(b)
			for i := 0; i < b.N; i++ {
				rolloutKWOK(b, l, n, maxUnavailable)
			}
		})
	}
}

func rolloutKWOK(b *testing.B, l *lab.Lab, n int, maxUnavailable intstr.IntOrString) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	rc, err := l.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	// Setup goes through a client of its own, with room for its bursts.
	setup := rest.CopyConfig(rc)
	setup.QPS, setup.Burst = 500, 1000
	sc := kubernetes.NewForConfigOrDie(setup)
	sdyn := dynamic.NewForConfigOrDie(setup)
	installCRD(ctx, b, sdyn)
	startKWOK(ctx, b, l)
	podEvery := 1
	if n > 1000 {
		podEvery = 10
	}
	kwokNodes(ctx, b, sc, n, podEvery)

	// The unshim process's clients, counted by verb and resource: the
	// driver's (status, events, cordons, LISTs) and the switches' apart.
	// The rollout commands' client settings (driver.ClientQPS and
	// ClientBurst; each switch builds its own client from them), unless
	// UNSHIM_BENCH_KWOK_QPS says.
	qps := float32(driver.ClientQPS)
	if s := os.Getenv("UNSHIM_BENCH_KWOK_QPS"); s != "" {
		q, err := strconv.Atoi(s)
		if err != nil || q < 1 {
			b.Fatalf("UNSHIM_BENCH_KWOK_QPS=%q: want a positive number", s)
		}
		qps = float32(q)
	}
	drv, sw, kub := &apiCounter{counts: map[string]int{}}, &apiCounter{counts: map[string]int{}}, &apiCounter{counts: map[string]int{}}
	counted := func(c *apiCounter) *rest.Config {
		cfg := rest.CopyConfig(rc)
		cfg.QPS, cfg.Burst = qps, int(2*qps)
		// Protobuf on the wire, as the rollout commands' clients
		// (cmd.RESTConfig) and as a kubelet's (it asks for protobuf by
		// default: kubernetes/kubernetes#75602); the dynamic clients
		// (the RuntimeMigration) stay JSON, as custom resources must.
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingRT{rt, c} })
		return cfg
	}
	dcfg, scfg, kcfg := counted(drv), counted(sw), counted(kub)
	dc, ddyn := kubernetes.NewForConfigOrDie(dcfg), dynamic.NewForConfigOrDie(dcfg)
	swc := kubernetes.NewForConfigOrDie(scfg)
	// Each simulated kubelet has a client of its own, with a kubelet's
	// limits (kubeAPIQPS 50, kubeAPIBurst 100 since 1.27), as each real one
	// has: one shared client made a wave's 250 kubelets queue on it.
	kcfg.QPS, kcfg.Burst = 50, 100

	argv := newArgvLog()
	timingName := os.Getenv("UNSHIM_BENCH_KWOK_TIMING")
	if timingName == "" {
		timingName = "lab"
	}
	timing, ok := simTimings[timingName]
	if !ok {
		b.Fatalf("UNSHIM_BENCH_KWOK_TIMING=%q: want lab or fast", timingName)
	}
	var simMu sync.Mutex
	sims := map[string]*simNode{}
	connect := func(_ context.Context, node string) (transport.Transport, error) {
		simMu.Lock()
		defer simMu.Unlock()
		s, ok := sims[node]
		if !ok {
			s = newSimNode(node, kubernetes.NewForConfigOrDie(kcfg), timing, argv)
			sims[node] = s
		}
		return s, nil
	}
	// UNSHIM_BENCH_LOG: every switch's phases, when each switch was called
	// and returned, and the driver's progress lines, stamped to the
	// millisecond, in one file (where a wave's time goes).
	logger := log.NoopLogger()
	progress := &progressLog{}
	var out io.Writer = progress
	timed := &timedSwitcher{took: map[string]time.Duration{}, log: io.Discard}
	if p := os.Getenv("UNSHIM_BENCH_LOG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		logger = log.New(stamped{f}, 1)
		out = io.MultiWriter(progress, prefixed{"driver: ", stamped{f}})
		timed.log = stamped{f}
	}
	timed.inner = &driver.Direct{Connect: connect, Client: swc, RESTConfig: scfg, Logger: logger}

	name := fmt.Sprintf("kwok-%d", n)
	m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.RuntimeMigrationSpec{
		Nodes:          v1alpha1.NodeSelection{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{kwokLabel: "kwok"}}},
		TargetRuntime:  v1alpha1.TargetContainerd,
		MaxUnavailable: &maxUnavailable,
		Canary:         v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1},
		FailureBudget:  v1alpha1.FailureBudget{PerWave: 0, Total: 0},
		DrainTimeout:   &metav1.Duration{Duration: 2 * time.Minute}, VerifyTimeout: &metav1.Duration{Duration: 2 * time.Minute},
	}}
	st := &store.Store{Dynamic: sdyn, Kube: sc, Actor: "bench"}
	_ = st.Dynamic.Resource(v1alpha1.GroupVersionResource).Delete(ctx, name, metav1.DeleteOptions{})
	if _, err := st.Create(ctx, m); err != nil {
		b.Fatalf("create runtimemigration: %v", err)
	}
	d, err := driver.New(driver.Options{Name: name, Store: &store.Store{Dynamic: ddyn, Kube: dc, Actor: "bench"}, Client: dc,
		Switcher: timed, Holder: "bench", Out: out})
	if err != nil {
		b.Fatal(err)
	}

	// What the simulated cluster alone keeps the machine busy with (kwok
	// renewing every node's Lease and status, the apiserver and etcd
	// serving it): the share of the cores the rollout does not get.
	base0 := machineCPU(b)
	time.Sleep(10 * time.Second)
	baseBusy := machineCPU(b).busyOf(base0)

	// The driver's process: CPU time and peak RSS from getrusage (this
	// process also runs the simulated nodes, a small part), peak heap sampled.
	runtime.GC()
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	heap := sampleHeap()
	cpu0 := machineCPU(b)
	b.ResetTimer()
	start := time.Now()
	// A rollout that pauses (a failed canary, the failure budget) waits for
	// a resume that never comes here: it ends the run.
	rctx, stop := context.WithCancel(ctx)
	var paused string
	go func() {
		for rctx.Err() == nil {
			time.Sleep(2 * time.Second)
			if m, err := st.Get(rctx, name); err == nil && m.Status.Phase == v1alpha1.PhasePaused {
				paused = m.Status.Message
				stop()
			}
		}
	}()
	fmt.Fprintf(timed.log, "bench: driver.Run called\n")
	err = d.Run(rctx)
	wall := time.Since(start)
	fmt.Fprintf(timed.log, "bench: driver.Run returned after %s\n", wall.Round(time.Millisecond))
	stop()
	if paused != "" {
		b.Fatalf("rollout paused: %s\n%s\ncommands: %s", paused, progress.tail(20), argv)
	}
	b.StopTimer()
	peakHeap := heap()
	cpu1 := machineCPU(b)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if err != nil {
		b.Fatalf("driver: %v\n%s", err, progress.tail(20))
	}
	for _, s := range sims {
		if err := s.wait(); err != nil {
			b.Errorf("%v", err)
		}
	}
	if u := argv.unknowns(); len(u) > 0 {
		b.Errorf("commands the simulated node does not know: %s", strings.Join(u, "; "))
	}
	got, err := st.Get(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	c := got.Status.Counts
	if got.Status.Phase != v1alpha1.PhaseSucceeded || int(c.Done) != n {
		b.Fatalf("rollout %s: %s %q (%+v)\n%s", name, got.Status.Phase, got.Status.Message, c, progress.tail(20))
	}

	// The ideal: every wave as long as one switch alone (the canary's).
	canary := got.Status.Waves[0].Nodes[0]
	nodeTime := timed.took[canary]
	waves := len(got.Status.Waves)
	ideal := time.Duration(waves) * nodeTime
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond

	busy := cpu1.busyOf(cpu0)
	b.Logf("the machine's %d cores were %.0f%% busy during the rollout (everything on it: apiserver, etcd, kwok, the driver, the switches, the simulated nodes), %.0f%% in the 10 s before it (the simulated cluster alone: kwok's %d nodes' heartbeats, the apiserver, etcd)", runtime.NumCPU(), 100*busy, 100*baseBusy, n)
	b.Logf("client QPS %v (the driver and each switch; each simulated kubelet 50); simulated node services: %s (%s)", qps, timingName, timing.total())
	switching, longest, between := timed.waveTimes(got.Status.Waves)
	b.Logf("of the wall time: waves switching %s (their longest switches %s), the driver between waves %s, before the first and after the last %s",
		switching.Round(time.Millisecond), longest.Round(time.Millisecond), between.Round(time.Millisecond), (wall - switching - between).Round(time.Millisecond))
	b.Logf("%d nodes, maxUnavailable %s: %d waves; wall %s, ideal %s (%d waves × the canary's %s), ratio %.3f; median switch %s (floor of the simulated services %s)",
		n, maxUnavailable.String(), waves, wall.Round(time.Millisecond), ideal.Round(time.Millisecond), waves, nodeTime.Round(time.Millisecond),
		wall.Seconds()/ideal.Seconds(), timed.median().Round(time.Millisecond), timing.total())
	report := func(who string, a *apiCounter) (total, evictions int) {
		a.mu.Lock()
		defer a.mu.Unlock()
		var keys []string
		for k := range a.counts {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return a.counts[keys[i]] > a.counts[keys[j]] })
		var lines []string
		for _, k := range keys {
			if k == "create pods/eviction" {
				evictions += a.counts[k]
				continue
			}
			total += a.counts[k]
			lines = append(lines, fmt.Sprintf("  %-45s %8d %8.2f/node", k, a.counts[k], float64(a.counts[k])/float64(n)))
		}
		b.Logf("%s: %d requests, %.2f per node (evictions aside: %d)\n%s", who, total, float64(total)/float64(n), evictions, strings.Join(lines, "\n"))
		return total, evictions
	}
	dt, _ := report("driver", drv)
	st2, ev := report("switches", sw)
	kt, _ := report("simulated kubelets (what real kubelets would send)", kub)
	b.Logf("the slowest kinds of request (round trips, client-side rate limit aside):\n driver:\n%s\n switches:\n%s", drv.latencies(), sw.latencies())
	byVerb := map[string]int{}
	for _, a := range []*apiCounter{drv, sw} {
		a.mu.Lock()
		for k, v := range a.counts {
			if k != "create pods/eviction" {
				byVerb[strings.SplitN(k, " ", 2)[0]] += v
			}
		}
		a.mu.Unlock()
	}
	b.Logf("commands the switches ran on the simulated nodes: %s", argv)
	for verb, v := range byVerb {
		b.ReportMetric(float64(v)/float64(n), verb+"-req/node")
	}
	b.ReportMetric(float64(dt+st2)/float64(n), "api-req/node")
	b.ReportMetric(float64(dt)/float64(n), "driver-req/node")
	b.ReportMetric(float64(st2)/float64(n), "switch-req/node")
	b.ReportMetric(float64(ev)/float64(n), "evictions/node")
	b.ReportMetric(float64(kt)/float64(n), "kubelet-req/node")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(ru1.Maxrss)/1024, "peak-rss-MiB")
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(ideal.Seconds(), "ideal-s")
	b.ReportMetric(wall.Seconds()/ideal.Seconds(), "wall/ideal")
	b.ReportMetric(nodeTime.Seconds(), "node-s")
	b.ReportMetric(100*busy, "machine-busy-%")
	b.ReportMetric(100*baseBusy, "idle-busy-%")
	b.ReportMetric(float64(waves), "waves")
	if os.Getenv("UNSHIM_BENCH_KEEP") == "" {
		cleanupKWOK(ctx, b, sc)
		_ = st.Dynamic.Resource(v1alpha1.GroupVersionResource).Delete(ctx, name, metav1.DeleteOptions{})
	}
}

// timedSwitcher times each node's switch.
type timedSwitcher struct {
	inner driver.HookedSwitcher
	// log gets a line when a switch is called and when it returns.
	log   io.Writer
	mu    sync.Mutex
	took  map[string]time.Duration
	spans map[string][2]time.Time
}

var _ driver.HookedSwitcher = (*timedSwitcher)(nil)

func (t *timedSwitcher) Switch(ctx context.Context, node string, s phases.Settings) error {
	return t.SwitchWith(ctx, node, s, driver.Hooks{})
}

// SwitchWith times a switch from its call, or, for one started ahead of its
// wave, from its go-ahead: its checks ran while the wave before switched.
func (t *timedSwitcher) SwitchWith(ctx context.Context, node string, s phases.Settings, h driver.Hooks) error {
	start := time.Now()
	fmt.Fprintf(t.log, "%s: switch called\n", node)
	if hold := h.Hold; hold != nil {
		h.Hold = func(ctx context.Context) error {
			err := hold(ctx)
			if err == nil {
				start = time.Now()
				fmt.Fprintf(t.log, "%s: switch let go on\n", node)
			}
			return err
		}
	}
	err := t.inner.SwitchWith(ctx, node, s, h)
	end := time.Now()
	fmt.Fprintf(t.log, "%s: switch returned after %s\n", node, end.Sub(start).Round(time.Millisecond))
	t.mu.Lock()
	t.took[node] = end.Sub(start)
	if t.spans == nil {
		t.spans = map[string][2]time.Time{}
	}
	t.spans[node] = [2]time.Time{start, end}
	t.mu.Unlock()
	return err
}

// waveTimes splits the rollout's wall time: the waves' switching (first
// start to last end of each wave's switches) and the driver's time between
// them (cordons, releases, checks, status), summed over the waves; and the
// longest switch of the waves, summed (what the waves would take if every
// switch began at the wave's first start).
func (t *timedSwitcher) waveTimes(waves []v1alpha1.WaveStatus) (switching, longest, between time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var prevEnd time.Time
	for _, w := range waves {
		var first, last time.Time
		var long time.Duration
		for _, n := range w.Nodes {
			sp, ok := t.spans[n]
			if !ok {
				continue
			}
			if first.IsZero() || sp[0].Before(first) {
				first = sp[0]
			}
			if sp[1].After(last) {
				last = sp[1]
			}
			long = max(long, sp[1].Sub(sp[0]))
		}
		if first.IsZero() {
			continue
		}
		switching += last.Sub(first)
		longest += long
		if !prevEnd.IsZero() {
			between += first.Sub(prevEnd)
		}
		prevEnd = last
	}
	return switching, longest, between
}

func (t *timedSwitcher) median() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var xs []float64
	for _, d := range t.took {
		xs = append(xs, float64(d))
	}
	if len(xs) == 0 {
		return 0
	}
	return time.Duration(med(xs))
}

// cpuTimes are the machine's CPU times (all cores, in clock ticks) from
// the first line of /proc/stat.
type cpuTimes struct{ busy, total uint64 }

func machineCPU(b *testing.B) cpuTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var t cpuTimes
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat %q: %v", line, err)
		}
		if i >= 8 { // guest and guest_nice are counted in user already
			break
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// busyOf is the share of the machine's CPU time that was busy since then.
func (t cpuTimes) busyOf(then cpuTimes) float64 {
	if t.total <= then.total {
		return 0
	}
	return float64(t.busy-then.busy) / float64(t.total-then.total)
}

// sampleHeap samples the heap in use every 100ms until the returned
// function is called, which returns the peak.
func sampleHeap() func() uint64 {
	var peak uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); <-stopped; return peak }
}

// progressLog keeps the driver's progress lines.
// prefixed puts its prefix before every write.
type prefixed struct {
	prefix string
	w      io.Writer
}

func (p prefixed) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (p *progressLog) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-n):], "\n")
}

// installCRD installs the RuntimeMigration CRD (deploy/crd) unless the lab
// serves it already, and waits until it is served.
func installCRD(ctx context.Context, b *testing.B, dyn dynamic.Interface) {
	b.Helper()
	res := dyn.Resource(v1alpha1.GroupVersionResource)
	if _, err := res.List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
		return
	}
	data, err := os.ReadFile(filepath.Join("..", "deploy", "crd", "unshim.io_runtimemigrations.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	var obj map[string]any
	if err := sigsyaml.Unmarshal(data, &obj); err != nil {
		b.Fatal(err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := res.List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("the RuntimeMigration CRD is not served")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
