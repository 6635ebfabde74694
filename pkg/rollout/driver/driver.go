// Package driver owns the rollout driver: it drives one RuntimeMigration
// wave by wave, calling the node switch (pkg/nodeswitch) for each node. Its
// state lives only in the cluster: the RuntimeMigration's status (the plan,
// each node's state), the nodes' annotations (the switch's phase and result,
// the driver's cordon) and the journals on the nodes. A driver killed at any
// moment is replaced by another, which first settles the nodes that were
// switching, then goes on.
//
// A wave runs in named phases: go-ahead (abort, spec.paused, windows, the
// mixed-cluster guard), cordon (every node of the wave cordoned and tainted
// before any is drained), switch (the wave's nodes concurrently), then the
// checks (canary, failure budget, nodes elsewhere Ready, every DaemonSet
// Ready, soak time, the spec's gates). A check that fails pauses the
// rollout with the reason until `unshim rollout resume`.
//
// Undo (`unshim rollout undo`) is the same driver run backwards: the Done
// nodes, last wave first, each through the switch's on-demand rollback.
package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeswitch"
	"github.com/unshim/unshim/pkg/pin"
	"github.com/unshim/unshim/pkg/rollout/plan"
	"github.com/unshim/unshim/pkg/rollout/store"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

const fieldManager = "unshim-rollout"

// Reasons of the Paused condition. The first three clear by themselves
// (spec.paused cleared, a window opens, spec.allowLastDockerNodes set); the
// others are the driver's own pause, which only `unshim rollout resume`
// (the store.ResumedAtAnnotation stamp) lifts.
const (
	ReasonSpecPaused      = "Paused"
	ReasonOutsideWindow   = "OutsideWindow"
	ReasonLastDockerNodes = "LastDockerNodes"
	ReasonCanaryFailed    = "CanaryFailed"
	ReasonFailureBudget   = "FailureBudget"
	ReasonUnhealthy       = "Unhealthy"
	ReasonGateFailed      = "GateFailed"
)

// selfPause tells whether reason is one only a resume lifts.
func selfPause(reason string) bool {
	switch reason {
	case ReasonCanaryFailed, ReasonFailureBudget, ReasonUnhealthy, ReasonGateFailed:
		return true
	}
	return false
}

