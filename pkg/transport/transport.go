// Package transport is how unshim acts on a node: run a command (an argument
// list, never a shell string) and read or write a file. Every change the
// migration makes to a node goes through a Transport, so the same phases run
// on the node itself, over SSH, or from a pod.
package transport

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
)

// Transport runs commands and moves files on one node.
type Transport interface {
	// Run runs argv and returns its combined output; a failure is an *ExecError.
	Run(ctx context.Context, argv ...string) ([]byte, error)
	// ReadFile returns a file's content; a missing file gives an error that
	// satisfies errors.Is(err, fs.ErrNotExist).
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// WriteFile replaces a file atomically (write aside, then rename), creating its directory.
	WriteFile(ctx context.Context, path string, data []byte, perm os.FileMode) error
	// Remove deletes a file; a missing file is not an error.
	Remove(ctx context.Context, path string) error
	// Mode returns a file's permission bits.
	Mode(ctx context.Context, path string) (os.FileMode, error)
}

// ExecError is a command that failed on a node, with what it printed.
type ExecError struct {
	Argv   []string
	Output []byte
	Err    error
}

func (e *ExecError) Error() string {
	out := strings.TrimSpace(string(e.Output))
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	if out == "" {
		return fmt.Sprintf("run %q: %v", strings.Join(e.Argv, " "), e.Err)
	}
	return fmt.Sprintf("run %q: %v\n%s", strings.Join(e.Argv, " "), e.Err, out)
}

func (e *ExecError) Unwrap() error { return e.Err }

// Mounted is a transport whose node file system is visible from here, under
// LocalRoot: files can be read with the os package and the node's unix
// sockets dialed at LocalRoot()+path.
type Mounted interface {
	LocalRoot() string
}

// Dialer reaches a unix socket of the node (containerd's CRI, Docker's API).
type Dialer interface {
	DialUnix(ctx context.Context, path string) (net.Conn, error)
}

// dialUnder dials the unix socket path of a node whose root is visible at root.
func dialUnder(ctx context.Context, root, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", strings.TrimSuffix(root, "/")+path)
}
