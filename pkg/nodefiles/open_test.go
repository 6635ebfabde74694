package nodefiles

import (
	"context"
	"io/fs"
	"os"
	"testing"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/transport"
)

// noFS hides the local transport's file system, as an SSH transport has none.
type noFS struct{ transport.Transport }

// TestOpen: one way to read a node whatever the transport. A transport whose
// node root is visible here gives its own file system (no copy); one without
// (SSH, here the local transport with its file system hidden) is read
// through a tar copy behind the same fs.FS, and both read the same files;
// Close removes the copy.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	write(t, root, map[string]string{"/etc/docker/daemon.json": `{"exec-opts":["native.cgroupdriver=systemd"]}`})
	f, err := Open(ctx, &transport.Local{Root: root}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if f.Copy || f.Root != root {
		t.Errorf("local: copy %v, root %s; want the node's root %s", f.Copy, f.Root, root)
	}
	n, err := LoadFS(f.FS)
	if err != nil || n.DaemonJSONPath != DaemonJSON {
		t.Errorf("LoadFS: %+v, %v", n, err)
	}
	f.Close()

	testutil.RequireBinary(t, "tar")
	c, err := Open(ctx, noFS{&transport.Local{}}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Copy || c.Root == "/" {
		t.Errorf("through a transport without a file system: copy %v, root %s; want a copy", c.Copy, c.Root)
	}
	for _, p := range []string{"/etc/hostname", KernelRelease} {
		want, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if got, err := fs.ReadFile(c.FS, Rel(p)); err != nil || string(got) != string(want) {
			t.Errorf("%s through the copy = %q, %v; want %q", p, got, err, want)
		}
	}
	c.Close()
	if _, err := os.Stat(c.Root); !os.IsNotExist(err) {
		t.Errorf("copy %s left after Close: %v", c.Root, err)
	}
}