// Options are one driver's inputs.
type Options struct {
	// Name of the RuntimeMigration.
	Name string
	// Store reads the RuntimeMigration and records Events; its Dynamic
	// client writes the status.
	Store *store.Store
	// Client reads and changes nodes.
	Client kubernetes.Interface
	// Switcher switches one node.
	Switcher Switcher
	// Holder names this driver in status.driver (the Lease holder).
	Holder string
	// Out receives the progress lines, one per event; nil discards them.
	Out io.Writer
	// PageSize of the LISTs of nodes and DaemonSets; 0: kubelist's default.
	PageSize int64
	// Poll is how often the spec is read again while waiting (paused,
	// outside a window, soaking). Default 2s.
	Poll time.Duration
	// HTTP is the client of the HTTP and Prometheus gates.
	HTTP *http.Client
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Driver drives one RuntimeMigration.
type Driver struct {
	o Options

	mu sync.Mutex
	m  *v1alpha1.RuntimeMigration // the object last read (its spec rules)
	// readAt is when the read of m was sent.
	readAt time.Time
	st     v1alpha1.RuntimeMigrationStatus
	// resumedSeen is the resume stamp seen when this driver paused the
	// rollout; nil when it did not (another driver did, before it).
	resumedSeen *string
	// dirty says a node phase changed since the last status write.
	dirty bool
	// baseline are the nodes already NotReady when the wave started.
	baseline map[string]bool
	// listed are the nodes of the last LIST of every node (at listedAt):
	// the wave's health check lists them, and the next wave's guard and
	// cordon use that LIST instead of one each (at 5,000 nodes, ten pages
	// each) when it is a few seconds old at most (recentNodes).
	listed   []corev1.Node
	listedAt time.Time
	listedRV string // the LIST's revision
	outMu    sync.Mutex
	// writeMu makes status writes go one at a time.
	writeMu sync.Mutex
	// events are the Events being sent (send); sending holds a slot
	// of the eventsAtOnce each sends.
	events  sync.WaitGroup
	sending chan struct{}
	// ahead are the next wave's switches started ahead of it (ahead.go);
	// waveProg counts the current wave's switches not yet past their
	// share of its burst.
	ahead    map[string]*aheadSwitch
	waveProg *waveProgress
}

// New checks the options.
func New(o Options) (*Driver, error) {
	if o.Name == "" || o.Store == nil || o.Client == nil || o.Switcher == nil {
		return nil, errors.New("driver: Name, Store, Client and Switcher are required")
	}
	return newDriver(o), nil
}

// newDriver fills in the options' defaults; New has checked them.
func newDriver(o Options) *Driver {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Driver{o: o, sending: make(chan struct{}, eventsAtOnce)}
}

// errAborted ends the run: spec.abort was set.
var errAborted = errors.New("aborted")

// Run drives the rollout until it ends (Succeeded, Failed, Aborted) or ctx
// ends. While paused it waits. It returns nil when the rollout ended,
// whatever its phase: the phase says how it went.
func (d *Driver) Run(ctx context.Context) error {
	defer d.events.Wait()
	m, err := d.o.Store.Get(ctx, d.o.Name)
	if err != nil {
		return err
	}
	d.m = m
	if ended(m) {
		d.printf("runtimemigration %s already ended: %s %s", m.Name, m.Status.Phase, m.Status.Message)
		return nil
	}
	if err := m.Spec.Validate(); err != nil {
		return d.fail(ctx, fmt.Sprintf("invalid spec: %v", err))
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	if ended(d.m) {
		return nil
	}
	// Switches started ahead of a wave that never starts are held back
	// before the driver returns, whatever ends it.
	defer d.holdBack("the driver stopped")
	for i := range d.st.Waves {
		err := d.wave(ctx, i)
		if errors.Is(err, errAborted) {
			d.holdBack("the rollout was aborted")
			return d.finish(ctx, true)
		}
		if err != nil {
			return err
		}
	}
	return d.finish(ctx, false)
}

// start plans the rollout on its first run, or adopts the status a former
// driver left.
func (d *Driver) start(ctx context.Context) error {
	now := metav1.NewTime(d.o.Now())
	if len(d.m.Status.Nodes) > 0 || len(d.m.Status.Waves) > 0 || d.m.Status.StartTime != nil {
		// The status IS the plan: never plan again.
		d.st = *d.m.Status.DeepCopy()
		prev := d.st.Driver
		d.st.Driver = d.o.Holder
		if d.st.Phase == v1alpha1.PhasePending || d.st.Phase == "" {
			d.st.Phase = v1alpha1.PhaseRunning
		}
		d.printf("rollout %s: taking over from driver %q (%s done, phase %s)", d.m.Name, prev, d.st.Progress, d.st.Phase)
		d.event(ctx, corev1.EventTypeNormal, "DriverStarted", fmt.Sprintf("driver %s took over from %s", d.o.Holder, prev))
		return d.write(ctx)
	}
	nodes, _, err := d.listNodes(ctx, false)
	if err != nil {
		return err
	}
	var pn []plan.Node
	for i := range nodes {
		pn = append(pn, plan.NodeFrom(&nodes[i]))
	}
	p, err := plan.Make(pn, &d.m.Spec)
	if err != nil {
		return d.fail(ctx, fmt.Sprintf("plan: %v", err))
	}
	// Before anything changes: a status that outgrows one object stops
	// every write mid-way, a wave's nodes left cordoned.
	if err := p.CheckSize(d.m); err != nil {
		return d.fail(ctx, fmt.Sprintf("plan: %v", err))
	}
	// The runtime label is kept true on every node, not only the rollout's.
	if _, err := runtimelabel.Sync(ctx, d.o.Client, "", d.o.PageSize, false); err != nil {
		d.warn(err)
	}
	d.st = p.InitialStatus()
	d.st.Phase = v1alpha1.PhaseRunning
	d.st.StartTime = &now
	d.st.Driver = d.o.Holder
	d.setCondition(v1alpha1.ConditionProgressing, metav1.ConditionTrue, "Planned", fmt.Sprintf("%d nodes in %d waves", p.Nodes(), len(p.Waves)))
	d.printf("rollout %s: %d nodes to switch to %s in %d waves (%d skipped)", d.m.Name, p.Nodes(), d.m.Spec.TargetRuntime, len(p.Waves), len(p.Skipped))
	d.event(ctx, corev1.EventTypeNormal, "Started", fmt.Sprintf("driver %s: %d nodes in %d waves", d.o.Holder, p.Nodes(), len(p.Waves)))
	if err := d.write(ctx); err != nil {
		return err
	}
	if p.Nodes() == 0 {
		return d.finish(ctx, false)
	}
	return nil
}

// wave runs wave i's phases: go-ahead, cordon, switch, checks.
func (d *Driver) wave(ctx context.Context, i int) error {
	d.mu.Lock()
	w := d.st.Waves[i]
	d.mu.Unlock()
	if w.CompletionTime != nil {
		return nil
	}
	label := fmt.Sprintf("wave %d/%d (%s)", i+1, len(d.st.Waves), w.Kind)
	todo, inFlight := d.todo(w)
	if w.Kind == v1alpha1.WaveWindows {
		return d.skipWindows(ctx, i, label, todo)
	}
	if len(todo) > 0 {
		if !inFlight {
			if err := d.goAhead(ctx, w); err != nil {
				return err
			}
		}
		resumed, rv, err := d.cordon(ctx, i, label, todo)
		if err != nil {
			return err
		}
		d.switchNodes(ctx, i, label, todo, resumed, rv)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return d.checks(ctx, i, label)
}

// WindowsCause is why a Windows node is Skipped: the switch refuses it.
const WindowsCause = "runs Windows: the switch has only dry-run plans for Windows nodes (unshim migrate node NAME --dry-run prints the steps to run on it)"

// skipWindows ends a wave of Windows nodes: each Skipped with the reason,
// never cordoned, not counted against the failure budget.
func (d *Driver) skipWindows(ctx context.Context, i int, label string, todo []string) error {
	for _, n := range todo {
		d.settle(ctx, label, n, outcome{State: v1alpha1.NodeSkipped, Cause: WindowsCause}, nil)
	}
	return d.waveDone(ctx, i, label)
}

// todo lists the wave's nodes not yet ended; inFlight says some were
// switching already (a driver before this one started the wave).
func (d *Driver) todo(w v1alpha1.WaveStatus) (todo []string, inFlight bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range w.Nodes {
		ns := d.node(name)
		switch ns.State {
		case v1alpha1.NodePending, "":
			todo = append(todo, name)
		case v1alpha1.NodeSwitching:
			todo = append(todo, name)
			inFlight = true
		}
	}
	return todo, inFlight
}

// goAhead waits until a wave may start: not aborted, not paused, inside a
// window, and not switching the last Docker nodes pinned workloads need.
func (d *Driver) goAhead(ctx context.Context, w v1alpha1.WaveStatus) error {
	var (
		guard     string
		lastGuard time.Time
		guardGen  int64 = -1
	)
	for first := true; ; first = false {
		if !first || !d.readRecently() {
			if err := d.refresh(ctx); err != nil {
				return err
			}
		}
		spec := d.spec()
		if spec.Abort {
			return errAborted
		}
		reason, msg := "", ""
		in, err := InWindow(spec.Windows, d.o.Now())
		switch {
		case spec.Paused:
			reason, msg = ReasonSpecPaused, "spec.paused is set (unshim rollout pause); nodes under way have finished"
		case err != nil:
			return d.fail(ctx, err.Error())
		case !in:
			reason, msg = ReasonOutsideWindow, "outside every window of spec.windows: the next wave waits for one"
		default:
			// The guard's LISTs are made again when the spec changed, or
			// every 30s while it holds the wave back.
			if spec.AllowLastDockerNodes {
				guard = ""
			} else if gen := d.generation(); gen != guardGen || time.Since(lastGuard) > 30*time.Second {
				if guard, err = d.guard(ctx, w); err != nil {
					return err
				}
				lastGuard, guardGen = time.Now(), gen
			}
			if guard != "" {
				reason, msg = ReasonLastDockerNodes, guard
			}
		}
		if reason == "" {
			return d.running(ctx)
		}
		d.holdBack(msg)
		if err := d.pause(ctx, reason, msg); err != nil {
			return err
		}
		if err := d.sleep(ctx, d.o.Poll); err != nil {
			return err
		}
	}
}

func (d *Driver) generation() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m.Generation
}

// guard is the mixed-cluster guard: "" when the wave may start, else why
// not (the wave would leave no Docker node for workloads pinned to Docker).
func (d *Driver) guard(ctx context.Context, w v1alpha1.WaveStatus) (string, error) {
	if d.spec().AllowLastDockerNodes {
		return "", nil
	}
	nodes, err := d.recentNodes(ctx)
	if err != nil {
		return "", err
	}
	var all []plan.Node
	for i := range nodes {
		all = append(all, plan.NodeFrom(&nodes[i]))
	}
	inWave := map[string]bool{}
	for _, n := range w.Nodes {
		inWave[n] = true
	}
	if len(plan.DockerLeft(all, func(n string) bool { return inWave[n] })) > 0 {
		return "", nil
	}
	pinned, err := pin.Pinned(ctx, d.o.Store.Dynamic, d.o.PageSize)
	if err != nil {
		return "", fmt.Errorf("mixed-cluster guard: %w", err)
	}
	if len(pinned) == 0 {
		return "", nil
	}
	names := make([]string, 0, len(pinned))
	for _, p := range pinned {
		names = append(names, p.String())
	}
	return fmt.Sprintf("wave %d would switch the last Docker nodes, which %d pinned workloads need (%s): set spec.allowLastDockerNodes, or unshim unpin them",
		w.Index+1, len(pinned), strings.Join(names, ", ")), nil
}

// ClientQPS and ClientBurst are the client-side rate limit of a driver's
// client (rollout run, undo, controller). A wave of N nodes costs the driver
// about 4N requests, most at its start and end (cordon, uncordon, two
// Events): at the CLI's 50 a second a wave of 250 nodes waited many seconds
// on the client's own limiter. The apiserver's priority and fairness still
// applies.
const (
	ClientQPS   = 250
	ClientBurst = 500
)

// holdParallel is how many of a wave's nodes are cordoned and tainted at once:
// a wave of 50 in one round of updates (16 at once made four rounds, ~0.1 s
// between two waves at 1,000 nodes).
const holdParallel = 64

// cordon cordons and taints every node of the wave before any is drained,
// and records the wave's nodes Switching in one status write (not one per
// node: at a few thousand nodes each write carries every node's entry). It
// returns the nodes a former driver had left Switching: their switch is
// settled or resumed, not started afresh.
func (d *Driver) cordon(ctx context.Context, i int, label string, todo []string) (map[string]bool, string, error) {
	d.mu.Lock()
	if d.st.Waves[i].StartTime == nil {
		now := metav1.NewTime(d.o.Now())
		d.st.Waves[i].StartTime = &now
	}
	resumed := map[string]bool{}
	for _, n := range todo {
		resumed[n] = d.node(n).State == v1alpha1.NodeSwitching
	}
	d.mu.Unlock()
	// The LIST the last wave's health check or this wave's guard just
	// made, else a LIST now; not reused after this.
	nodes, err := d.recentNodes(ctx)
	if err != nil {
		return nil, "", err
	}
	rv := d.listedRV
	d.listed = nil
	d.baseline = notReadyIn(nodes)
	listed := map[string]*corev1.Node{}
	for i := range nodes {
		listed[nodes[i].Name] = &nodes[i]
	}
	// A few at once: one after another, a wave of 250 nodes spends
	// seconds on its cordons before its first switch.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(holdParallel)
	for _, n := range todo {
		g.Go(func() error { return hold(gctx, d.o.Client, n, !resumed[n], listed[n]) })
	}
	if err := g.Wait(); err != nil {
		return nil, "", err
	}
	// Switching before any switch starts: a driver that takes over finds
	// every node this one may have started, and settles it from the node's
	// result annotation or resumes its journal.
	d.mu.Lock()
	now := metav1.NewTime(d.o.Now())
	for _, n := range todo {
		if !resumed[n] {
			ns := d.node(n)
			ns.StartTime, ns.CompletionTime = &now, nil
			ns.Cause, ns.Blocking, ns.Phase, ns.FailedPhase = "", nil, "", ""
			ns.State = v1alpha1.NodeSwitching
		}
	}
	d.mu.Unlock()
	d.printf("%s: cordoned and tainted %s: %s", label, TaintKey, strings.Join(todo, ", "))
	d.event(ctx, corev1.EventTypeNormal, "WaveStarted", fmt.Sprintf("%s: %s", label, strings.Join(todo, ", ")))
	return resumed, rv, d.write(ctx)
}

// switchNodes switches the wave's nodes concurrently and records how each
// ended: each outcome goes into the status with the flusher's next write,
// and the rest with the wave's next write (its checks' flush, or the next
// wave's cordon), or at once when the driver is stopping (a driver that
// dies before reads each outcome back from the node's result annotation).
func (d *Driver) switchNodes(ctx context.Context, i int, label string, todo []string, resumed map[string]bool, rv string) {
	var wg sync.WaitGroup
	stopFlush := d.flusher(ctx)
	w := d.watchWave(ctx, label, todo, rv)
	// The switches started ahead of this wave go on; once every switch of
	// it is past its share of the wave's burst, the next wave's start.
	ahead := d.takeAhead()
	// The next wave's start is waited for with this wave's switches: the
	// checks that follow hold back what it started, should they pause.
	var starting sync.WaitGroup
	progress := &waveProgress{left: map[string]bool{}}
	d.mu.Lock()
	canary := d.st.Waves[i].Kind == v1alpha1.WaveCanary
	d.mu.Unlock()
	// A canary switches alone: its result (and its time, the measure of
	// one node's switch) owes nothing to work of the driver's beside it.
	if !canary {
		progress.fire = func() { starting.Go(func() { d.startAhead(ctx, i+1) }) }
	}
	for _, n := range todo {
		progress.left[n] = true
	}
	d.mu.Lock()
	d.waveProg = progress
	d.mu.Unlock()
	for _, n := range todo {
		a := ahead[n]
		delete(ahead, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.switchNode(ctx, label, n, resumed[n], a, w)
			progress.past(n)
		}()
	}
	d.holdBackThese(ahead, "not among the wave's nodes to switch when it started")
	wg.Wait()
	starting.Wait()
	d.mu.Lock()
	d.waveProg = nil
	d.mu.Unlock()
	w.stop()
	stopFlush()
	if ctx.Err() == nil {
		// The outcomes go with the next write: the wave's end, or its
		// checks' before they wait on anything (flush).
		return
	}
	// Written even when the driver is stopping: never on its own context.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	d.warn(d.write(wctx))
}

// flush writes the status if it changed since the last write.
func (d *Driver) flush(ctx context.Context) error {
	d.mu.Lock()
	dirty := d.dirty
	d.mu.Unlock()
	if !dirty {
		return nil
	}
	return d.write(ctx)
}

func (d *Driver) settings() phases.Settings {
	spec := d.spec()
	return phases.Settings{
		Target:        spec.TargetRuntime,
		DrainTimeout:  v1alpha1.DurationOr(spec.DrainTimeout, v1alpha1.DefaultDrainTimeout),
		VerifyTimeout: v1alpha1.DurationOr(spec.VerifyTimeout, v1alpha1.DefaultVerifyTimeout),
	}
}

// switchNode switches one node, or settles the switch a former driver
// started: a result already on the node is taken as it is; otherwise the
// switch runs again and resumes its journal.
func (d *Driver) switchNode(ctx context.Context, label, name string, resumed bool, a *aheadSwitch, w *waveWatch) {
	target := d.spec().TargetRuntime
	var (
		out  *outcome
		last *corev1.Node // the node as the phase watch last saw it
	)
	if resumed {
		n, err := d.o.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if r := n.Annotations[nodeswitch.ResultAnnotation]; r != "" {
				o := fromResult(r)
				if o.State != v1alpha1.NodeDone || onTarget(n, target) {
					out = &o
					d.printf("%s: %s: switch ended while no driver ran: %s", label, name, r)
				}
			}
		}
	}
	if out == nil {
		verb := "switching to " + target
		switch {
		case resumed:
			verb = "resuming its switch to " + target
		case a != nil:
			verb += " (started ahead, its checks done)"
		}
		d.printf("%s: %s: %s", label, name, verb)
		d.nodeEvent(ctx, name, corev1.EventTypeNormal, "Switching", fmt.Sprintf("runtimemigration %s: %s", d.o.Name, verb))
		var err error
		if a != nil {
			a.gate <- nil
			<-a.done
			err = a.err
		} else if hs, ok := d.o.Switcher.(HookedSwitcher); ok {
			err = hs.SwitchWith(ctx, name, d.settings(), Hooks{OnState: d.onState(name)})
		} else {
			err = d.o.Switcher.Switch(ctx, name, d.settings())
		}
		last = w.ended(name, time.Second)
		o := classify(err, ctx.Err() != nil)
		out = &o
	}
	d.settle(ctx, label, name, *out, last)
}

// settle records a node's outcome (in the status the next write carries:
// the caller's, at the end of the wave), uncordons and untaints it unless
// its switch stopped half way, and keeps its runtime label true.
func (d *Driver) settle(ctx context.Context, label, name string, o outcome, cur *corev1.Node) {
	// Recorded even when the driver is stopping: never on its own context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if !o.Keep {
		d.warn(release(ctx, d.o.Client, name, cur))
	}
	d.mu.Lock()
	ns := d.node(name)
	ns.State, ns.Cause, ns.Blocking, ns.FailedPhase = o.State, o.Cause, o.Blocking, o.Phase
	if o.State == v1alpha1.NodePending {
		ns.StartTime, ns.Phase, ns.FailedPhase = nil, "", ""
	} else {
		now := metav1.NewTime(d.o.Now())
		ns.CompletionTime = &now
		if o.State == v1alpha1.NodeDone {
			ns.Phase = ""
		}
	}
	d.mu.Unlock()
	typ, reason := corev1.EventTypeNormal, "Switched"
	line := "done"
	switch o.State {
	case v1alpha1.NodeBlocked:
		typ, reason = corev1.EventTypeWarning, "Blocked"
		line = "blocked: " + o.Cause
	case v1alpha1.NodeRolledBack:
		typ, reason = corev1.EventTypeWarning, "RolledBack"
		line = "rolled back: " + o.Cause
	case v1alpha1.NodeFailed:
		typ, reason = corev1.EventTypeWarning, "Failed"
		line = "failed: " + o.Cause
		if o.Keep {
			line += " (left cordoned: its switch did not roll back)"
		}
	case v1alpha1.NodePending:
		typ, reason = corev1.EventTypeWarning, "Interrupted"
		line = "interrupted, back to pending: " + o.Cause
	case v1alpha1.NodeSkipped:
		reason = "Skipped"
		line = "skipped: " + o.Cause
	}
	d.printf("%s: %s: %s", label, name, line)
	msg := fmt.Sprintf("runtimemigration %s: %s", d.o.Name, line)
	d.nodeEvent(ctx, name, typ, reason, msg)
	if o.State != v1alpha1.NodeDone {
		// A node that switched is named in its wave's WaveComplete Event:
		// one Event a wave, not one a node, on the RuntimeMigration.
		d.event(ctx, typ, "Node"+reason, name+": "+line)
	}
	d.mu.Lock()
	d.dirty = true
	d.mu.Unlock()
}

