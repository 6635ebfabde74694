package convert_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/cmd/unshim/app"
	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/cmd/unshim/convert"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/transport"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// node is a Docker node's files: a Docker-packaged containerd config with
// the CRI plugin disabled, daemon.json, certs, a proxy drop-in, kubelet flags.
var node = map[string]string{
	"/etc/containerd/config.toml":                          "disabled_plugins = [\"cri\"]\n",
	"/etc/docker/daemon.json":                              `{"exec-opts":["native.cgroupdriver=systemd"],"registry-mirrors":["https://mirror.example.com"],"insecure-registries":["harbor.local:5000"],"log-opts":{"max-size":"50m","max-file":"4"},"live-restore":true}`,
	"/etc/docker/certs.d/harbor.local:5000/ca.crt":         "CA\n",
	"/etc/systemd/system/docker.service.d/http-proxy.conf": "[Service]\nEnvironment=\"HTTP_PROXY=http://proxy:3128\"\n",
	"/var/lib/kubelet/kubeadm-flags.env":                   "KUBELET_KUBEADM_ARGS=\"--network-plugin=cni --pod-infra-container-image=registry.k8s.io/pause:3.6\"\n",
	"/opt/cni/bin/bridge":                                  "x",
	"/etc/cni/net.d/10-bridge.conf":                        "{}",
}

// snapshot hashes every file under dir, to prove a command changed nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	return out
}

func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := app.Run(context.Background(), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}, "unshim", args)
	return code, stdout.String(), stderr.String()
}

