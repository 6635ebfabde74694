package nodefiles

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/transport"
)

func write(t *testing.T, root string, files map[string]string) {
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
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		check func(t *testing.T, n *Node)
	}{
		{"unit, drop-in and env file", map[string]string{
			"/lib/systemd/system/docker.service":                    "[Service]\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS\n",
			"/etc/default/docker":                                   "DOCKER_OPTS=\"--registry-mirror=https://m.example.com --config-file=/etc/docker/alt.json\"\n",
			"/etc/docker/alt.json":                                  `{"debug": true}`,
			"/etc/docker/daemon.json":                               `{"not-read": true}`,
			"/etc/systemd/system/docker.service.d/10-proxy.conf":    "[Service]\nEnvironment=HTTPS_PROXY=http://p:1\n",
			"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": "[Service]\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nExecStart=\nExecStart=/usr/bin/kubelet --config=/etc/kubelet.yaml $KUBELET_KUBEADM_ARGS\n",
			"/var/lib/kubelet/kubeadm-flags.env":                    "KUBELET_KUBEADM_ARGS=--network-plugin=cni\n",
			"/etc/kubelet.yaml":                                     "cgroupDriver: systemd\n",
			"/usr/lib/cni/bridge":                                   "x",
		}, func(t *testing.T, n *Node) {
			d := n.Input.Daemon
			if got := d.Strings("registry-mirrors"); len(got) != 1 || got[0] != "https://m.example.com" {
				t.Errorf("registry-mirrors = %v", got)
			}
			if d.Get("debug") == nil || d.Get("debug").Source != "/etc/docker/alt.json" || d.Get("not-read") != nil {
				t.Errorf("--config-file not followed: %v", d.Keys())
			}
			if n.Input.DockerEnvironment["HTTPS_PROXY"] != "http://p:1" {
				t.Errorf("environment = %v", n.Input.DockerEnvironment)
			}
			if n.Input.KubeletConfig == nil || n.Input.KubeletConfig.CgroupDriver != "systemd" {
				t.Errorf("kubelet --config not followed: %+v", n.Input.KubeletConfig)
			}
			if len(n.Input.KubeletFlags) != 2 || n.KubeletBinary != "/usr/bin/kubelet" {
				t.Errorf("kubelet flags = %+v, binary %q", n.Input.KubeletFlags, n.KubeletBinary)
			}
			if !n.Input.ExistingDirs["/usr/lib/cni"] || n.Input.ExistingDirs["/opt/cni/bin"] {
				t.Errorf("dirs = %v", n.Input.ExistingDirs)
			}
		}},
		{"no unit: DOCKER_OPTS", map[string]string{
			"/etc/sysconfig/docker": "DOCKER_OPTS='--insecure-registry r:5000 --debug'\n",
		}, func(t *testing.T, n *Node) {
			if got := n.Input.Daemon.Strings("insecure-registries"); len(got) != 1 || got[0] != "r:5000" {
				t.Errorf("insecure-registries = %v", got)
			}
		}},
		{"empty node", nil, func(t *testing.T, n *Node) {
			if len(n.Input.Daemon.Keys()) != 0 || n.DaemonJSONPath != "" {
				t.Errorf("keys = %v", n.Input.Daemon.Keys())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tt.files)
			n, err := Load(root)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, n)
		})
	}
}