// checks runs the wave's checks once all its nodes ended: canary, failure
// budget, nodes elsewhere Ready, DaemonSets Ready, soak, gates. A check
// that fails pauses the rollout until it is resumed.
func (d *Driver) checks(ctx context.Context, i int, label string) error {
	d.mu.Lock()
	w := d.st.Waves[i]
	cond := meta.FindStatusCondition(d.st.Conditions, v1alpha1.ConditionPaused)
	d.mu.Unlock()
	if cond != nil && cond.Status == metav1.ConditionTrue && selfPause(cond.Reason) {
		// A former driver paused after this wave: wait for the resume.
		d.warn(d.flush(ctx))
		if err := d.awaitResume(ctx, cond); err != nil {
			return err
		}
		return d.waveDone(ctx, i, label)
	}
	if d.spec().Abort {
		return errAborted
	}
	spec := d.spec()
	failed, total := d.failures(w)
	var reason, msg string
	switch {
	case w.Kind == v1alpha1.WaveCanary && failed > 0:
		reason, msg = ReasonCanaryFailed, fmt.Sprintf("the canary failed (%s): the rollout stops; fix it, then unshim rollout resume", d.failedNames(w))
	case int32(failed) > spec.FailureBudget.PerWave:
		reason, msg = ReasonFailureBudget, fmt.Sprintf("%d nodes of wave %d failed (%s), over failureBudget.perWave %d", failed, i+1, d.failedNames(w), spec.FailureBudget.PerWave)
	case int32(total) > spec.FailureBudget.Total && int32(total) > d.accepted():
		reason, msg = ReasonFailureBudget, fmt.Sprintf("%d nodes failed in all (%s), over failureBudget.total %d", total, d.failedNames(v1alpha1.WaveStatus{Nodes: d.allNames()}), spec.FailureBudget.Total)
	}
	if reason == "" && i < len(d.st.Waves)-1 {
		// The next wave's go-ahead reads the object: read now, alongside
		// the health check's LISTs (a failed read is made again there).
		read := make(chan struct{})
		go func() {
			defer close(read)
			_ = d.refresh(ctx)
		}()
		err := d.healthy(ctx, w, label)
		<-read
		if err != nil {
			reason, msg = ReasonUnhealthy, err.Error()
		}
	}
	if reason == "" && i < len(d.st.Waves)-1 {
		if soak := v1alpha1.DurationOr(spec.SoakTime, 0); soak > 0 {
			d.printf("%s: soaking %s", label, soak)
			d.warn(d.flush(ctx))
			if err := d.soak(ctx, soak); err != nil {
				return err
			}
			if err := d.healthy(ctx, w, label); err != nil {
				reason, msg = ReasonUnhealthy, "after the soak: "+err.Error()
			}
		}
	}
	if reason == "" && len(spec.Gates) > 0 && i < len(d.st.Waves)-1 {
		d.printf("%s: checking %d gates", label, len(spec.Gates))
		d.warn(d.flush(ctx))
		if err := Gates(ctx, spec.Gates, d.o.HTTP); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			reason, msg = ReasonGateFailed, err.Error()
		}
	}
	if reason != "" {
		d.holdBack(msg)
		if err := d.pause(ctx, reason, msg); err != nil {
			return err
		}
		d.mu.Lock()
		cond = meta.FindStatusCondition(d.st.Conditions, v1alpha1.ConditionPaused)
		d.mu.Unlock()
		if err := d.awaitResume(ctx, cond); err != nil {
			return err
		}
	}
	return d.waveDone(ctx, i, label)
}

