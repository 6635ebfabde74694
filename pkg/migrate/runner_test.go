package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/transport"
)

// data is a run on a node whose file system is a temp directory.
type data struct {
	node string
	j    *journal.Journal
	st   *journal.Store
}

func (d *data) Node() string                   { return d.node }
func (d *data) Journal() *journal.Journal      { return d.j }
func (d *data) Store() *journal.Store          { return d.st }
func (d *data) DryRun() bool                   { return false }
func (d *data) Transport() transport.Transport { return d.st.T }

var _ Data = (*data)(nil)

func openData(t testing.TB, root string) *data {
	t.Helper()
	st := &journal.Store{T: &transport.Local{Root: root}}
	j, err := st.Load(context.Background(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if j == nil {
		j = journal.New("n1", "containerd")
	}
	return &data{node: "n1", j: j, st: st}
}

// countRun appends the phase name to ROOT/runs, so runs are counted across processes.
func countRun(root, name string) error {
	f, err := os.OpenFile(filepath.Join(root, "runs"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, name)
	return err
}

func runs(t *testing.T, root string) map[string]int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(root, "runs"))
	m := map[string]int{}
	for _, l := range strings.Fields(string(b)) {
		m[l]++
	}
	return m
}

// filePhases are phases that each back up and rewrite (or create) one file;
// failAt makes that phase fail after its change.
func filePhases(root string, failAt string) []Phase {
	var ps []Phase
	for i, f := range []string{"/etc/a.conf", "/etc/b.conf", "/var/lib/new.conf", "/etc/a.conf"} {
		name := fmt.Sprintf("step%d", i+1)
		file := f
		ps = append(ps, Phase{
			Name: name, Short: "rewrite " + file,
			Run: func(ctx context.Context, d Data) error {
				if err := countRun(root, name); err != nil {
					return err
				}
				if err := WriteFile(ctx, d, file, []byte("changed by "+name+"\n"), 0o600); err != nil {
					return err
				}
				if name == failAt {
					return errors.New("injected failure")
				}
				return nil
			},
			// No Rollback: the runner undoes the writes the journal recorded.
		})
	}
	return ps
}

func seedFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	orig := map[string][]byte{"/etc/a.conf": []byte("a original\n"), "/etc/b.conf": []byte("b original\x00binary\n")}
	for p, b := range orig {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return orig
}

func TestRollbackRestoresFilesByteForByte(t *testing.T) {
	for _, failAt := range []string{"step1", "step2", "step3", "step4"} {
		t.Run(failAt, func(t *testing.T) {
			root := t.TempDir()
			orig := seedFiles(t, root)
			d := openData(t, root)
			r := &Runner{Phases: filePhases(root, failAt), Logger: log.NoopLogger()}
			err := r.Run(context.Background(), d)
			var pe *PhaseError
			if !errors.As(err, &pe) || pe.Phase != failAt || !pe.RolledBack {
				t.Fatalf("error %v, want a rolled-back failure of %s", err, failAt)
			}
			for p, want := range orig {
				got, err := os.ReadFile(filepath.Join(root, p))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s after rollback: %q, %v; want %q", p, got, err, want)
				}
				if st, _ := os.Stat(filepath.Join(root, p)); st.Mode().Perm() != 0o640 {
					t.Errorf("%s mode %v, want 0640", p, st.Mode().Perm())
				}
			}
			if _, err := os.Stat(filepath.Join(root, "/var/lib/new.conf")); !os.IsNotExist(err) {
				t.Errorf("file created by the run survived the rollback: %v", err)
			}
			j, err := d.st.Load(context.Background(), "n1")
			if err != nil || !j.RolledBack || j.State(failAt) != journal.RolledBack {
				t.Errorf("journal after rollback: %+v, %v", j, err)
			}
		})
	}
}

