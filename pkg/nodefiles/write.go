package nodefiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/transport"
)

// BackupDir is where WriteFiles keeps its records and backups on the node,
// apart from the switch's (journal.DefaultDir), so that a record of
// `unshim convert --write` is never taken for an unfinished switch.
var BackupDir = path.Join(journal.DefaultDir, "convert")

// Written is what WriteFiles did to one file.
type Written struct {
	// Path is the node path.
	Path string `json:"path"`
	// Backup is the node path of the copy of the previous content, "" when
	// there was none.
	Backup string `json:"backup,omitempty"`
	// Unchanged is true when the file already had this content and was left alone.
	Unchanged bool `json:"unchanged,omitempty"`
}

// RunName names the record of a write made at t: convert-20060102T150405Z.
func RunName(t time.Time) string {
	return "convert-" + t.UTC().Format("20060102T150405Z")
}

// BackupStore is the store of WriteFiles' records on the node t reaches.
func BackupStore(t transport.Transport) *journal.Store {
	return &journal.Store{T: t, Dir: BackupDir}
}

// WriteFiles writes files through t, each replaced atomically. Before it
// changes a file it backs it up the way a switch does (journal.Store's
// BackupFile: one copy of the original with its checksum and mode, or the
// record that it did not exist), in the record named run under BackupDir, so
// that BackupStore(t).Restore of that record puts every file back byte for
// byte. A file that did not exist is recorded as such (Restore removes it)
// only with recordCreated: a directory of files written for review needs no
// record of new files. A file that already has the content is left alone. A
// record of the same name (a second write within a second) is continued, so
// the first copy of each file is kept.
func WriteFiles(ctx context.Context, t transport.Transport, files []nodeconf.File, run string, recordCreated bool) ([]Written, error) {
	st := BackupStore(t)
	j, err := st.Load(ctx, run)
	if err != nil {
		return nil, err
	}
	if j == nil {
		j = journal.New(run, "containerd")
	}
	var done []Written
	for _, f := range files {
		w := Written{Path: f.Path}
		old, err := t.ReadFile(ctx, f.Path)
		switch {
		case err == nil && bytes.Equal(old, f.Data):
			w.Unchanged = true
			done = append(done, w)
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return done, fmt.Errorf("read %s: %w", f.Path, err)
		}
		if err == nil || recordCreated {
			if err := st.BackupFile(ctx, j, f.Path); err != nil {
				return done, err
			}
			w.Backup = backupCopy(j, f.Path)
		}
		if err := t.WriteFile(ctx, f.Path, f.Data, fs.FileMode(f.Perm())); err != nil {
			return done, fmt.Errorf("write %s: %w", f.Path, err)
		}
		done = append(done, w)
	}
	if len(j.Backups) == 0 {
		return done, nil // nothing changed: no record
	}
	j.Finished = true
	return done, st.Save(ctx, j)
}

// backupCopy is the copy j keeps of p, "" when p did not exist.
func backupCopy(j *journal.Journal, p string) string {
	for _, b := range j.Backups {
		if b.Path == p {
			return b.Copy
		}
	}
	return ""
}