func (d *Driver) waveDone(ctx context.Context, i int, label string) error {
	d.mu.Lock()
	now := metav1.NewTime(d.o.Now())
	d.st.Waves[i].CompletionTime = &now
	var switched []string
	for _, n := range d.st.Waves[i].Nodes {
		if d.node(n).State == v1alpha1.NodeDone {
			switched = append(switched, n)
		}
	}
	d.mu.Unlock()
	d.printf("%s: complete (%s done)", label, d.progress())
	msg := label + " complete"
	if len(switched) > 0 {
		// An Event's message is kept short (the events.k8s.io note holds
		// 1 kB): the first names, and how many more.
		names := switched
		if len(names) > 20 {
			names = append(names[:20:20], fmt.Sprintf("and %d more", len(switched)-20))
		}
		msg += fmt.Sprintf(": %d switched: %s", len(switched), strings.Join(names, ", "))
	}
	d.event(ctx, corev1.EventTypeNormal, "WaveComplete", msg)
	// Written with the next wave's cordon (or a pause, or the end): a
	// driver that takes over before that runs this wave's checks again.
	d.mu.Lock()
	d.dirty = true
	d.mu.Unlock()
	return nil
}

// healthy waits, up to the verify timeout, for every node outside the wave
// that was Ready when it started to be Ready, and every DaemonSet to have
// as many pods ready as it wants.
func (d *Driver) healthy(ctx context.Context, w v1alpha1.WaveStatus, label string) error {
	inWave := map[string]bool{}
	for _, n := range w.Nodes {
		inWave[n] = true
	}
	deadline := d.o.Now().Add(v1alpha1.DurationOr(d.spec().VerifyTimeout, v1alpha1.DefaultVerifyTimeout))
	for {
		err := d.healthOnce(ctx, inWave)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.o.Now().After(deadline) {
			return err
		}
		d.warn(d.flush(ctx))
		if err := d.sleep(ctx, d.o.Poll); err != nil {
			return err
		}
	}
}

