package nodefiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unshim/unshim/pkg/nodeconf"
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

func TestWriteFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"/etc/containerd/config.toml": "old\n"})
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	files := []nodeconf.File{{Path: "/etc/containerd/config.toml", Data: []byte("new\n")}, {Path: "/etc/containerd/certs.d/r/client.key", Data: []byte("k")}}
	done, err := WriteFiles(root, files, now)
	if err != nil {
		t.Fatal(err)
	}
	if done[0].Backup != "/etc/containerd/config.toml.unshim-backup-20261123T090000Z" || done[1].Backup != "" {
		t.Errorf("done = %+v", done)
	}
	if b, _ := os.ReadFile(filepath.Join(root, done[0].Backup)); string(b) != "old\n" {
		t.Errorf("backup = %q", b)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/containerd/certs.d/r/client.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %v", st.Mode())
	}
	done, err = WriteFiles(root, files, now.Add(time.Hour))
	if err != nil || !done[0].Unchanged || done[0].Backup != "" {
		t.Errorf("second write = %+v, %v", done, err)
	}
}

func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"/run/docker.sock.txt": "x", "/real/etc/containerd/config.toml": "y"})
	for link, target := range map[string]string{
		"/var/run":        "/run",                   // absolute: from the node's root
		"/etc/containerd": "../real/etc/containerd", // relative
		"/escape":         "../../../../../etc",     // cannot climb above root
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
	if _, err := WriteFiles(root, []nodeconf.File{{Path: "/etc/containerd/config.toml", Data: []byte("new")}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "real/etc/containerd/config.toml")); string(b) != "new" {
		t.Errorf("write through link = %q", b)
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
	if m, err := ReadMounts(root); err != nil || m != nil {
		t.Errorf("no mount tables: %v, %v; want nil (unknown)", m, err)
	}
	write(t, root, map[string]string{
		"/etc/fstab":     "# comment\nUUID=1 / ext4 defaults 0 1\nUUID=2 /data/docker xfs defaults 0 2\n/dev/sdb2 none swap sw 0 0\nUUID=3 /mnt/my\\040disk ext4 defaults 0 2\n",
		"/proc/1/mounts": "/dev/sda1 / ext4 rw 0 0\n/dev/sdc1 /var/lib/docker xfs rw 0 0\n",
	})
	m, err := ReadMounts(root)
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
