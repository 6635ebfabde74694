// Package migrate runs a node migration as named phases in the manner of
// kubeadm's phase runner, with a journal on the node so a killed run resumes
// where it stopped, and rollback of the finished phases, in reverse, when a
// phase fails. It knows nothing of SSH, pods or cobra.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/transport"
)

// Data is what phases see of a run.
type Data interface {
	Node() string
	Journal() *journal.Journal
	// Store keeps the journal and the backups on the node, through Transport.
	Store() *journal.Store
	// Transport acts on the node.
	Transport() transport.Transport
	DryRun() bool
}

// Phase is one named, idempotent step of a migration.
type Phase struct {
	Name  string
	Short string
	// Run does the step; running it twice is safe.
	Run func(ctx context.Context, d Data) error
	// Rollback undoes it; nil when the phase changes nothing. Safe to run twice,
	// and after a partial Run.
	Rollback func(ctx context.Context, d Data) error
	// Plan says what Run would do, for --dry-run.
	Plan func(ctx context.Context, d Data) ([]string, error)
	// RunIf, when set, says whether the phase belongs to this run (one list
	// of phases serves every target); a phase it rules out is not run, not
	// recorded, and not waited for.
	RunIf func(d Data) bool
}

// Applies says whether p runs in d's run.
func (p Phase) Applies(d Data) bool { return p.RunIf == nil || p.RunIf(d) }

// Runner runs phases in order.
type Runner struct {
	Phases []Phase
	Logger log.Logger
	// NoRollback leaves a failed run as it is, resumable, instead of undoing it.
	NoRollback bool
	// RollbackTimeout bounds a rollback (default 10m). A rollback never runs
	// on the run's context: after an interrupt that context is cancelled,
	// and every API call and command made with it would fail.
	RollbackTimeout time.Duration
	// AfterPhase, if set, is called once a phase is recorded done (tests use it
	// to kill the run at a chosen point).
	AfterPhase func(name string)
	// OnState, if set, is told each phase state the journal records (the
	// command mirrors it into the node's annotation). It must not fail the run.
	OnState func(ctx context.Context, phase, state string)
	// Skip names phases not to run (--skip-phases); a run whose other
	// phases are all done is finished.
	Skip []string
	// Hold, if set, is called before the phase HoldBefore starts (the first
	// phase that changes anything), or before the first phase after it that
	// runs (when it is skipped or done before), with the journal saved
	// Waiting; the run waits on it. An error ends the run there, rolled
	// back as a failure, with an error that matches ErrHeldBack.
	Hold       func(ctx context.Context) error
	HoldBefore string
}

// ErrHeldBack is the cause of a run that Hold did not let go on.
var ErrHeldBack = errors.New("held back before its first change")

func (r *Runner) skipped(p Phase, d Data) bool {
	return !p.Applies(d) || slices.Contains(r.Skip, p.Name)
}

func (r *Runner) state(ctx context.Context, phase, state string) {
	if r.OnState != nil {
		r.OnState(ctx, phase, state)
	}
}

// ErrInterrupted is the cause of a run stopped by its context (Ctrl-C,
// SIGTERM) at a step boundary.
var ErrInterrupted = errors.New("interrupted")

// RollbackContext is a context for undoing a run whose own context may be
// cancelled: it keeps ctx's values, not its cancellation, and has its own
// timeout.
func RollbackContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// PhaseError is a phase that failed, with the outcome of the rollback.
type PhaseError struct {
	Phase       string
	Err         error
	RolledBack  bool
	RollbackErr error
	// Interrupted is set when the run was stopped by its context.
	Interrupted bool
}

func (e *PhaseError) Error() string {
	msg := fmt.Sprintf("phase %s: %v", e.Phase, e.Err)
	switch {
	case e.RollbackErr != nil:
		msg += fmt.Sprintf("; rollback failed, the journal keeps the state: %v", e.RollbackErr)
	case e.RolledBack:
		msg += "; rolled back"
	default:
		msg += "; not rolled back: re-run to resume, or roll back"
	}
	return msg
}

