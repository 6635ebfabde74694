package nodefiles

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/unshim/unshim/pkg/nodeconf"
)

// Written is what WriteFiles did to one file.
type Written struct {
	// Path is the node path.
	Path string `json:"path"`
	// Backup is the node path of the previous content, "" when there was none.
	Backup string `json:"backup,omitempty"`
	// Unchanged is true when the file already had this content and was left alone.
	Unchanged bool `json:"unchanged,omitempty"`
}

// BackupSuffix returns the suffix of a backup made at t: .unshim-backup-20060102T150405Z.
func BackupSuffix(t time.Time) string {
	return ".unshim-backup-" + t.UTC().Format("20060102T150405Z")
}

// WriteFiles writes files at their node paths under root. A file that exists
// with other content is first copied to FILE.unshim-backup-TIMESTAMP; a file
// that already has the content is left alone. Each file is written to a
// temporary file and renamed into place.
func WriteFiles(root string, files []nodeconf.File, now time.Time) ([]Written, error) {
	var done []Written
	for _, f := range files {
		dst := Path(root, f.Path)
		w := Written{Path: f.Path}
		old, err := os.ReadFile(dst)
		switch {
		case err == nil && bytes.Equal(old, f.Data):
			w.Unchanged = true
			done = append(done, w)
			continue
		case err == nil:
			st, err := os.Stat(dst)
			if err != nil {
				return done, err
			}
			w.Backup = f.Path + BackupSuffix(now)
			if err := os.WriteFile(Path(root, w.Backup), old, st.Mode().Perm()); err != nil {
				return done, fmt.Errorf("back up %s: %w", f.Path, err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return done, fmt.Errorf("read %s: %w", f.Path, err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return done, fmt.Errorf("create directory for %s: %w", f.Path, err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(dst), ".unshim-*")
		if err != nil {
			return done, fmt.Errorf("write %s: %w", f.Path, err)
		}
		_, werr := tmp.Write(f.Data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), fs.FileMode(f.Perm()))); err != nil {
			os.Remove(tmp.Name())
			return done, fmt.Errorf("write %s: %w", f.Path, err)
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			os.Remove(tmp.Name())
			return done, fmt.Errorf("write %s: %w", f.Path, err)
		}
		done = append(done, w)
	}
	return done, nil
}