func TestConvertOut(t *testing.T) {
	for _, v := range []string{"1.6.20", "2.2.0"} {
		t.Run(v, func(t *testing.T) {
			root, out := t.TempDir(), t.TempDir()
			testutil.WriteTree(t, root, node, 0o644)
			before := snapshot(t, root)
			code, stdout, stderr := run("convert", "--root", root, "--containerd-version", v, "--kubelet-version", "1.23.17", "--out", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got := map[string]string{}
			var names []string
			for rel := range snapshot(t, out) {
				b, _ := os.ReadFile(filepath.Join(out, rel))
				got["/"+rel] = string(b)
				names = append(names, "/"+rel)
			}
			sort.Strings(names)
			var all bytes.Buffer
			for _, n := range names {
				fmt.Fprintf(&all, "==> %s <==\n%s\n", n, got[n])
			}
			all.WriteString("==> stdout <==\n" + strings.ReplaceAll(stdout, out, "OUT"))
			golden := filepath.Join("testdata", "out-"+v+".golden")
			if *update {
				if err := os.WriteFile(golden, all.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if want, err := os.ReadFile(golden); err != nil || !bytes.Equal(want, all.Bytes()) {
				t.Errorf("--out differs from %s (go test -update):\n%s", golden, all.String())
			}
			if !equal(before, snapshot(t, root)) {
				t.Error("--out changed the node")
			}
		})
	}
}

func TestConvertJSON(t *testing.T) {
	root := t.TempDir()
	testutil.WriteTree(t, root, node, 0o644)
	code, stdout, stderr := run("convert", "--root", root, "--containerd-version", "1.7.0", "--kubelet-version", "1.23.17", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Files    []string       `json:"files"`
		Kubelet  map[string]any `json:"kubelet"`
		Unmapped []struct {
			Key, Value, Reason string
		} `json:"unmapped"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	wantFiles := []string{"/etc/containerd/certs.d/docker.io/hosts.toml", "/etc/containerd/certs.d/harbor.local:5000/ca.crt",
		"/etc/containerd/certs.d/harbor.local:5000/hosts.toml", "/etc/containerd/config.toml", "/etc/systemd/system/containerd.service.d/http-proxy.conf"}
	if strings.Join(res.Files, " ") != strings.Join(wantFiles, " ") {
		t.Errorf("files = %v", res.Files)
	}
	for k, v := range map[string]any{"cgroupDriver": "systemd", "containerLogMaxSize": "50M", "containerLogMaxFiles": float64(4), "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock"} {
		if res.Kubelet[k] != v {
			t.Errorf("kubelet[%s] = %v, want %v", k, res.Kubelet[k], v)
		}
	}
	found := false
	for _, u := range res.Unmapped {
		found = found || (u.Key == "live-restore" && u.Value == "true" && u.Reason != "")
	}
	if !found {
		t.Errorf("live-restore not reported as unmapped: %+v", res.Unmapped)
	}
}

// TestConvertWriteBacksUp: --write goes through the local transport and backs
// every file it changes up first, as a switch does (pkg/journal's backups),
// so restoring its record puts the node back byte for byte.
func TestConvertWriteBacksUp(t *testing.T) {
	root := t.TempDir()
	testutil.WriteTree(t, root, node, 0o644)
	original := snapshot(t, root)
	code, stdout, stderr := run("convert", "--root", root, "--containerd-version", "1.6.20", "--kubelet-version", "1.23.17", "--write", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res convert.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(res.Backups) != 1 || !strings.HasPrefix(res.Backups[0], nodefiles.BackupDir+"/backup/convert-") || !strings.HasSuffix(res.Backups[0], "/etc/containerd/config.toml") {
		t.Fatalf("backups = %v", res.Backups)
	}
	if b, _ := os.ReadFile(filepath.Join(root, res.Backups[0])); string(b) != node["/etc/containerd/config.toml"] {
		t.Errorf("backup holds %q", b)
	}
	if !strings.Contains(stderr, "backed up /etc/containerd/config.toml as "+res.Backups[0]) {
		t.Errorf("stderr does not say what was backed up: %q", stderr)
	}
	if _, err := os.Stat(filepath.Join(root, res.BackupRecord)); err != nil || !strings.HasPrefix(res.BackupRecord, nodefiles.BackupDir+"/") {
		t.Errorf("record of the backups %q: %v", res.BackupRecord, err)
	}
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml"))
	if !bytes.Contains(cfg, []byte("version = 2")) || bytes.Contains(cfg, []byte(`"cri"`)) {
		t.Errorf("config.toml not replaced:\n%s", cfg)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/containerd/certs.d/harbor.local:5000/ca.crt")); err != nil {
		t.Errorf("CA not copied: %v", err)
	}
	// A second run finds everything in place: nothing written, no new backup.
	before := snapshot(t, root)
	code, stdout, _ = run("convert", "--root", root, "--containerd-version", "1.6.20", "--kubelet-version", "1.23.17", "--write", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"files": []`) {
		t.Errorf("second --write: exit %d\n%s", code, stdout)
	}
	if !equal(before, snapshot(t, root)) {
		t.Error("second --write changed the node")
	}
	// The record restores the node as it was, byte for byte.
	tr := &transport.Local{Root: root}
	st := nodefiles.BackupStore(tr)
	j, err := st.Load(context.Background(), strings.TrimSuffix(path.Base(res.BackupRecord), ".json"))
	if err != nil || j == nil {
		t.Fatalf("record %s: %v", res.BackupRecord, err)
	}
	if err := st.Restore(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	restored := snapshot(t, root)
	for p := range restored {
		if strings.HasPrefix("/"+p, nodefiles.BackupDir+"/") {
			delete(restored, p)
		}
	}
	if !equal(original, restored) {
		t.Errorf("after restoring %s:\n%v\nwant\n%v", res.BackupRecord, restored, original)
	}
}

func TestConvertDiff(t *testing.T) {
	root := t.TempDir()
	testutil.WriteTree(t, root, node, 0o644)
	before := snapshot(t, root)
	code, stdout, stderr := run("convert", "--root", root, "--containerd-version", "1.6.20", "--kubelet-version", "1.23.17", "--diff")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"--- /etc/containerd/config.toml\n+++ /etc/containerd/config.toml\n", "-disabled_plugins = [\"cri\"]\n", "+version = 2\n",
		"--- /dev/null\n+++ /etc/containerd/certs.d/docker.io/hosts.toml\n", "+  SystemdCgroup = true\n"} {
		if !strings.Contains(stdout, strings.Replace(want, "+  SystemdCgroup", "+        SystemdCgroup", 1)) {
			t.Errorf("diff lacks %q:\n%s", want, stdout)
		}
	}
	if !equal(before, snapshot(t, root)) {
		t.Error("--diff changed the node")
	}
}

// TestConvertBadInput: bad input is exit 2, names the file and the key, and
// writes nothing (neither --out nor --write).
func TestConvertBadInput(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             []string
	}{
		{"bad JSON", "/etc/docker/daemon.json", `{"exec-opts": [}`, []string{"/etc/docker/daemon.json", "invalid JSON"}},
		{"unknown key", "/etc/docker/daemon.json", `{"registry-mirrors": [], "insecure-registry": ["a"]}`, []string{"/etc/docker/daemon.json", `"insecure-registry"`, "unknown key"}},
		{"wrong type", "/etc/docker/daemon.json", `{"max-concurrent-downloads": "10"}`, []string{"/etc/docker/daemon.json", `"max-concurrent-downloads"`, "want an integer"}},
		{"bad value", "/etc/docker/daemon.json", `{"registry-mirrors": ["mirror.example.com"]}`, []string{"/etc/docker/daemon.json", `"registry-mirrors"`}},
		{"bad kubelet flags", "/var/lib/kubelet/kubeadm-flags.env", "KUBELET_KUBEADM_ARGS=\"--network-plugin=cni\n", []string{"/var/lib/kubelet/kubeadm-flags.env", `"KUBELET_KUBEADM_ARGS"`}},
		{"bad kubelet config", "/var/lib/kubelet/config.yaml", "containerLogMaxFiles: many\n", []string{"/var/lib/kubelet/config.yaml", `"containerLogMaxFiles"`}},
		{"unknown dockerd flag", "/etc/systemd/system/docker.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --registry-mirrors=x\n", []string{"/etc/systemd/system/docker.service.d/override.conf", `"--registry-mirrors"`}},
		{"flag and file", "/etc/systemd/system/docker.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --live-restore\n", []string{"/etc/docker/daemon.json", `"live-restore"`, "both"}},
	}
	for _, tt := range tests {
		for _, mode := range []string{"--out", "--write"} {
			t.Run(tt.name+mode, func(t *testing.T) {
				root, out := t.TempDir(), t.TempDir()
				testutil.WriteTree(t, root, node, 0o644)
				testutil.WriteTree(t, root, map[string]string{tt.file: tt.data}, 0o644)
				before := snapshot(t, root)
				args := []string{"convert", "--root", root, "--containerd-version", "2.2.0", mode}
				if mode == "--out" {
					args = append(args, out)
				}
				code, stdout, stderr := run(args...)
				if code != 2 {
					t.Errorf("exit %d, want 2\n%s", code, stdout)
				}
				for _, w := range tt.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr %q lacks %q", stderr, w)
					}
				}
				if !equal(before, snapshot(t, root)) {
					t.Error("the node changed")
				}
				if n := len(snapshot(t, out)); n != 0 {
					t.Errorf("%d files written to --out", n)
				}
			})
		}
	}
}

