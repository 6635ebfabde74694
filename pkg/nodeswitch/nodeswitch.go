// Package nodeswitch switches one node's container runtime: it takes the
// node's lock, works out the plan, and runs the named phases of
// pkg/migrate/phases with the journal on the node, mirroring the current
// phase into a Node annotation. It also undoes a switch on demand. It knows
// nothing of cobra or of how the transport was reached.
package nodeswitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/nodelock"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/transport"
)

// ResultAnnotation records how the last run on the node ended: "succeeded",
// "rolled-back: ERROR" or "failed: ERROR" (for a caller that cannot see the
// run, as when it runs in a systemd unit handed off from a pod).
const ResultAnnotation = inventory.SwitchResultAnnotation

// PhaseAnnotation mirrors the journal's current phase on the Node
// ("PHASE/STATE", e.g. "drain/running"), for `unshim nodes` and operators.
const PhaseAnnotation = inventory.SwitchPhaseAnnotation

// Phases returns the switch's phases, in order: one list for both targets
// (phases.All), each phase's RunIf choosing whether it runs.
func Phases(target string) ([]migrate.Phase, error) {
	if target != nodeplan.Containerd && target != nodeplan.CRIDockerd {
		return nil, fmt.Errorf("unknown target %q: want %s or %s", target, nodeplan.Containerd, nodeplan.CRIDockerd)
	}
	return phases.All(), nil
}

// PhaseNames lists the phases a switch to target runs.
func PhaseNames(target string) []string { return phases.Names(target) }

// Options are one switch's inputs.
type Options struct {
	Node       string
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	Transport  transport.Transport
	Settings   phases.Settings
	Logger     log.Logger
	// NoRollback leaves a failed run resumable instead of undoing it.
	NoRollback bool
	// ContainerdVersion overrides what `containerd --version` says.
	ContainerdVersion string
	// Holder names this run in the node's lock.
	Holder string
	// LockTTL is how long the lock outlives a run that died (default 2m).
	LockTTL time.Duration
	// AfterPhase is handed to the runner (tests kill runs with it).
	AfterPhase func(name string)
	// SkipPhases are phases not to run (--skip-phases).
	SkipPhases []string
	// Hold, if set, is waited on before the first phase that changes
	// anything (the cordon), once the phases before it (preflight through
	// save-images: checks, backups, the image archive) are done; the node's
	// lock is held meanwhile. An error ends the switch there, rolled back,
	// with an error that matches migrate.ErrHeldBack, and the node keeps no
	// trace of it in its annotations (the phase states are not mirrored
	// before the go-ahead). After the go-ahead the phase states are written
	// without waiting for the first write (the one that clears the last
	// result): whoever holds the switch clears that result first (a
	// rollout, with its wave's cordon). A rollout runs a wave's switches
	// this far during the wave before.
	Hold func(ctx context.Context) error
	// OnState, if set, is told each phase state the journal records.
	OnState func(phase, state string)
}

// HoldBefore is the phase Options.Hold is waited on before: the first that
// changes anything the node runs or serves.
const HoldBefore = phases.CordonPhase

// run is the phases.Data of one switch.
type run struct {
	o    *Options
	j    *journal.Journal
	st   *journal.Store
	plan *nodeplan.Plan
	root string
	// cleanup removes a copy of the node's files, if one was made.
	cleanup func()
	dry     bool
	stngs   phases.Settings
	// mirror writes the phase states into the node's annotation.
	mirror *phaseMirror
	reads  phases.Reads
}

var _ phases.Data = (*run)(nil)

func (r *run) Node() string                   { return r.o.Node }
func (r *run) Journal() *journal.Journal      { return r.j }
func (r *run) Store() *journal.Store          { return r.st }
func (r *run) Transport() transport.Transport { return r.o.Transport }
func (r *run) DryRun() bool                   { return r.dry }
func (r *run) Client() kubernetes.Interface   { return r.o.Client }
func (r *run) RESTConfig() *rest.Config       { return r.o.RESTConfig }
func (r *run) Plan() *nodeplan.Plan           { return r.plan }
func (r *run) FilesRoot() string              { return r.root }
func (r *run) Settings() *phases.Settings     { return &r.stngs }
func (r *run) Logger() log.Logger             { return r.o.Logger }
func (r *run) Reads() *phases.Reads           { return &r.reads }
func (r *run) runner(ps []migrate.Phase) *migrate.Runner {
	m := r.phaseMirror()
	return &migrate.Runner{Phases: ps, Logger: r.o.Logger, NoRollback: r.o.NoRollback, AfterPhase: r.o.AfterPhase, Skip: r.o.SkipPhases,
		Hold: r.hold(m), HoldBefore: HoldBefore,
		OnState: func(_ context.Context, phase, state string) {
			m.set(phase, state)
			if r.o.OnState != nil {
				r.o.OnState(phase, state)
			}
		}}
}

