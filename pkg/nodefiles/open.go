package nodefiles

import (
	"context"
	"io/fs"
	"os"

	"github.com/unshim/unshim/pkg/transport"
)

// Files is a node's file system as this machine reads it: one way to read a
// node, whatever the transport.
type Files struct {
	// FS is the node's file system.
	FS fs.FS
	// Root is where FS is a directory here (the node's root, a mount,
	// /proc/PID/root, or the copy), for what needs a path.
	Root string
	// Copy is true when Root is a copy of some of the node's files (Mirror),
	// not the node itself: its binaries, sockets and /proc are not there.
	Copy    bool
	cleanup func()
}

// Close removes the copy, if one was made.
func (f *Files) Close() {
	if f.cleanup != nil {
		f.cleanup()
		f.cleanup = nil
	}
}

// Open gives the file system of the node t reaches: the transport's own when
// it has one (transport.FileSystem and transport.Mounted: the node's root is
// visible here), else a copy of the files Load and the node check read, made
// with one `tar` run on the node (Mirror), behind the same fs.FS. name only
// names the copy's directory. Close removes the copy.
func Open(ctx context.Context, t transport.Transport, name string) (*Files, error) {
	if m, ok := t.(interface {
		transport.FileSystem
		transport.Mounted
	}); ok {
		return &Files{FS: m.FS(), Root: m.LocalRoot()}, nil
	}
	dir, err := os.MkdirTemp("", "unshim-node-"+name+"-")
	if err != nil {
		return nil, err
	}
	if err := Mirror(ctx, t, dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Files{FS: transport.DirFS(dir), Root: dir, Copy: true, cleanup: func() { os.RemoveAll(dir) }}, nil
}
