package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/unshim/unshim/pkg/journal"
)

// changeTimeout bounds one change to the node. A change runs on a context
// that an interrupt does not cancel: a Ctrl-C lets the change in flight
// finish (and be recorded), and the run stops at the next step boundary.
const changeTimeout = 15 * time.Minute

func changeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), changeTimeout)
}

// WriteFile replaces path on the node with data. Before the write it backs
// the file up (once: the first, original copy is kept) and records the step
// in the journal, so that a rollback, now or after a resumed run, restores
// exactly the files that were written.
//
// In a dry run the step is only recorded, in memory: that record is the
// dry run's output, so it cannot drift from what a run does.
func WriteFile(ctx context.Context, d Data, path string, data []byte, perm os.FileMode) error {
	cctx, cancel := changeContext(ctx)
	defer cancel()
	if d.DryRun() {
		return record(cctx, d, journal.Step{Kind: journal.StepWrite, Path: path})
	}
	j, st := d.Journal(), d.Store()
	if err := st.BackupFile(cctx, j, path); err != nil {
		return err
	}
	if err := record(cctx, d, journal.Step{Kind: journal.StepWrite, Path: path}); err != nil {
		return err
	}
	if err := d.Transport().WriteFile(cctx, path, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Exec runs argv on the node as a recorded change: undo are the commands
// that put back what it changes, worked out from the node's state before it
// runs (nil when it changes nothing a rollback must put back).
func Exec(ctx context.Context, d Data, argv []string, undo ...[]string) ([]byte, error) {
	cctx, cancel := changeContext(ctx)
	defer cancel()
	if err := record(cctx, d, journal.Step{Kind: journal.StepExec, Argv: argv, Undo: undo}); err != nil || d.DryRun() {
		return nil, err
	}
	return d.Transport().Run(cctx, argv...)
}

// record appends a step of the current phase to the journal and saves it,
// before the step is made: a run killed inside the step still undoes it.
func record(ctx context.Context, d Data, s journal.Step) error {
	j := d.Journal()
	s.Phase = j.Current()
	if s.Phase == "" {
		return errors.New("a change made outside any phase cannot be recorded")
	}
	j.Steps = append(j.Steps, s)
	if d.DryRun() {
		return nil
	}
	return d.Store().Save(ctx, j)
}

// Undo undoes the recorded steps of phase not yet undone, last first: a
// written file is restored from its backup byte for byte (or removed if it
// did not exist), an exec's undo commands are run. Each undone step is
// recorded, so a rollback that is itself interrupted goes on where it
// stopped.
func Undo(ctx context.Context, d Data, phase string) error {
	j, st, t := d.Journal(), d.Store(), d.Transport()
	var errs []error
	for i := len(j.Steps) - 1; i >= 0; i-- {
		s := &j.Steps[i]
		if s.Phase != phase || s.Undone {
			continue
		}
		var err error
		switch s.Kind {
		case journal.StepWrite:
			err = st.RestorePaths(ctx, j, s.Path)
		case journal.StepExec:
			for _, argv := range s.Undo {
				if _, e := t.Run(ctx, argv...); e != nil {
					err = errors.Join(err, e)
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", describeStep(s), err))
			continue
		}
		s.Undone = true
		if err := st.Save(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pending says whether phase has recorded steps not yet undone.
func Pending(j *journal.Journal, phase string) bool {
	for _, s := range j.Steps {
		if s.Phase == phase && !s.Undone {
			return true
		}
	}
	return false
}

func describeStep(s *journal.Step) string {
	if s.Kind == journal.StepWrite {
		return "write " + s.Path
	}
	return fmt.Sprintf("%q", s.Argv)
}

// Cmd is a command and the commands that undo it.
type Cmd struct {
	Argv []string
	Undo [][]string
}

// ExecParallel records each command as a step with its undo, then runs
// them all at once, returning the errors of those that failed.
func ExecParallel(ctx context.Context, d Data, cmds ...Cmd) error {
	cctx, cancel := changeContext(ctx)
	defer cancel()
	for _, c := range cmds {
		if err := record(cctx, d, journal.Step{Kind: journal.StepExec, Argv: c.Argv, Undo: c.Undo}); err != nil {
			return err
		}
	}
	if d.DryRun() {
		return nil
	}
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = d.Transport().Run(cctx, c.Argv...)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DescribeStep says what a recorded step does, and what undoes it.
func DescribeStep(s journal.Step) string {
	out := describeStep(&s)
	if s.Kind == journal.StepWrite {
		return out + " (undo: restore it from its backup)"
	}
	if len(s.Undo) > 0 {
		var us []string
		for _, u := range s.Undo {
			us = append(us, fmt.Sprintf("%q", u))
		}
		out += " (undo: " + strings.Join(us, ", ") + ")"
	}
	return out
}
