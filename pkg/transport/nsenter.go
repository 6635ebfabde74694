package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
)

// Nsenter acts on a machine whose init process the host can see: a lab
// node's systemd, or the host itself from a privileged hostPID pod (PID 1).
// Commands run in all of the target's namespaces through nsenter; files are
// reached through /proc/PID/root, the target's own root file system.
type Nsenter struct {
	PID int
}

var _ Transport = (*Nsenter)(nil)

func (n *Nsenter) root() string { return "/proc/" + strconv.Itoa(n.PID) + "/root" }

// Run runs argv inside the target with a plain environment.
func (n *Nsenter) Run(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	c := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(n.PID), "--all", "--"}, argv...)...)
	c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
	out, err := c.CombinedOutput()
	if err != nil {
		return out, &ExecError{Argv: argv, Output: out, Err: err}
	}
	return out, nil
}

func (n *Nsenter) local() *Local { return &Local{Root: n.root()} }

// ReadFile reads a file of the target.
func (n *Nsenter) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return n.local().ReadFile(ctx, path)
}

// WriteFile writes a file of the target atomically.
func (n *Nsenter) WriteFile(ctx context.Context, path string, data []byte, perm os.FileMode) error {
	if _, err := os.Stat(n.root()); err != nil {
		return fmt.Errorf("write %s: target pid %d: %w", path, n.PID, err)
	}
	return n.local().WriteFile(ctx, path, data, perm)
}

// Remove deletes a file of the target.
func (n *Nsenter) Remove(ctx context.Context, path string) error {
	return n.local().Remove(ctx, path)
}

// Mode returns the permission bits of a file of the target.
func (n *Nsenter) Mode(ctx context.Context, path string) (os.FileMode, error) {
	return n.local().Mode(ctx, path)
}

// LocalRoot is the target's root file system as the host sees it.
func (n *Nsenter) LocalRoot() string { return n.root() }

// DialUnix dials a unix socket of the target through its root.
func (n *Nsenter) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	return dialUnder(ctx, n.root(), path)
}