// hold is the runner's Hold: Options.Hold, with the phase mirror held
// until the go-ahead (nil when there is no Options.Hold).
func (r *run) hold(m *phaseMirror) func(context.Context) error {
	if r.o.Hold == nil {
		return nil
	}
	m.hold()
	return func(ctx context.Context) error {
		if err := r.o.Hold(ctx); err != nil {
			return err
		}
		// Whoever held the switch may have changed the node meanwhile (a
		// rollout cordons its wave): the cordon, which records whether the
		// node was schedulable, reads it again.
		r.reads.SetNode(nil)
		m.release()
		return nil
	}
}

func (r *run) phaseMirror() *phaseMirror {
	if r.mirror == nil {
		r.mirror = newPhaseMirror(r.o.Client, r.o.Node, r.o.Logger)
	}
	return r.mirror
}

func (r *run) close() {
	if r.cleanup != nil {
		r.cleanup()
	}
}

// NotDockerError says the node does not run Docker and has no switch in progress.
type NotDockerError struct{ Node, Runtime string }

func (e *NotDockerError) Error() string {
	return fmt.Sprintf("node %s runs %s, not Docker, and has no unfinished switch: nothing to do", e.Node, e.Runtime)
}

// prepare reads the node, the journal and the plan.
func prepare(ctx context.Context, o *Options, dry bool) (*run, error) {
	if o.Logger == nil {
		o.Logger = log.NoopLogger()
	}
	node, err := o.Client.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", o.Node, err)
	}
	if node.Status.NodeInfo.OperatingSystem == "windows" {
		return nil, fmt.Errorf("node %s runs Windows: only --dry-run plans exist for Windows nodes", o.Node)
	}
	kv, err := version.ParseGeneric(node.Status.NodeInfo.KubeletVersion)
	if err != nil {
		return nil, fmt.Errorf("node %s kubelet version: %w", o.Node, err)
	}
	if err := checkMachine(ctx, o.Transport, node); err != nil {
		return nil, err
	}
	r := &run{o: o, dry: dry, stngs: o.Settings, st: &journal.Store{T: o.Transport}}
	r.reads.SetNode(node)
	r.stngs.KubeletVersion = kv
	if r.j, err = r.st.Load(ctx, o.Node); err != nil {
		return nil, err
	}
	if r.j != nil && (r.j.Finished || r.j.RolledBack) {
		r.j = nil // a past run: start afresh
	}
	if r.j != nil && r.j.Waiting {
		// A run that waited for its go-ahead and never had it (its
		// rollout's driver died): it changed nothing, and its checks are
		// old. Start afresh.
		o.Logger.V(0).Infof("the switch of %s started %s waited for its go-ahead and changed nothing: starting afresh", o.Node, r.j.Started.Format(time.RFC3339))
		r.j = nil
	}
	if r.j != nil && r.j.Target != o.Settings.Target {
		return nil, fmt.Errorf("node %s has an unfinished switch to %s: resume it with --to %s, or undo it with `unshim node rollback %s`", o.Node, r.j.Target, r.j.Target, o.Node)
	}
	if r.j == nil && inventory.RuntimeName(node) != inventory.RuntimeDocker {
		return nil, &NotDockerError{Node: o.Node, Runtime: node.Status.NodeInfo.ContainerRuntimeVersion}
	}
	if r.j == nil {
		r.j = journal.New(o.Node, o.Settings.Target)
	} else {
		o.Logger.V(0).Infof("resuming the switch of %s started %s", o.Node, r.j.Started.Format(time.RFC3339))
	}
	cv, err := containerdVersion(ctx, o)
	if err != nil {
		return nil, err
	}
	// The node's files: its root when it is visible here, else a copy (SSH).
	files, err := nodefiles.Open(ctx, o.Transport, o.Node)
	if err != nil {
		return nil, err
	}
	r.root, r.cleanup = files.Root, files.Close
	if len(r.j.Plan) > 0 {
		// A resumed run goes on with the plan of its first run: the node's
		// files may already be converted, and a plan worked out from them
		// would have nothing left to change.
		if r.plan, err = keptPlan(r.j); err != nil {
			r.close()
			return nil, err
		}
		return r, nil
	}
	r.plan, err = nodeplan.Build(nodeplan.Input{FS: files.FS, Target: o.Settings.Target, KubeletVersion: kv,
		ContainerdVersion: cv, CRISocket: node.Annotations[inventory.CRISocketAnnotation]})
	if err != nil {
		r.close()
		return nil, fmt.Errorf("plan the switch of %s: %w", o.Node, err)
	}
	if r.j.Plan, err = json.Marshal(r.plan); err != nil {
		r.close()
		return nil, fmt.Errorf("keep the plan of %s: %w", o.Node, err)
	}
	return r, nil
}