func TestConvertFlags(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"exclusive", []string{"--out", t.TempDir(), "--write", "--containerd-version", "1.7.0"}, "exclude each other"},
		{"output", []string{"-o", "yaml", "--containerd-version", "1.7.0"}, "unknown output format"},
		{"old containerd", []string{"--containerd-version", "1.5.9"}, "not supported"},
		{"bad version", []string{"--containerd-version", "latest"}, "--containerd-version"},
		{"bad kernel version", []string{"--containerd-version", "1.7.0", "--kernel-version", "linux"}, "--kernel-version"},
		{"no containerd on node", nil, "no containerd binary under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(append([]string{"convert", "--root", root}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestConvertKernelVersion: --kernel-version beats the node's osrelease and
// gates unprivileged ports and ping.
func TestConvertKernelVersion(t *testing.T) {
	root := t.TempDir()
	testutil.WriteTree(t, root, map[string]string{"/etc/docker/daemon.json": "{}", "/proc/sys/kernel/osrelease": "5.15.0-105-generic\n"}, 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"from the node", nil, "enable_unprivileged_ports = true"},
		{"from the flag", []string{"--kernel-version", "3.10.0-1160.el7.x86_64"}, "enable_unprivileged_ports = false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(append([]string{"convert", "--root", root, "--containerd-version", "1.6.20", "--kubelet-version", "1.30.0"}, tt.args...)...)
			if code != 0 || !strings.Contains(stdout, tt.want) {
				t.Errorf("exit %d, want 0 and %q in:\n%s%s", code, tt.want, stdout, stderr)
			}
		})
	}
}