func (e *PhaseError) Unwrap() error { return e.Err }

// Plan returns each phase's plan, in order, without changing anything.
func (r *Runner) Plan(ctx context.Context, d Data) (map[string][]string, error) {
	out := map[string][]string{}
	for _, p := range r.Phases {
		if r.skipped(p, d) {
			continue
		}
		if p.Plan == nil {
			out[p.Name] = []string{p.Short}
			continue
		}
		lines, err := p.Plan(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("plan phase %s: %w", p.Name, err)
		}
		out[p.Name] = lines
	}
	return out, nil
}

// Run runs every phase not yet done according to the journal, recording each
// in it. When one fails, or the context is cancelled (checked between
// phases; a phase's waits end at once, its changes finish and are
// recorded), it rolls back that phase and every finished one in reverse
// order, on a context of its own, unless NoRollback is set.
func (r *Runner) Run(ctx context.Context, d Data) error {
	all := make([]int, len(r.Phases))
	for i := range all {
		all[i] = i
	}
	return r.run(ctx, d, all)
}

// RunPhase runs the one phase name, recording only it: the run is finished
// only when every phase is done, and a failure rolls back that phase alone.
func (r *Runner) RunPhase(ctx context.Context, d Data, name string) error {
	for i, p := range r.Phases {
		if p.Name == name {
			return r.run(ctx, d, []int{i})
		}
	}
	return fmt.Errorf("no phase %q", name)
}

func (r *Runner) run(ctx context.Context, d Data, which []int) error {
	j, st := d.Journal(), d.Store()
	single := len(which) == 1 && len(r.Phases) > 1
	// The hold comes before HoldBefore, or before the first phase after it
	// that runs when it does not (skipped, done before).
	holdAt := len(r.Phases)
	if r.Hold != nil && !single {
		holdAt = slices.IndexFunc(r.Phases, func(p Phase) bool { return p.Name == r.HoldBefore })
		if holdAt < 0 {
			return fmt.Errorf("no phase %q to hold before", r.HoldBefore)
		}
	}
	for k, i := range which {
		p := r.Phases[i]
		if r.skipped(p, d) {
			if single || slices.Contains(r.Skip, p.Name) {
				r.Logger.V(0).Infof("[%s] skipped", p.Name)
			}
			continue
		}
		if !single && j.State(p.Name) == journal.Done {
			r.Logger.V(0).Infof("[%s] done before, skipping (resumed from the journal)", p.Name)
			continue
		}
		if ctx.Err() != nil {
			// Stopped between phases: the last finished phase is the boundary.
			return r.fail(ctx, d, which[:k], p.Name, fmt.Errorf("%w before phase %s: %w", ErrInterrupted, p.Name, context.Cause(ctx)), true)
		}
		if i >= holdAt {
			holdAt = len(r.Phases) // once
			if err := r.hold(ctx, d); err != nil {
				return r.fail(ctx, d, which[:k], p.Name, err, ctx.Err() != nil)
			}
		}
		r.Logger.V(0).Infof("[%s] %s", p.Name, p.Short)
		// Waiting, if set, is cleared with this save.
		j.Waiting = false
		j.Mark(p.Name, journal.Running, nil)
		if err := st.Save(ctx, j); err != nil {
			return err
		}
		r.state(ctx, p.Name, journal.Running)
		err := p.Run(ctx, d)
		if err == nil && ctx.Err() != nil {
			// The phase finished its changes, but a wait inside it may have
			// been cut short: do not count it done.
			err = ctx.Err()
		}
		if err != nil {
			interrupted := ctx.Err() != nil
			if interrupted {
				err = fmt.Errorf("%w in phase %s: %w", ErrInterrupted, p.Name, err)
			}
			return r.fail(ctx, d, which[:k+1], p.Name, err, interrupted)
		}
		j.Mark(p.Name, journal.Done, nil)
		if err := st.Save(ctx, j); err != nil {
			return err
		}
		r.state(ctx, p.Name, journal.Done)
		if r.AfterPhase != nil {
			r.AfterPhase(p.Name)
		}
	}
	j.SetCurrent("")
	j.Finished = r.allDone(d)
	return st.Save(ctx, j)
}

