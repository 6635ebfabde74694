package migrate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/log"
)

// TestInterruptRollsBackOnAFreshContext cancels the run's context inside a
// phase, as Ctrl-C does: the change in flight is recorded, the run stops,
// and the rollback, which runs commands and restores files, still works
// although the run's context is cancelled.
func TestInterruptRollsBackOnAFreshContext(t *testing.T) {
	root := t.TempDir()
	orig := seedFiles(t, root)
	marker := filepath.Join(root, "marker")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps := append(filePhases(root, ""), Phase{})
	ps = append(ps[:2], Phase{
		Name: "touch", Short: "touch a marker, then wait",
		Run: func(ctx context.Context, d Data) error {
			if _, err := Exec(ctx, d, []string{"touch", marker}, []string{"rm", "-f", marker}); err != nil {
				return err
			}
			cancel() // Ctrl-C while the phase waits
			<-ctx.Done()
			return ctx.Err()
		},
	})
	d := openData(t, root)
	r := &Runner{Phases: ps, Logger: log.NoopLogger()}
	err := r.Run(ctx, d)
	var pe *PhaseError
	if !errors.As(err, &pe) || !pe.Interrupted || !pe.RolledBack || !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run: %v; want an interrupted, rolled-back run", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the interrupted phase's command was not undone: %v", err)
	}
	for p, want := range orig {
		if got, _ := os.ReadFile(filepath.Join(root, p)); !bytes.Equal(got, want) {
			t.Errorf("%s after rollback: %q, want %q", p, got, want)
		}
	}
	j, err := d.st.Load(context.Background(), "n1")
	if err != nil || !j.RolledBack {
		t.Fatalf("journal: %+v, %v", j, err)
	}
}

// TestInterruptBetweenPhasesStopsAtTheBoundary: a context cancelled after a
// phase finished stops the run before the next one starts.
func TestInterruptBetweenPhasesStopsAtTheBoundary(t *testing.T) {
	root := t.TempDir()
	seedFiles(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &Runner{Phases: filePhases(root, ""), Logger: log.NoopLogger(), NoRollback: true,
		AfterPhase: func(name string) {
			if name == "step2" {
				cancel()
			}
		}}
	d := openData(t, root)
	err := r.Run(ctx, d)
	var pe *PhaseError
	if !errors.As(err, &pe) || !pe.Interrupted || pe.Phase != "step3" {
		t.Fatalf("run: %v; want interrupted before step3", err)
	}
	if got := runs(t, root); got["step3"] != 0 || got["step2"] != 1 {
		t.Errorf("runs %v: step3 must not start after the interrupt", got)
	}
	if d.j.State("step3") != "" || d.j.State("step2") != journal.Done {
		t.Errorf("journal phases %+v", d.j.Phases)
	}
}

// TestRollbackFromTheRecordNotFromTheNode: a run left unfinished is rolled
// back by a runner whose phases would now change nothing (as a plan worked
// out again from already converted files would): what was recorded is
// undone all the same.
func TestRollbackFromTheRecordNotFromTheNode(t *testing.T) {
	root := t.TempDir()
	orig := seedFiles(t, root)
	d := openData(t, root)
	r := &Runner{Phases: filePhases(root, "step3"), Logger: log.NoopLogger(), NoRollback: true}
	if err := r.Run(context.Background(), d); err == nil {
		t.Fatal("want step3 to fail")
	}
	d = openData(t, root) // a new process
	var idle []Phase
	for _, p := range filePhases(root, "") {
		idle = append(idle, Phase{Name: p.Name, Short: p.Short, Run: func(context.Context, Data) error { return nil }})
	}
	r = &Runner{Phases: idle, Logger: log.NoopLogger()}
	if err := r.Rollback(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for p, want := range orig {
		if got, _ := os.ReadFile(filepath.Join(root, p)); !bytes.Equal(got, want) {
			t.Errorf("%s after rollback: %q, want %q", p, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "/var/lib/new.conf")); !os.IsNotExist(err) {
		t.Errorf("file created by the run survived the rollback: %v", err)
	}
}

// TestSinglePhaseRunRecordsOnlyThatPhase: running one phase after a kill
// neither finishes the run nor, when it fails, marks the whole run rolled
// back (which would make the next run take the damaged node as original).
func TestSinglePhaseRunRecordsOnlyThatPhase(t *testing.T) {
	root := t.TempDir()
	orig := seedFiles(t, root)
	d := openData(t, root)
	r := &Runner{Phases: filePhases(root, "step3"), Logger: log.NoopLogger(), NoRollback: true}
	if err := r.Run(context.Background(), d); err == nil {
		t.Fatal("want step3 to fail")
	}
	r = &Runner{Phases: filePhases(root, ""), Logger: log.NoopLogger()}
	if err := r.RunPhase(context.Background(), d, "step4"); err != nil {
		t.Fatal(err)
	}
	if d.j.Finished || d.j.State("step3") != journal.Failed || d.j.State("step4") != journal.Done {
		t.Fatalf("after a single phase: finished=%t phases %+v", d.j.Finished, d.j.Phases)
	}
	r = &Runner{Phases: filePhases(root, "step2"), Logger: log.NoopLogger()}
	err := r.RunPhase(context.Background(), d, "step2")
	var pe *PhaseError
	if !errors.As(err, &pe) || !pe.RolledBack {
		t.Fatalf("failing single phase: %v", err)
	}
	if d.j.RolledBack || d.j.State("step2") != journal.RolledBack || d.j.State("step1") != journal.Done {
		t.Fatalf("a failed single phase rolled back more than itself: rolledBack=%t %+v", d.j.RolledBack, d.j.Phases)
	}
	// The whole run, resumed, finishes; then a rollback restores the originals.
	r = &Runner{Phases: filePhases(root, ""), Logger: log.NoopLogger()}
	if err := r.Run(context.Background(), d); err != nil || !d.j.Finished {
		t.Fatalf("resume: %v, finished %t", err, d.j.Finished)
	}
	if err := r.Rollback(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for p, want := range orig {
		if got, _ := os.ReadFile(filepath.Join(root, p)); !bytes.Equal(got, want) {
			t.Errorf("%s after rollback: %q, want %q", p, got, want)
		}
	}
}