// healthOnce lists every node and every DaemonSet, both at once (they sit
// between two waves, where every round trip counts).
func (d *Driver) healthOnce(ctx context.Context, inWave map[string]bool) error {
	var (
		nr    map[string]bool
		short []string
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		nr, err = d.notReady(gctx)
		return err
	})
	g.Go(func() error {
		return kubelist.Each(gctx, "daemonsets", d.o.PageSize, metav1.ListOptions{},
			func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
				return d.o.Client.AppsV1().DaemonSets(metav1.NamespaceAll).List(ctx, opts)
			},
			func(obj runtime.Object) error {
				ds := obj.(*appsv1.DaemonSet)
				s := ds.Status
				if s.ObservedGeneration < ds.Generation || s.NumberReady < s.DesiredNumberScheduled {
					short = append(short, fmt.Sprintf("%s/%s (%d of %d ready)", ds.Namespace, ds.Name, s.NumberReady, s.DesiredNumberScheduled))
				}
				return nil
			})
	})
	if err := g.Wait(); err != nil {
		return err
	}
	var gone []string
	for n := range nr {
		if !inWave[n] && !d.baseline[n] {
			gone = append(gone, n)
		}
	}
	if len(gone) > 0 {
		sort.Strings(gone)
		return fmt.Errorf("nodes outside the wave went NotReady: %s", strings.Join(gone, ", "))
	}
	if len(short) > 0 {
		return fmt.Errorf("DaemonSets not ready: %s", strings.Join(short, ", "))
	}
	return nil
}

