// Package journal is the durable record of one node's migration, kept on the
// node: which phases started, finished, failed or were rolled back, and the
// backup of every file the migration changed, so a run killed at any point
// resumes where it stopped and a rollback restores files byte for byte.
package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/unshim/unshim/pkg/transport"
)

// DefaultDir is where journals and backups live on a node.
const DefaultDir = "/var/lib/unshim"

// Phase states.
const (
	Running    = "running"
	Done       = "done"
	Failed     = "failed"
	RolledBack = "rolled-back"
)

// PhaseRecord is what happened to one phase.
type PhaseRecord struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// Backup is a file as it was before the migration changed it.
type Backup struct {
	// Path is the file on the node.
	Path string `json:"path"`
	// Copy is where its original content is kept ("" when the file did not exist).
	Copy string `json:"copy,omitempty"`
	// Absent is true when the file did not exist: restoring removes it.
	Absent bool   `json:"absent,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
}

// Journal is one node's migration record.
type Journal struct {
	Version int               `json:"version"`
	Node    string            `json:"node"`
	Target  string            `json:"target"`
	Started time.Time         `json:"started"`
	Phases  []PhaseRecord     `json:"phases"`
	Backups []Backup          `json:"backups,omitempty"`
	Values  map[string]string `json:"values,omitempty"`
	// Steps are the changes made to the node, in order, each recorded before
	// it was made; a rollback undoes them in reverse from this record.
	Steps []Step `json:"steps,omitempty"`
	// Plan is the switch's plan as worked out before the first change, so
	// that a resumed run carries on with it rather than with one worked out
	// from files the run has already changed.
	Plan json.RawMessage `json:"plan,omitempty"`
	// Finished is set when every phase is done; RolledBack when the run was undone.
	Finished   bool `json:"finished,omitempty"`
	RolledBack bool `json:"rolledBack,omitempty"`
	// Waiting is set while the run waits, before its first change, for the
	// go-ahead of whoever started it (migrate.Runner.Hold: a rollout starts a
	// wave's switches during the wave before). Only phases that change
	// nothing ran: a run that finds its journal so starts afresh, and checks
	// the node again, instead of resuming from checks made long before.
	Waiting bool `json:"waiting,omitempty"`

	// current is the phase running now, which steps are recorded against.
	current string
}

// Current is the phase marked running last ("" outside a phase).
func (j *Journal) Current() string { return j.current }

// SetCurrent names the phase whose steps are being recorded or undone.
func (j *Journal) SetCurrent(phase string) { j.current = phase }

// Step kinds.
const (
	// StepWrite replaced (or created) the file Path; undone from its backup.
	StepWrite = "write"
	// StepExec ran Argv; undone by running each of Undo.
	StepExec = "exec"
)

// Step is one change made to the node by a phase.
type Step struct {
	Phase string   `json:"phase"`
	Kind  string   `json:"kind"`
	Path  string   `json:"path,omitempty"`
	Argv  []string `json:"argv,omitempty"`
	// Undo are the commands that put back what Argv changed, as recorded
	// before it ran.
	Undo [][]string `json:"undo,omitempty"`
	// Undone is set once the step has been undone.
	Undone bool `json:"undone,omitempty"`
}

// Store keeps a journal on a node through a transport.
type Store struct {
	T   transport.Transport
	Dir string // DefaultDir when empty
}

func (s *Store) dir() string {
	if s.Dir == "" {
		return DefaultDir
	}
	return s.Dir
}

// Path is the journal file of node.
func (s *Store) Path(node string) string { return path.Join(s.dir(), "journal", node+".json") }

// Load returns the node's journal, or nil when there is none.
func (s *Store) Load(ctx context.Context, node string) (*Journal, error) {
	data, err := s.T.ReadFile(ctx, s.Path(node))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	return Decode(data, s.Path(node))
}

// Decode parses a journal; name is used in errors.
func Decode(data []byte, name string) (*Journal, error) {
	var j Journal
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("journal %s is damaged: %w", name, err)
	}
	if j.Version != 1 || j.Node == "" {
		return nil, fmt.Errorf("journal %s: unsupported version %d or no node", name, j.Version)
	}
	if j.Values == nil {
		j.Values = map[string]string{}
	}
	for _, st := range j.Steps {
		if st.Kind != StepWrite && st.Kind != StepExec {
			return nil, fmt.Errorf("journal %s: step of phase %q has unknown kind %q", name, st.Phase, st.Kind)
		}
	}
	for _, p := range j.Phases {
		switch p.State {
		case Running, Done, Failed, RolledBack:
		default:
			return nil, fmt.Errorf("journal %s: phase %q has unknown state %q", name, p.Name, p.State)
		}
	}
	return &j, nil
}

// Save writes the journal atomically.
func (s *Store) Save(ctx context.Context, j *Journal) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := s.T.WriteFile(ctx, s.Path(j.Node), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save journal: %w", err)
	}
	return nil
}

// New starts a journal.
func New(node, target string) *Journal {
	return &Journal{Version: 1, Node: node, Target: target, Started: time.Now().UTC(), Values: map[string]string{}}
}

func (j *Journal) record(name string) *PhaseRecord {
	for i := range j.Phases {
		if j.Phases[i].Name == name {
			return &j.Phases[i]
		}
	}
	j.Phases = append(j.Phases, PhaseRecord{Name: name})
	return &j.Phases[len(j.Phases)-1]
}

// State returns a phase's state, "" when it never started.
func (j *Journal) State(name string) string {
	for _, p := range j.Phases {
		if p.Name == name {
			return p.State
		}
	}
	return ""
}

// Mark sets a phase's state, with the error when it failed.
func (j *Journal) Mark(name, state string, err error) {
	r := j.record(name)
	now := time.Now().UTC()
	if state == Running {
		j.current = name
		r.Started, r.Ended, r.Error = now, time.Time{}, ""
	} else {
		r.Ended = now
	}
	r.State = state
	if err != nil {
		r.Error = err.Error()
	}
}

// BackupFile copies path (if it exists) into the backup directory and records
// it, once: a file already backed up keeps its first, original copy.
func (s *Store) BackupFile(ctx context.Context, j *Journal, p string) error {
	for _, b := range j.Backups {
		if b.Path == p {
			return nil
		}
	}
	data, err := s.T.ReadFile(ctx, p)
	b := Backup{Path: p}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b.Absent = true
	case err != nil:
		return fmt.Errorf("back up %s: %w", p, err)
	default:
		sum := sha256.Sum256(data)
		b.SHA256 = hex.EncodeToString(sum[:])
		b.Copy = path.Join(s.dir(), "backup", j.Node, strings.TrimPrefix(p, "/"))
		mode, err := s.T.Mode(ctx, p)
		if err != nil {
			return fmt.Errorf("back up %s: %w", p, err)
		}
		b.Mode = uint32(mode)
		if err := s.T.WriteFile(ctx, b.Copy, data, 0o600); err != nil {
			return fmt.Errorf("back up %s: %w", p, err)
		}
	}
	j.Backups = append(j.Backups, b)
	return s.Save(ctx, j)
}

// Restore puts every backed-up file back as it was (removing files that did
// not exist), checking each copy against its recorded checksum.
func (s *Store) Restore(ctx context.Context, j *Journal) error {
	return s.RestorePaths(ctx, j)
}

// RestorePaths restores the backups of the given paths only (all when none
// is given); a path never backed up is left alone.
func (s *Store) RestorePaths(ctx context.Context, j *Journal, paths ...string) error {
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	var errs []error
	for i := len(j.Backups) - 1; i >= 0; i-- {
		b := j.Backups[i]
		if len(paths) > 0 && !want[b.Path] {
			continue
		}
		if b.Absent {
			if err := s.T.Remove(ctx, b.Path); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		data, err := s.T.ReadFile(ctx, b.Copy)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", b.Path, err))
			continue
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != b.SHA256 {
			errs = append(errs, fmt.Errorf("restore %s: backup %s does not match its checksum", b.Path, b.Copy))
			continue
		}
		if err := s.T.WriteFile(ctx, b.Path, data, fs.FileMode(b.Mode)); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", b.Path, err))
		}
	}
	return errors.Join(errs...)
}

// FreeBytes returns the space available to root in the file system holding
// dir on the node (dir is created first, so there is something to ask about).
func FreeBytes(ctx context.Context, t transport.Transport, dir string) (int64, error) {
	if _, err := t.Run(ctx, "mkdir", "-p", "--", dir); err != nil {
		return 0, err
	}
	out, err := t.Run(ctx, "df", "--output=avail", "-B1", "--", dir)
	if err != nil {
		return 0, fmt.Errorf("free space under %s: %w", dir, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return 0, fmt.Errorf("free space under %s: df said %q", dir, out)
	}
	n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("free space under %s: df said %q: %w", dir, out, err)
	}
	return n, nil
}

// ErrNoSpace is returned when the node lacks the room a step needs.
var ErrNoSpace = errors.New("not enough free space")

// EnsureFree fails with ErrNoSpace, before anything is written, unless the
// file system holding dir has need bytes free beyond a margin of 64 MiB (so a
// backup or an archive never fills the disk the node runs from).
func EnsureFree(ctx context.Context, t transport.Transport, dir string, need int64) error {
	const margin = 64 << 20
	free, err := FreeBytes(ctx, t, dir)
	if err != nil {
		return err
	}
	if free < need+margin {
		return fmt.Errorf("%w under %s: %d bytes free, %d needed (plus a 64 MiB margin)", ErrNoSpace, dir, free, need)
	}
	return nil
}