func TestNoRollbackLeavesResumableJournal(t *testing.T) {
	root := t.TempDir()
	seedFiles(t, root)
	d := openData(t, root)
	r := &Runner{Phases: filePhases(root, "step3"), Logger: log.NoopLogger(), NoRollback: true}
	if err := r.Run(context.Background(), d); err == nil || !strings.Contains(err.Error(), "not rolled back") {
		t.Fatalf("error %v", err)
	}
	// The fault is fixed; a new run resumes at the failed phase.
	d = openData(t, root)
	r.Phases = filePhases(root, "")
	if err := r.Run(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := runs(t, root); got["step1"] != 1 || got["step2"] != 1 || got["step3"] != 2 || got["step4"] != 1 {
		t.Errorf("runs %v: want done phases not repeated and the failed one run again", got)
	}
	if !d.j.Finished {
		t.Error("journal not finished")
	}
}

// TestResumeAfterSIGKILL kills a real run (this test binary, re-executed)
// right after each phase in turn, then runs again: every phase runs, the
// finished ones once only.
func TestResumeAfterSIGKILL(t *testing.T) {
	if root := os.Getenv("UNSHIM_TEST_CRASH_ROOT"); root != "" {
		crashChild(t, root, os.Getenv("UNSHIM_TEST_CRASH_AFTER"))
		return
	}
	for i := 1; i <= 4; i++ {
		after := fmt.Sprintf("step%d", i)
		t.Run("after "+after, func(t *testing.T) {
			root := t.TempDir()
			orig := seedFiles(t, root)
			c := exec.Command(os.Args[0], "-test.run=^TestResumeAfterSIGKILL$")
			c.Env = append(os.Environ(), "UNSHIM_TEST_CRASH_ROOT="+root, "UNSHIM_TEST_CRASH_AFTER="+after)
			out, err := c.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed: %v\n%s", err, out)
			}
			d := openData(t, root)
			if d.j.State(after) != journal.Done {
				t.Fatalf("journal after the kill: %+v", d.j.Phases)
			}
			r := &Runner{Phases: filePhases(root, ""), Logger: log.NoopLogger()}
			if err := r.Run(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			got := runs(t, root)
			for k := 1; k <= 4; k++ {
				if n := got["step"+strconv.Itoa(k)]; n != 1 {
					t.Errorf("step%d ran %d times, want 1 (%v)", k, n, got)
				}
			}
			// The finished migration can still be rolled back from its journal.
			if err := r.Rollback(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			for p, want := range orig {
				if got, _ := os.ReadFile(filepath.Join(root, p)); !bytes.Equal(got, want) {
					t.Errorf("%s after rollback: %q", p, got)
				}
			}
		})
	}
}

func crashChild(t *testing.T, root, after string) {
	d := openData(t, root)
	r := &Runner{Phases: filePhases(root, ""), Logger: log.NoopLogger(), AfterPhase: func(name string) {
		if name == after {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}}
	_ = r.Run(context.Background(), d)
	t.Fatal("the run was not killed")
}

func TestJournalDecodeRejectsDamage(t *testing.T) {
	tests := map[string]string{
		"not json":      "{",
		"unknown field": `{"version":1,"node":"n","colour":1}`,
		"bad state":     `{"version":1,"node":"n","phases":[{"name":"x","state":"half"}]}`,
		"no version":    `{"node":"n"}`,
	}
	for name, in := range tests {
		if _, err := journal.Decode([]byte(in), "j.json"); err == nil || !strings.Contains(err.Error(), "j.json") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

// TestHoldWaitsBeforeItsPhase: the run waits on Hold before HoldBefore, with
// the journal saved Waiting; a go-ahead goes on and clears it; a refusal
// rolls back what ran and never starts HoldBefore; without a rollback the
// journal stays Waiting, for the next run to start afresh.
func TestHoldWaitsBeforeItsPhase(t *testing.T) {
	for _, tc := range []struct {
		name       string
		refuse     bool
		noRollback bool
		// skip: the phase held before is skipped; the hold comes before
		// the next one.
		skip bool
	}{{name: "go-ahead"}, {name: "refused", refuse: true}, {name: "refused without rollback", refuse: true, noRollback: true},
		{name: "its phase skipped, refused", refuse: true, skip: true}} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			orig := seedFiles(t, root)
			d := openData(t, root)
			held := 0
			var skip []string
			if tc.skip {
				skip = []string{"step3"}
			}
			r := &Runner{Phases: filePhases(root, ""), Logger: log.NoopLogger(), NoRollback: tc.noRollback, HoldBefore: "step3", Skip: skip,
				Hold: func(ctx context.Context) error {
					held++
					// What a driver that dies now leaves on the node.
					j, err := d.st.Load(ctx, "n1")
					if err != nil {
						return err
					}
					if !j.Waiting || j.State("step2") != journal.Done || j.State("step3") != "" || j.State("step4") != "" {
						t.Errorf("journal while held: waiting=%t phases %+v", j.Waiting, j.Phases)
					}
					if tc.refuse {
						return errors.New("the wave did not start")
					}
					return nil
				}}
			err := r.Run(context.Background(), d)
			saved, lerr := d.st.Load(context.Background(), "n1")
			if lerr != nil {
				t.Fatal(lerr)
			}
			if held != 1 {
				t.Errorf("Hold called %d times, want 1", held)
			}
			if !tc.refuse {
				if err != nil || !saved.Finished || saved.Waiting {
					t.Fatalf("go-ahead: %v, finished %t, waiting %t", err, saved.Finished, saved.Waiting)
				}
				return
			}
			var pe *PhaseError
			want := "step3"
			if tc.skip {
				want = "step4"
			}
			if !errors.Is(err, ErrHeldBack) || !errors.As(err, &pe) || pe.Phase != want {
				t.Fatalf("refused: %v, want ErrHeldBack at %s", err, want)
			}
			if n := runs(t, root); n["step3"]+n["step4"] != 0 {
				t.Errorf("phases ran after a refusal: %v", n)
			}
			if tc.noRollback {
				if pe.RolledBack || !saved.Waiting || saved.State("step2") != journal.Done {
					t.Errorf("without rollback: rolledBack=%t, journal waiting=%t phases %+v", pe.RolledBack, saved.Waiting, saved.Phases)
				}
				return
			}
			if !pe.RolledBack || !saved.RolledBack {
				t.Errorf("refused: rolled back %t, journal rolledBack %t", pe.RolledBack, saved.RolledBack)
			}
			for p, want := range orig {
				if got, _ := os.ReadFile(filepath.Join(root, p)); !bytes.Equal(got, want) {
					t.Errorf("%s after the refusal: %q, want %q", p, got, want)
				}
			}
		})
	}
}