// TestWriteFiles: through a transport, each changed file is backed up the
// way a switch backs up (journal.Store: a checksummed copy with its mode, or
// the record that it did not exist) before it is replaced, and restoring the
// record puts the node back byte for byte, modes included, created files
// removed; an unchanged file is left alone and needs no backup.
func TestWriteFiles(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	write(t, root, map[string]string{"/etc/containerd/config.toml": "old\n", "/etc/containerd/certs.d/r/hosts.toml": "same\n"})
	if err := os.Chmod(filepath.Join(root, "etc/containerd/config.toml"), 0o640); err != nil {
		t.Fatal(err)
	}
	before := tree(t, root)
	tr := &transport.Local{Root: root}
	files := []nodeconf.File{
		{Path: "/etc/containerd/config.toml", Data: []byte("new\n")},
		{Path: "/etc/containerd/certs.d/r/client.key", Data: []byte("k")},
		{Path: "/etc/containerd/certs.d/r/hosts.toml", Data: []byte("same\n")},
	}
	run := RunName(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	if run != "convert-20261123T090000Z" {
		t.Errorf("run = %s", run)
	}
	done, err := WriteFiles(ctx, tr, files, run, true)
	if err != nil {
		t.Fatal(err)
	}
	wantCopy := BackupDir + "/backup/" + run + "/etc/containerd/config.toml"
	if len(done) != 3 || done[0].Backup != wantCopy || done[1].Backup != "" || !done[2].Unchanged {
		t.Errorf("done = %+v", done)
	}
	if b, _ := os.ReadFile(filepath.Join(root, wantCopy)); string(b) != "old\n" {
		t.Errorf("backup = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml")); string(b) != "new\n" {
		t.Errorf("config.toml = %q", b)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/containerd/certs.d/r/client.key")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %v", st)
	}
	// A second write in the same second keeps the first, original copy.
	if _, err := WriteFiles(ctx, tr, []nodeconf.File{{Path: "/etc/containerd/config.toml", Data: []byte("newer\n")}}, run, true); err != nil {
		t.Fatal(err)
	}
	st := BackupStore(tr)
	j, err := st.Load(ctx, run)
	if err != nil || j == nil || !j.Finished || len(j.Backups) != 2 {
		t.Fatalf("record %s: %+v, %v", st.Path(run), j, err)
	}
	if err := st.Restore(ctx, j); err != nil {
		t.Fatal(err)
	}
	after := tree(t, root)
	for p := range after {
		if strings.HasPrefix("/"+p, BackupDir+"/") {
			delete(after, p) // the record and its copies stay
		}
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after restore\n%v\nwant\n%v", after, before)
	}
}

// TestWriteFilesNewDirectory: files written into an empty directory for
// review need no record (recordCreated false): nothing but the files appears.
func TestWriteFilesNewDirectory(t *testing.T) {
	out := t.TempDir()
	if _, err := WriteFiles(context.Background(), &transport.Local{Root: out}, []nodeconf.File{{Path: "/etc/containerd/config.toml", Data: []byte("x")}}, RunName(time.Now()), false); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, out); len(got) != 1 || got["etc/containerd/config.toml"] == "" {
		t.Errorf("files = %v", got)
	}
}

// tree maps each regular file under root to its mode and content.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = fmt.Sprintf("%v %q", info.Mode().Perm(), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"/run/docker.sock.txt": "x", "/real/etc/containerd/config.toml": "y"})
	for link, target := range map[string]string{
		"/var/run":        "/run",                   // absolute: from the node's root
		"/etc/containerd": "../real/etc/containerd", // relative
		"/escape":         "../../../../../etc",     // cannot climb above root
		"/etc/default":    "/real/default",          // absolute, written through below
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]string{
		"/var/run/docker.sock.txt":    "/run/docker.sock.txt",
		"/etc/containerd/config.toml": "/real/etc/containerd/config.toml",
		"/escape/passwd":              "/etc/passwd",
		"/missing/dir/file":           "/missing/dir/file",
	}
	for in, want := range tests {
		got, err := Resolve(root, in)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("Resolve(%s) = %s, %v; want %s", in, got, err, filepath.Join(root, want))
		}
	}
	// Writing through the link lands inside root.
	if _, err := WriteFiles(context.Background(), &transport.Local{Root: root}, []nodeconf.File{{Path: "/etc/containerd/config.toml", Data: []byte("new")}}, RunName(time.Now()), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "real/etc/containerd/config.toml")); string(b) != "new" {
		t.Errorf("write through link = %q", b)
	}
	// An absolute link is followed from the node's root, not this machine's.
	if err := os.MkdirAll(filepath.Join(root, "real/default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (&transport.Local{Root: root}).WriteFile(context.Background(), "/etc/default/kubelet", []byte("K"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "real/default/kubelet")); string(b) != "K" {
		t.Errorf("write through an absolute link = %q", b)
	}
	if got, _ := Resolve("/", "/etc/../etc/hosts"); got != "/etc/hosts" {
		t.Errorf("Resolve on / = %s", got)
	}
}