// hold saves the journal Waiting and waits on Hold.
func (r *Runner) hold(ctx context.Context, d Data) error {
	j := d.Journal()
	j.Waiting = true
	if err := d.Store().Save(ctx, j); err != nil {
		return err
	}
	r.Logger.V(0).Infof("[%s] waiting for the go-ahead", r.HoldBefore)
	if err := r.Hold(ctx); err != nil {
		// Waiting stays: a journal the rollback does not close (NoRollback)
		// still starts afresh.
		return fmt.Errorf("%w: %w", ErrHeldBack, err)
	}
	return nil
}

func (r *Runner) allDone(d Data) bool {
	j := d.Journal()
	for _, p := range r.Phases {
		if !r.skipped(p, d) && j.State(p.Name) != journal.Done {
			return false
		}
	}
	return true
}

// fail records the failure of phase (if it started), then rolls back the
// phases in ran, in reverse, on a fresh context, unless NoRollback.
func (r *Runner) fail(ctx context.Context, d Data, ran []int, phase string, err error, interrupted bool) error {
	j, st := d.Journal(), d.Store()
	rctx, cancel := RollbackContext(ctx, r.RollbackTimeout)
	defer cancel()
	pe := &PhaseError{Phase: phase, Err: err, Interrupted: interrupted}
	r.Logger.V(0).Infof("[%s] failed: %v", phase, err)
	if j.State(phase) == journal.Running {
		j.Mark(phase, journal.Failed, err)
		if saveErr := st.Save(rctx, j); saveErr != nil {
			pe.RollbackErr = saveErr
			return pe
		}
		r.state(rctx, phase, journal.Failed)
	}
	if r.NoRollback {
		return pe
	}
	if interrupted {
		r.Logger.V(0).Infof("rolling back (interrupt again to stop at once and leave the journal to resume from)")
	}
	pe.RollbackErr = r.rollback(rctx, d, ran)
	pe.RolledBack = pe.RollbackErr == nil
	return pe
}

// Rollback undoes every phase the journal records as started, in reverse.
func (r *Runner) Rollback(ctx context.Context, d Data) error {
	all := make([]int, len(r.Phases))
	for i := range all {
		all[i] = i
	}
	return r.rollback(ctx, d, all)
}

// rollback undoes the phases in which that the journal records as started,
// in reverse: the phase's own Rollback first (it may undo its recorded
// steps in an order of its own), then whatever recorded steps are left.
func (r *Runner) rollback(ctx context.Context, d Data, which []int) error {
	j, st := d.Journal(), d.Store()
	var errs []error
	for k := len(which) - 1; k >= 0; k-- {
		p := r.Phases[which[k]]
		state := j.State(p.Name)
		if state == "" || state == journal.RolledBack {
			continue
		}
		j.SetCurrent(p.Name)
		if p.Rollback != nil || Pending(j, p.Name) {
			r.Logger.V(0).Infof("[%s] rolling back", p.Name)
		}
		if p.Rollback != nil {
			if err := p.Rollback(ctx, d); err != nil {
				errs = append(errs, fmt.Errorf("roll back phase %s: %w", p.Name, err))
				continue
			}
		}
		if err := Undo(ctx, d, p.Name); err != nil {
			errs = append(errs, fmt.Errorf("roll back phase %s: %w", p.Name, err))
			continue
		}
		j.Mark(p.Name, journal.RolledBack, nil)
		if err := st.Save(ctx, j); err != nil {
			errs = append(errs, err)
		}
		r.state(ctx, p.Name, journal.RolledBack)
	}
	j.SetCurrent("")
	if len(errs) == 0 {
		j.RolledBack = r.allRolledBack(j)
		if err := st.Save(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// allRolledBack says whether nothing the run did is left: every phase that
// started is rolled back.
func (r *Runner) allRolledBack(j *journal.Journal) bool {
	for _, p := range j.Phases {
		if p.State != journal.RolledBack {
			return false
		}
	}
	return true
}