// notReady lists the nodes not Ready now; the LIST is kept for the next
// wave's guard and cordon (recentNodes).
func (d *Driver) notReady(ctx context.Context) (map[string]bool, error) {
	nodes, err := d.listAndKeep(ctx)
	if err != nil {
		return nil, err
	}
	return notReadyIn(nodes), nil
}

// recentNodes is the last LIST of every node when it was made at most
// recentList ago (the health check, the guard and the cordon follow each
// other between two waves), else a new LIST, kept in turn.
func (d *Driver) recentNodes(ctx context.Context) ([]corev1.Node, error) {
	if d.listed != nil && time.Since(d.listedAt) <= recentList {
		return d.listed, nil
	}
	return d.listAndKeep(ctx)
}

// listAndKeep lists every node from the apiserver's watch cache and keeps
// the LIST, its time and revision.
func (d *Driver) listAndKeep(ctx context.Context) ([]corev1.Node, error) {
	nodes, rv, err := d.listNodes(ctx, true)
	if err != nil {
		return nil, err
	}
	d.listed, d.listedAt, d.listedRV = nodes, time.Now(), rv
	return nodes, nil
}

// recentList is how old a LIST of every node may be to stand for a new one
// between two waves: what it is read for there (which nodes still run
// Docker, which are NotReady before the wave) changes in seconds only by
// the driver's own hand.
const recentList = 5 * time.Second

func notReadyIn(nodes []corev1.Node) map[string]bool {
	out := map[string]bool{}
	for i := range nodes {
		if !ready(&nodes[i]) {
			out[nodes[i].Name] = true
		}
	}
	return out
}

// listNodes lists every node, and returns the LIST's revision (its first
// page's: every page is read at that revision).
//
// fromCache reads the apiserver's watch cache (resourceVersion "0"), as
// between two waves: the health check, the guard and the cordon read which
// nodes are Ready and what they run, which the cache holds milliseconds
// behind etcd (a node goes NotReady 40 s after its kubelet stops), and the
// wave's watch starts from the cache's revision. Before 1.31
// (ConsistentListFromCache) a paged LIST reads every node out of etcd,
// page after page: at 5,000 nodes ten round trips of ~125 ms between two
// waves, in the benchmark. The cache ignores the page size before 1.33
// (all nodes in one response); the driver keeps them all anyway. The plan's
// LIST reads etcd.
func (d *Driver) listNodes(ctx context.Context, fromCache bool) ([]corev1.Node, string, error) {
	var (
		out []corev1.Node
		rv  string
	)
	var opts metav1.ListOptions
	if fromCache {
		opts.ResourceVersion = "0"
	}
	err := kubelist.Each(ctx, "nodes", d.o.PageSize, opts,
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			l, err := d.o.Client.CoreV1().Nodes().List(ctx, opts)
			if err == nil && rv == "" {
				rv = l.ResourceVersion
			}
			return l, err
		},
		func(obj runtime.Object) error {
			out = append(out, *obj.(*corev1.Node))
			return nil
		})
	return out, rv, err
}

// failures counts the wave's and the whole rollout's Failed and RolledBack
// nodes.
func (d *Driver) failures(w v1alpha1.WaveStatus) (inWave, total int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := map[string]bool{}
	for _, n := range w.Nodes {
		in[n] = true
	}
	for _, n := range d.st.Nodes {
		if n.State == v1alpha1.NodeFailed || n.State == v1alpha1.NodeRolledBack {
			total++
			if in[n.Name] {
				inWave++
			}
		}
	}
	return inWave, total
}

// accepted is how many failures an operator resumed past.
func (d *Driver) accepted() int32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.AcceptedFailures
}

func (d *Driver) failedNames(w v1alpha1.WaveStatus) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, name := range w.Nodes {
		n := d.node(name)
		if n.State == v1alpha1.NodeFailed || n.State == v1alpha1.NodeRolledBack {
			out = append(out, name+": "+n.Cause)
		}
	}
	return strings.Join(out, "; ")
}

func (d *Driver) allNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.st.Nodes))
	for _, n := range d.st.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// pause sets phase Paused with the reason (once: not again while the same
// reason holds).
func (d *Driver) pause(ctx context.Context, reason, msg string) error {
	d.mu.Lock()
	c := meta.FindStatusCondition(d.st.Conditions, v1alpha1.ConditionPaused)
	same := c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason && c.Message == msg && d.st.Phase == v1alpha1.PhasePaused
	if same {
		d.mu.Unlock()
		return nil
	}
	d.st.Phase, d.st.Message = v1alpha1.PhasePaused, msg
	d.setCondition(v1alpha1.ConditionPaused, metav1.ConditionTrue, reason, msg)
	d.setCondition(v1alpha1.ConditionProgressing, metav1.ConditionFalse, reason, "paused")
	seen := d.m.Annotations[store.ResumedAtAnnotation]
	d.resumedSeen = &seen
	d.mu.Unlock()
	d.printf("rollout %s paused (%s): %s", d.o.Name, reason, msg)
	typ := corev1.EventTypeNormal
	if selfPause(reason) || reason == ReasonLastDockerNodes {
		typ = corev1.EventTypeWarning
	}
	d.event(ctx, typ, reason, msg)
	return d.write(ctx)
}

// running clears a pause.
func (d *Driver) running(ctx context.Context) error {
	d.mu.Lock()
	if d.st.Phase == v1alpha1.PhaseRunning {
		d.mu.Unlock()
		return nil
	}
	was := d.st.Message
	d.st.Phase, d.st.Message = v1alpha1.PhaseRunning, ""
	d.setCondition(v1alpha1.ConditionPaused, metav1.ConditionFalse, "Resumed", "resumed after: "+was)
	d.setCondition(v1alpha1.ConditionProgressing, metav1.ConditionTrue, "Resumed", "switching nodes")
	d.mu.Unlock()
	d.printf("rollout %s running", d.o.Name)
	return d.write(ctx)
}