func containerdVersion(ctx context.Context, o *Options) (*version.Version, error) {
	if o.ContainerdVersion != "" {
		return version.ParseGeneric(o.ContainerdVersion)
	}
	out, err := o.Transport.Run(ctx, "containerd", "--version")
	if err != nil {
		// Not installed yet: the distribution's package is 1.x or 2.x; a
		// version 2 config is read by both.
		return version.MustParseGeneric("1.6"), nil
	}
	return nodefiles.ParseVersionOutput(string(out))
}

// PlanStep is one phase of a dry run.
type PlanStep = nodeplan.PhaseDryRun

// DryRun returns what a switch would do, phase by phase, changing nothing.
func DryRun(ctx context.Context, o Options) ([]PlanStep, *nodeplan.Plan, error) {
	r, err := prepare(ctx, &o, true)
	if err != nil {
		return nil, nil, err
	}
	defer r.close()
	ps, err := Phases(o.Settings.Target)
	if err != nil {
		return nil, nil, err
	}
	lines, err := r.runner(ps).Plan(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	var out []PlanStep
	for _, p := range ps {
		if !p.Applies(r) || slices.Contains(o.SkipPhases, p.Name) {
			continue
		}
		step := PlanStep{Phase: p.Name, Short: p.Short, Done: r.j.State(p.Name) == journal.Done, Lines: lines[p.Name]}
		if !step.Done {
			before := len(r.j.Steps)
			r.j.SetCurrent(p.Name)
			if err := p.Run(ctx, r); err != nil {
				step.Lines = append(step.Lines, "would fail now: "+err.Error())
			}
			step.Steps = append([]journal.Step(nil), r.j.Steps[before:]...)
		}
		out = append(out, step)
	}
	return out, r.plan, nil
}

// Run switches the node (or resumes its unfinished switch), holding its
// lock. only, when set, runs that one phase.
func Run(ctx context.Context, o Options, only string) error {
	ps, err := Phases(o.Settings.Target)
	if err != nil {
		return err
	}
	if only != "" && !slices.Contains(PhaseNames(o.Settings.Target), only) {
		return fmt.Errorf("no phase %q; phases: %s", only, strings.Join(PhaseNames(o.Settings.Target), ", "))
	}
	if o.Logger == nil {
		o.Logger = log.NoopLogger()
	}
	// The lock is taken while the switch reads the node and plans (both
	// wait on the apiserver; at a rollout's wave, on fifty other switches'
	// requests too). Nothing is changed before both are done; a run that
	// cannot go on gives the lock back at once.
	type locked struct {
		unlock func()
		err    error
	}
	lc := make(chan locked, 1)
	lo := o // lock reads its own copy: prepare fills in o
	go func() {
		unlock, err := lock(ctx, &lo)
		lc <- locked{unlock, err}
	}()
	r, err := prepare(ctx, &o, false)
	l := <-lc
	if err != nil {
		if l.err == nil {
			l.unlock()
		}
		return err
	}
	defer r.close()
	if l.err != nil {
		return l.err
	}
	unlock := sync.OnceFunc(l.unlock)
	defer unlock()
	if err := r.st.Save(ctx, r.j); err != nil {
		return err
	}
	for _, n := range r.plan.Notes {
		o.Logger.V(0).Infof("note: %s", n)
	}
	runner := r.runner(ps)
	if only != "" {
		err := runner.RunPhase(ctx, r, only)
		cctx, cancel := migrate.RollbackContext(ctx, time.Minute)
		defer cancel()
		if aerr := r.mirror.close(cctx, nil); aerr != nil {
			o.Logger.Warnf("record phase on node %s: %v", o.Node, aerr)
		}
		return err
	}
	// The last run's result goes with the first phase state.
	r.mirror.also(map[string]*string{ResultAnnotation: nil})
	err = runner.Run(ctx, r)
	// The outcome is recorded even when the run was interrupted: never on
	// the run's own (then cancelled) context.
	ctx, cancel := migrate.RollbackContext(ctx, time.Minute)
	defer cancel()
	result := "succeeded"
	final := map[string]*string{ResultAnnotation: &result}
	var pe *migrate.PhaseError
	switch {
	case err == nil:
		o.Logger.V(0).Infof("node %s now runs on %s", o.Node, o.Settings.Target)
		final[PhaseAnnotation] = nil // no switch in progress
	case errors.As(err, &pe) && pe.RolledBack && errors.Is(err, migrate.ErrHeldBack):
		// Never started, as far as the node's annotations go: the mirror
		// was held, nothing was written.
		r.mirror.drop()
		return err
	case errors.As(err, &pe) && pe.RolledBack:
		result = "rolled-back: " + firstLine(err.Error())
	default:
		result = "failed: " + firstLine(err.Error())
	}
	// The lock goes back while the result is written, not after: at the
	// end of a rollout's wave, fifty switches wait on both at once. A run
	// that dies between the two leaves what one that dies before the
	// result would: a finished journal, and no result.
	released := make(chan struct{})
	go func() {
		defer close(released)
		unlock()
	}()
	if aerr := r.mirror.close(ctx, final); aerr != nil {
		o.Logger.Warnf("record the result on node %s: %v", o.Node, aerr)
	}
	<-released
	return err
}

// Rehearse runs the rehearse phase alone (unshim node rehearse): nothing
// the node runs changes. When no switch was under way, the journal and the
// phase annotation the rehearsal left are removed again: the node shows no
// switch in progress.
func Rehearse(ctx context.Context, o Options) error {
	o.Settings.Target = nodeplan.Containerd
	st := &journal.Store{T: o.Transport}
	prior, err := st.Load(ctx, o.Node)
	if err != nil {
		return err
	}
	err = Run(ctx, o, "rehearse")
	if prior != nil {
		return err
	}
	cctx, cancel := migrate.RollbackContext(ctx, time.Minute)
	defer cancel()
	if j, lerr := st.Load(cctx, o.Node); lerr == nil && j != nil && len(j.Phases) <= 1 {
		if rerr := o.Transport.Remove(cctx, st.Path(o.Node)); rerr != nil {
			o.Logger.Warnf("remove the rehearsal's journal: %v", rerr)
		}
		if aerr := phases.Annotate(cctx, o.Client, o.Node, PhaseAnnotation, nil); aerr != nil {
			o.Logger.Warnf("clear %s: %v", PhaseAnnotation, aerr)
		}
	}
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// Rollback undoes the node's unfinished (or failed, or finished) switch from
// its journal. When the kubelet ran on the new runtime, the node is cordoned
// and drained first, PDBs respected, as for the switch itself: the pods
// running there would otherwise all go at once when that runtime stops.
func Rollback(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = log.NoopLogger()
	}
	m := newPhaseMirror(o.Client, o.Node, o.Logger)
	locked, err := rollback(ctx, &o, m)
	if !locked {
		return err // another run's node, or not this machine: its annotations are not ours
	}
	// The outcome is on the node for whoever follows it (`rollout undo`
	// through an agent pod), never on the run's own context.
	rctx, cancel := migrate.RollbackContext(ctx, time.Minute)
	defer cancel()
	result := RolledBackOnDemand
	final := map[string]*string{ResultAnnotation: &result}
	if err == nil {
		final[PhaseAnnotation] = nil
		o.Logger.V(0).Infof("node %s is back on Docker", o.Node)
	} else {
		result = "failed: rollback: " + firstLine(err.Error())
	}
	if aerr := m.close(rctx, final); aerr != nil {
		o.Logger.Warnf("record the result on node %s: %v", o.Node, aerr)
	}
	return err
}

// RolledBackOnDemand is the ResultAnnotation of a switch undone by
// Rollback.
const RolledBackOnDemand = "rolled-back: on demand (unshim node rollback)"

// rollback is Rollback up to its result; locked says whether it held the
// node's lock (and so may record the result).
func rollback(ctx context.Context, o *Options, m *phaseMirror) (locked bool, err error) {
	node, err := o.Client.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("node %s: %w", o.Node, err)
	}
	if err := checkMachine(ctx, o.Transport, node); err != nil {
		return false, err
	}
	unlock, err := lock(ctx, o)
	if err != nil {
		return false, err
	}
	defer unlock()
	st := &journal.Store{T: o.Transport}
	j, err := st.Load(ctx, o.Node)
	if err != nil {
		return true, err
	}
	if j == nil {
		return true, fmt.Errorf("node %s has no switch journal (%s): nothing to roll back", o.Node, st.Path(o.Node))
	}
	if j.RolledBack {
		o.Logger.V(0).Infof("the switch of %s was already rolled back", o.Node)
		return true, nil
	}
	if j.Finished {
		o.Logger.V(0).Infof("the switch of %s finished; rolling it back to Docker", o.Node)
	}
	o.Settings.Target = j.Target
	ps, err := Phases(j.Target)
	if err != nil {
		return true, err
	}
	plan, err := keptPlan(j)
	if err != nil {
		return true, err
	}
	r := &run{o: o, j: j, st: st, stngs: o.Settings, plan: plan, mirror: m}
	if err := drainBeforeRollback(ctx, r, ps); err != nil {
		return true, err
	}
	rctx, cancel := migrate.RollbackContext(ctx, 0)
	defer cancel()
	return true, r.runner(ps).Rollback(rctx, r)
}

