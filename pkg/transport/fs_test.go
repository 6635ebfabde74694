package transport

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func writeTree(t *testing.T, root string, files map[string]string, links map[string]string) {
	t.Helper()
	for p, d := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range links {
		full := filepath.Join(root, link)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDirFS: a node's file system read through DirFS behaves as an fs.FS
// (testing/fstest), and follows symlinks as the node does: an absolute link
// from the node's root (Debian's /var/run -> /run), ".." never above it, so
// nothing of this machine is read in the node's place.
func TestDirFS(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/docker/daemon.json":           `{"log-driver":"json-file"}`,
		"etc/containerd/config.toml":       "version = 2\n",
		"run/docker.pid":                   "42\n",
		"real/default/kubelet":             "KUBELET_EXTRA_ARGS=\n",
		"var/lib/kubelet/config.yaml":      "kind: KubeletConfiguration\n",
		"usr/lib/systemd/system/x.service": "[Service]\n",
	}, nil)
	if err := fstest.TestFS(DirFS(root), "etc/docker/daemon.json", "etc/containerd/config.toml", "run/docker.pid", "var/lib/kubelet/config.yaml"); err != nil {
		t.Fatal(err)
	}
	writeTree(t, root, nil, map[string]string{
		"var/run":      "/run",                  // absolute: the node's /run
		"etc/default":  "../real/default",       // relative
		"escape":       "../../../../../../etc", // climbs no higher than the node's /
		"etc/hostname": "/nonexistent-on-purpose/hostname",
	})
	fsys := DirFS(root)
	tests := []struct {
		name, want string
	}{
		{"var/run/docker.pid", "42\n"},
		{"etc/default/kubelet", "KUBELET_EXTRA_ARGS=\n"},
		{"escape/docker/daemon.json", `{"log-driver":"json-file"}`}, // the node's /etc, not this machine's
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := fs.ReadFile(fsys, tt.name)
			if err != nil || string(b) != tt.want {
				t.Errorf("ReadFile(%s) = %q, %v; want %q", tt.name, b, err, tt.want)
			}
			if st, err := fs.Stat(fsys, tt.name); err != nil || st.Size() != int64(len(tt.want)) {
				t.Errorf("Stat(%s) = %v, %v", tt.name, st, err)
			}
		})
	}
	if _, err := fs.ReadFile(fsys, "etc/hostname"); !os.IsNotExist(err) {
		t.Errorf("a link to a missing node file: %v, want not-exist (this machine's file must not be read)", err)
	}
	if _, err := fs.ReadFile(fsys, "/etc/passwd"); err == nil {
		t.Error("an absolute fs.FS name was accepted")
	}
	entries, err := fs.ReadDir(fsys, "var/run")
	if err != nil || len(entries) != 1 || entries[0].Name() != "docker.pid" {
		t.Errorf("ReadDir(var/run) = %v, %v; want the node's /run", entries, err)
	}
}

// TestTransportFS: the local and nsenter transports give their node's file
// system: Local under Root, Nsenter under /proc/PID/root (this process's
// own root here, so the same files as Local{Root: "/"}).
func TestTransportFS(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/containerd/config.toml": "version = 3\n"}, nil)
	var _ FileSystem = (*Local)(nil)
	var _ FileSystem = (*Nsenter)(nil)
	if b, err := fs.ReadFile((&Local{Root: root}).FS(), "etc/containerd/config.toml"); err != nil || string(b) != "version = 3\n" {
		t.Errorf("Local FS: %q, %v", b, err)
	}
	self := &Nsenter{PID: os.Getpid()}
	want, err := os.ReadFile("/proc/self/root" + root + "/etc/containerd/config.toml")
	if err != nil {
		t.Fatalf("no /proc here: %v", err)
	}
	rel := root[1:] + "/etc/containerd/config.toml"
	if b, err := fs.ReadFile(self.FS(), rel); err != nil || string(b) != string(want) {
		t.Errorf("Nsenter FS %s: %q, %v; want %q", rel, b, err, want)
	}
}