func TestParseVersionOutput(t *testing.T) {
	for out, want := range map[string]string{
		"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3": "1.6.20",
		"containerd github.com/containerd/containerd/v2 v2.2.0 abcdef":                "2.2.0",
		"Kubernetes v1.23.17":            "1.23.17",
		"Kubernetes v1.29.1-eks-61c0bbb": "1.29.1",
		"v2.2.0":                         "2.2.0", "1.7": "1.7",
	} {
		v, err := ParseVersionOutput(out)
		if err != nil || v.String() != want {
			t.Errorf("ParseVersionOutput(%q) = %s, %v; want %s", out, v, err, want)
		}
	}
	if _, err := ParseVersionOutput("containerd github.com/containerd/containerd"); err == nil {
		t.Error("no version accepted")
	}
}

func TestReadMounts(t *testing.T) {
	root := t.TempDir()
	if m, err := ReadMounts(transport.DirFS(root)); err != nil || m != nil {
		t.Errorf("no mount tables: %v, %v; want nil (unknown)", m, err)
	}
	write(t, root, map[string]string{
		"/etc/fstab":     "# comment\nUUID=1 / ext4 defaults 0 1\nUUID=2 /data/docker xfs defaults 0 2\n/dev/sdb2 none swap sw 0 0\nUUID=3 /mnt/my\\040disk ext4 defaults 0 2\n",
		"/proc/1/mounts": "/dev/sda1 / ext4 rw 0 0\n/dev/sdc1 /var/lib/docker xfs rw 0 0\n",
	})
	m, err := ReadMounts(transport.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	want := "/ /data/docker /mnt/my disk /var/lib/docker"
	if got := strings.Join(m, " "); got != want {
		t.Errorf("mounts = %q, want %q", got, want)
	}
}

// TestLoadRHEL7: the stock /etc/sysconfig/docker of RHEL/CentOS 7 loads, its
// shell block is noted, and the flags from $OPTIONS name that file.
func TestLoadRHEL7(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"/usr/lib/systemd/system/docker.service": "[Service]\nEnvironmentFile=-/etc/sysconfig/docker\nEnvironment=OPTIONS=--debug\nExecStart=/usr/bin/dockerd-current --exec-opt native.cgroupdriver=systemd $OPTIONS $ADD_REGISTRY\n",
		"/etc/sysconfig/docker":                  "OPTIONS='--selinux-enabled --signature-verification=false'\nif [ -z \"${DOCKER_CERT_PATH}\" ]; then\n    DOCKER_CERT_PATH=/etc/docker\nfi\nADD_REGISTRY='--add-registry registry.access.redhat.com'\n",
		"/proc/sys/kernel/osrelease":             "3.10.0-1160.el7.x86_64\n",
	})
	n, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	d := n.Input.Daemon
	for key, src := range map[string]string{"selinux-enabled": "/etc/sysconfig/docker", "signature-verification": "/etc/sysconfig/docker", "add-registry": "/etc/sysconfig/docker", "exec-opts": "/usr/lib/systemd/system/docker.service"} {
		if s := d.Get(key); s == nil || s.Source != src {
			t.Errorf("%s = %+v, want set in %s", key, s, src)
		}
	}
	if d.Get("debug") != nil {
		t.Error("OPTIONS from Environment= won over the EnvironmentFile (systemd.exec(5): the file wins)")
	}
	if len(n.Input.Notes) != 2 || !strings.Contains(n.Input.Notes[0].Key, "/etc/sysconfig/docker line 2") {
		t.Errorf("notes = %+v", n.Input.Notes)
	}
	if n.Input.KernelVersion == nil || n.Input.KernelVersion.String() != "3.10.0" {
		t.Errorf("kernel = %v", n.Input.KernelVersion)
	}
}
