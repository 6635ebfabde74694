// Package migrate runs a node migration as named phases in the manner of
// kubeadm's phase runner, with a journal on the node so a killed run resumes
// where it stopped, and rollback of the finished phases, in reverse, when a
// phase fails. It knows nothing of SSH, pods or cobra.
package migrate

import (
	"context"
	"errors"
	"fmt"

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
}

// Runner runs phases in order.
type Runner struct {
	Phases []Phase
	Logger log.Logger
	// NoRollback leaves a failed run as it is, resumable, instead of undoing it.
	NoRollback bool
	// AfterPhase, if set, is called once a phase is recorded done (tests use it
	// to kill the run at a chosen point).
	AfterPhase func(name string)
	// OnState, if set, is told each phase state the journal records (the
	// command mirrors it into the node's annotation). It must not fail the run.
	OnState func(ctx context.Context, phase, state string)
}

func (r *Runner) state(ctx context.Context, phase, state string) {
	if r.OnState != nil {
		r.OnState(ctx, phase, state)
	}
}

// PhaseError is a phase that failed, with the outcome of the rollback.
type PhaseError struct {
	Phase       string
	Err         error
	RolledBack  bool
	RollbackErr error
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
// in it. When one fails it rolls back that phase and every finished one in
// reverse order, unless NoRollback is set.
func (r *Runner) Run(ctx context.Context, d Data) error {
	j, st := d.Journal(), d.Store()
	for i, p := range r.Phases {
		if j.State(p.Name) == journal.Done {
			r.Logger.V(0).Infof("[%s] done before, skipping (resumed from the journal)", p.Name)
			continue
		}
		r.Logger.V(0).Infof("[%s] %s", p.Name, p.Short)
		j.Mark(p.Name, journal.Running, nil)
		if err := st.Save(ctx, j); err != nil {
			return err
		}
		r.state(ctx, p.Name, journal.Running)
		if err := p.Run(ctx, d); err != nil {
			r.Logger.V(0).Infof("[%s] failed: %v", p.Name, err)
			j.Mark(p.Name, journal.Failed, err)
			pe := &PhaseError{Phase: p.Name, Err: err}
			if saveErr := st.Save(ctx, j); saveErr != nil {
				pe.RollbackErr = saveErr
				return pe
			}
			r.state(ctx, p.Name, journal.Failed)
			if !r.NoRollback {
				pe.RollbackErr = r.rollback(ctx, d, i)
				pe.RolledBack = pe.RollbackErr == nil
			}
			return pe
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
	j.Finished = true
	return st.Save(ctx, j)
}

// Rollback undoes every phase the journal records as started, in reverse.
func (r *Runner) Rollback(ctx context.Context, d Data) error {
	return r.rollback(ctx, d, len(r.Phases)-1)
}

// rollback undoes phases[0..last] that the journal records as started, in reverse.
func (r *Runner) rollback(ctx context.Context, d Data, last int) error {
	j, st := d.Journal(), d.Store()
	var errs []error
	for i := last; i >= 0; i-- {
		p := r.Phases[i]
		state := j.State(p.Name)
		if state == "" || state == journal.RolledBack {
			continue
		}
		if p.Rollback != nil {
			r.Logger.V(0).Infof("[%s] rolling back", p.Name)
			if err := p.Rollback(ctx, d); err != nil {
				errs = append(errs, fmt.Errorf("roll back phase %s: %w", p.Name, err))
				continue
			}
		}
		j.Mark(p.Name, journal.RolledBack, nil)
		if err := st.Save(ctx, j); err != nil {
			errs = append(errs, err)
		}
		r.state(ctx, p.Name, journal.RolledBack)
	}
	if len(errs) == 0 {
		j.RolledBack = true
		if err := st.Save(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
