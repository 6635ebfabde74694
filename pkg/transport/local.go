package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// Local acts on the machine unshim runs on. Root, when set, is where the
// node's file system is (mounted or copied elsewhere): every file path is
// taken under it, symlinks followed inside it (Resolve), never out to this
// machine's own files; commands run as they are.
type Local struct {
	Root string
}

var _ Transport = (*Local)(nil)

func (l *Local) path(p string) string {
	if l.Root == "" {
		return p
	}
	if r, err := Resolve(l.Root, p); err == nil {
		return r
	}
	return filepath.Join(l.Root, p) // the error shows when the file is used
}

// linkPath is path for the file itself: its directory resolved under Root,
// a final symlink not followed.
func (l *Local) linkPath(p string) string {
	dir, base := filepath.Split(filepath.Clean("/" + p))
	return filepath.Join(l.path(dir), base)
}

// Run runs argv directly (no shell).
func (l *Local) Run(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return out, &ExecError{Argv: argv, Output: out, Err: err}
	}
	return out, nil
}

// ReadFile reads a file under Root.
func (l *Local) ReadFile(_ context.Context, path string) ([]byte, error) {
	return os.ReadFile(l.path(path))
}

// WriteFile writes a file under Root atomically and syncs it.
func (l *Local) WriteFile(_ context.Context, path string, data []byte, perm os.FileMode) error {
	p := l.path(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".unshim-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Remove deletes a file under Root.
func (l *Local) Remove(_ context.Context, path string) error {
	if err := os.Remove(l.linkPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Mode returns the permission bits of a file under Root.
func (l *Local) Mode(_ context.Context, path string) (os.FileMode, error) {
	st, err := os.Stat(l.path(path))
	if err != nil {
		return 0, err
	}
	return st.Mode().Perm(), nil
}

// LocalRoot is Root, or / when unset.
func (l *Local) LocalRoot() string {
	if l.Root == "" {
		return "/"
	}
	return l.Root
}

// DialUnix dials a unix socket under Root.
func (l *Local) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	return dialUnder(ctx, l.LocalRoot(), path)
}