// keptPlan is the plan the journal kept from the run's first start (an
// empty plan for the journal's target when it kept none).
func keptPlan(j *journal.Journal) (*nodeplan.Plan, error) {
	p := &nodeplan.Plan{Target: j.Target}
	if len(j.Plan) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(j.Plan, p); err != nil {
		return nil, fmt.Errorf("the plan kept in the journal of %s is damaged: %w", j.Node, err)
	}
	return p, nil
}

// drainBeforeRollback cordons and drains the node when the kubelet may run
// pods on the new runtime (start-kubelet ran and is not undone), with the
// switch's own cordon and drain phases: the cordon records whether the node
// was schedulable only if the switch had not, so the rollback of the
// cordon still uncordons only a node that was schedulable before the
// switch.
func drainBeforeRollback(ctx context.Context, r *run, ps []migrate.Phase) error {
	switch r.j.State(phases.StartKubeletPhase) {
	case "", journal.RolledBack:
		return nil
	}
	for _, p := range ps {
		if p.Name != phases.CordonPhase && p.Name != phases.DrainPhase {
			continue
		}
		r.o.Logger.V(0).Infof("[%s] before the rollback: %s", p.Name, p.Short)
		r.j.SetCurrent(p.Name)
		if err := p.Run(ctx, r); err != nil {
			return fmt.Errorf("%s %s before the rollback (nothing was undone; fix it and run the rollback again): %w", p.Name, r.o.Node, err)
		}
	}
	r.j.SetCurrent("")
	return nil
}

func lock(ctx context.Context, o *Options) (func(), error) {
	holder := o.Holder
	if holder == "" {
		holder = nodelock.Holder("unshim")
	}
	ttl := o.LockTTL
	if ttl == 0 {
		ttl = 2 * time.Minute
	}
	l, err := nodelock.AcquireUnlessStale(ctx, o.Client, o.Node, holder, ttl, func(h string) bool { return nodelock.DeadHere("unshim", h) })
	if err != nil {
		return nil, err
	}
	// Renewals and the release outlive an interrupt: the rollback that
	// follows one still holds the lock.
	ctx = context.WithoutCancel(ctx)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := l.Renew(ctx); err != nil {
					o.Logger.Warnf("%v", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		// Retried while the apiserver is away, up to the lock's TTL; after
		// that the lock expires by itself.
		var last error
		err := wait.PollUntilContextTimeout(ctx, time.Second, ttl, true, func(ctx context.Context) (bool, error) {
			last = l.Release(ctx)
			return last == nil, nil
		})
		if err != nil {
			o.Logger.Warnf("release the lock of node %s (it expires by itself within %s): %v", o.Node, ttl, last)
		}
	}, nil
}