// awaitResume waits for `unshim rollout resume` (a resume stamp newer than
// the pause) or an abort.
func (d *Driver) awaitResume(ctx context.Context, cond *metav1.Condition) error {
	for {
		if err := d.refresh(ctx); err != nil {
			return err
		}
		if d.spec().Abort {
			return errAborted
		}
		d.mu.Lock()
		stamp := d.m.Annotations[store.ResumedAtAnnotation]
		seen := d.resumedSeen
		d.mu.Unlock()
		if resumedAfter(stamp, seen, cond) && !d.spec().Paused {
			// Resumed past the failures so far: the total budget pauses
			// again only on a new one.
			_, total := d.failures(v1alpha1.WaveStatus{})
			d.mu.Lock()
			d.st.AcceptedFailures = int32(total)
			d.mu.Unlock()
			d.event(ctx, corev1.EventTypeNormal, "Resumed", "resumed after: "+cond.Message)
			return d.running(ctx)
		}
		if err := d.sleep(ctx, d.o.Poll); err != nil {
			return err
		}
	}
}

// resumedAfter tells whether the resume stamp is newer than the pause: a
// stamp other than the one seen when this driver paused, or, when another
// driver paused (seen is nil), one later than the Paused condition's time
// (kept to the second: a later second).
func resumedAfter(stamp string, seen *string, cond *metav1.Condition) bool {
	if stamp == "" {
		return false
	}
	if seen != nil || cond == nil {
		return seen == nil || stamp != *seen
	}
	t, err := time.Parse(time.RFC3339Nano, stamp)
	return err == nil && !t.Before(cond.LastTransitionTime.Time.Add(time.Second))
}

// soak waits d, reading the spec every Poll: an abort ends it.
func (d *Driver) soak(ctx context.Context, dur time.Duration) error {
	end := d.o.Now().Add(dur)
	for d.o.Now().Before(end) {
		if err := d.sleep(ctx, min(d.o.Poll, end.Sub(d.o.Now()))); err != nil {
			return err
		}
		if err := d.refresh(ctx); err != nil {
			return err
		}
		if d.spec().Abort {
			return errAborted
		}
	}
	return nil
}

// finish ends the rollout: Aborted; Failed when a node failed or rolled
// back; Completed when none did but some were blocked (they still run
// Docker); else Succeeded. Blocked nodes are named in the message and in
// the Blocked condition.
func (d *Driver) finish(ctx context.Context, aborted bool) error {
	d.mu.Lock()
	d.st.Recount()
	c := d.st.Counts
	now := metav1.NewTime(d.o.Now())
	d.st.CompletionTime = &now
	var blocked []string
	for _, n := range d.st.Nodes {
		if n.State == v1alpha1.NodeBlocked {
			blocked = append(blocked, n.Name)
		}
	}
	switch {
	case aborted:
		d.st.Phase = v1alpha1.PhaseAborted
		d.st.Message = fmt.Sprintf("aborted (spec.abort): %d of %d nodes switched", c.Done, c.Total)
	case c.Failed+c.RolledBack > 0:
		d.st.Phase = v1alpha1.PhaseFailed
		d.st.Message = fmt.Sprintf("%d of %d nodes switched; %d failed, %d rolled back", c.Done, c.Total, c.Failed, c.RolledBack)
	case len(blocked) > 0:
		d.st.Phase = v1alpha1.PhaseCompleted
		d.st.Message = fmt.Sprintf("%d of %d nodes switched", c.Done, c.Total)
	default:
		d.st.Phase = v1alpha1.PhaseSucceeded
		d.st.Message = fmt.Sprintf("%d of %d nodes switched", c.Done, c.Total)
	}
	if c.Skipped > int32(len(d.st.Skipped)) {
		d.st.Message += fmt.Sprintf("; %d skipped", c.Skipped-int32(len(d.st.Skipped)))
	}
	if len(blocked) > 0 {
		b := fmt.Sprintf("blocked by PodDisruptionBudgets: %s", strings.Join(blocked, ", "))
		d.st.Message += "; " + b
		d.setCondition(v1alpha1.ConditionBlocked, metav1.ConditionTrue, "DrainBlocked", b+": they still run "+strings.Join(fromRuntimes(d.st.Nodes, blocked), ", "))
	} else {
		d.setCondition(v1alpha1.ConditionBlocked, metav1.ConditionFalse, "NoneBlocked", "no node was blocked")
	}
	d.setCondition(v1alpha1.ConditionComplete, metav1.ConditionTrue, d.st.Phase, d.st.Message)
	d.setCondition(v1alpha1.ConditionProgressing, metav1.ConditionFalse, d.st.Phase, d.st.Message)
	if p := meta.FindStatusCondition(d.st.Conditions, v1alpha1.ConditionPaused); p != nil && p.Status == metav1.ConditionTrue {
		d.setCondition(v1alpha1.ConditionPaused, metav1.ConditionFalse, d.st.Phase, "ended")
	}
	phase, msg := d.st.Phase, d.st.Message
	d.mu.Unlock()
	d.printf("rollout %s %s: %s", d.o.Name, strings.ToLower(phase), msg)
	typ := corev1.EventTypeNormal
	if phase != v1alpha1.PhaseSucceeded {
		typ = corev1.EventTypeWarning
	}
	d.event(ctx, typ, phase, msg)
	return d.write(ctx)
}

// fromRuntimes lists the distinct runtimes the named nodes were planned from.
func fromRuntimes(nodes []v1alpha1.NodeStatus, names []string) []string {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range nodes {
		r := n.FromRuntime
		if r == "" {
			r = "docker"
		}
		if want[n.Name] && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// fail ends the rollout Failed before any node was touched (a spec or plan
// the driver cannot follow), and returns the reason as an error.
func (d *Driver) fail(ctx context.Context, msg string) error {
	d.mu.Lock()
	if d.st.Phase == "" {
		d.st = *d.m.Status.DeepCopy()
	}
	d.st.Phase, d.st.Message = v1alpha1.PhaseFailed, msg
	d.st.Driver = d.o.Holder
	d.setCondition(v1alpha1.ConditionComplete, metav1.ConditionTrue, v1alpha1.PhaseFailed, msg)
	d.mu.Unlock()
	d.event(ctx, corev1.EventTypeWarning, v1alpha1.PhaseFailed, msg)
	if err := d.write(ctx); err != nil {
		return fmt.Errorf("runtimemigration %s: %s (and %w)", d.o.Name, msg, err)
	}
	return fmt.Errorf("runtimemigration %s: %s", d.o.Name, msg)
}

// node returns the status entry of name; d.mu is held.
func (d *Driver) node(name string) *v1alpha1.NodeStatus {
	for i := range d.st.Nodes {
		if d.st.Nodes[i].Name == name {
			return &d.st.Nodes[i]
		}
	}
	// Never: waves and nodes come from one plan.
	d.st.Nodes = append(d.st.Nodes, v1alpha1.NodeStatus{Name: name, State: v1alpha1.NodePending})
	return &d.st.Nodes[len(d.st.Nodes)-1]
}

// setCondition sets a condition; d.mu is held.
func (d *Driver) setCondition(typ string, s metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&d.st.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg,
		ObservedGeneration: d.m.Generation, LastTransitionTime: metav1.NewTime(d.o.Now())})
}

func (d *Driver) spec() v1alpha1.RuntimeMigrationSpec {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m.Spec
}

func (d *Driver) progress() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Recount()
	return d.st.Progress
}

// refresh reads the object again (the spec may have changed).
func (d *Driver) refresh(ctx context.Context) error {
	at := time.Now()
	m, err := d.o.Store.Get(ctx, d.o.Name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("runtimemigration %s was deleted: %w", d.o.Name, err)
		}
		return err
	}
	d.mu.Lock()
	d.m, d.readAt = m, at
	d.mu.Unlock()
	return nil
}

// recentRead is how old the read of the object may be for a wave's
// go-ahead to take it instead of reading it again: the last wave's health
// check reads it alongside its LISTs (a round trip less between two waves,
// where every one counts).
const recentRead = time.Second

// readRecently says the object was read within recentRead.
func (d *Driver) readRecently() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.readAt.IsZero() && time.Since(d.readAt) <= recentRead
}

// write writes the status through the status subresource. The driver is
// its only writer: on a conflict (the spec changed) it reads the object
// again and writes the same status over it. Writes go one at a time (the
// flusher's and the wave's); the status is copied under d.mu and sent
// without it, so switches ending and the phase watch do not wait on a
// write, which takes a few hundred milliseconds at a thousand nodes.
func (d *Driver) write(ctx context.Context) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.mu.Lock()
	d.dirty = false
	d.st.Recount()
	st := d.st.DeepCopy()
	base := d.m
	d.mu.Unlock()
	res := d.o.Store.Dynamic.Resource(v1alpha1.GroupVersionResource)
	var last error
	for attempt := 0; attempt < 10; attempt++ {
		if attempt > 0 {
			m, err := d.o.Store.Get(ctx, d.o.Name)
			if err != nil {
				last = err
				if ctx.Err() != nil {
					break
				}
				time.Sleep(time.Second)
				continue
			}
			base = m
			d.adopt(m)
		}
		st.ObservedGeneration = base.Generation
		// The object as last read, with this status (ToUnstructured copies
		// it before it changes anything): neither its old status, every
		// node's entry, nor this one copied again.
		m := &v1alpha1.RuntimeMigration{TypeMeta: base.TypeMeta, ObjectMeta: base.ObjectMeta, Spec: base.Spec, Status: *st}
		u, err := v1alpha1.ToUnstructured(m)
		if err != nil {
			return err
		}
		out, err := res.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: fieldManager})
		if err == nil {
			if nm, err := v1alpha1.FromUnstructured(out); err == nil {
				d.adopt(nm)
			}
			return nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		if !apierrors.IsConflict(err) {
			time.Sleep(time.Second)
		}
	}
	return fmt.Errorf("write the status of runtimemigration %s: %w", d.o.Name, last)
}

// adopt keeps m as the object last read, unless a read made meanwhile (a
// refresh while a write was under way) saw a newer spec.
func (d *Driver) adopt(m *v1alpha1.RuntimeMigration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || m.Generation >= d.m.Generation {
		d.m = m
	}
}

// flusher writes the status every few seconds while a wave runs, when the
// nodes' phases changed.
func (d *Driver) flusher(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d.mu.Lock()
				dirty := d.dirty
				d.mu.Unlock()
				if dirty {
					// A write the wave's end cut short is not worth a
					// warning: the wave's next write carries it all.
					if err := d.write(ctx); err != nil && ctx.Err() == nil {
						d.warn(err)
					}
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (d *Driver) sleep(ctx context.Context, dur time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(dur):
		return nil
	}
}

// event records an Event on the RuntimeMigration, and nodeEvent one on a
// Node, without waiting for it: a wave's switches would otherwise each wait
// on a POST before starting and before the wave ends (at a wave's start,
// 50 POSTs at once). Run and Undo wait for the Events sent before they
// return, even when the driver is stopping.
func (d *Driver) event(ctx context.Context, typ, reason, msg string) {
	d.mu.Lock()
	ref := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: d.m.Name, UID: d.m.UID, ResourceVersion: d.m.ResourceVersion}}
	d.mu.Unlock()
	d.send(ctx, func(ctx context.Context) error { return d.o.Store.Event(ctx, ref, typ, reason, msg) })
}

func (d *Driver) nodeEvent(ctx context.Context, node, typ, reason, msg string) {
	d.send(ctx, func(ctx context.Context) error { return d.o.Store.NodeEvent(ctx, node, typ, reason, msg) })
}

// eventTimeout bounds the sending of one Event.
const eventTimeout = 30 * time.Second

// eventsAtOnce is how many Events are sent at once: a wave's start has one
// per node to send, and fifty POSTs at once queue in front of the
// switches' own first requests on the apiserver.
const eventsAtOnce = 4

func (d *Driver) send(ctx context.Context, f func(context.Context) error) {
	d.events.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
		defer cancel()
		select {
		case d.sending <- struct{}{}:
			defer func() { <-d.sending }()
		case <-ctx.Done():
			d.warn(fmt.Errorf("event not sent: %w", ctx.Err()))
			return
		}
		d.warn(f(ctx))
	})
}

func (d *Driver) warn(err error) {
	if err != nil {
		d.printf("warning: %v", err)
	}
}

// printf writes one progress line.
func (d *Driver) printf(format string, a ...any) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Fprintf(d.o.Out, "%s %s\n", d.o.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func ended(m *v1alpha1.RuntimeMigration) bool { return m.Ended() }
