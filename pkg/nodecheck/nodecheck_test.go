package nodecheck_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/cmd/unshim/app"
	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/check"
)

// hostTree is a prepared node file system: Docker's configuration, and
// scripts, cron entries and units that call docker (and some that do not).
var hostTree = map[string]string{
	"/etc/hostname": "node-a\n",
	"/etc/docker/daemon.json": `{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "registry-mirrors": ["https://mirror.example.com"],
  "insecure-registries": ["reg.local:5000", "10.0.0.0/8"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "data-root": "/data/docker",
  "default-runtime": "wrapper",
  "runtimes": {"wrapper": {"path": "/usr/local/bin/runc-wrapper"}},
  "live-restore": true,
  "userns-remap": "default"
}
`,
	"/etc/docker/certs.d/reg.local:5000/ca.crt":            "CA\n",
	"/etc/containerd/config.toml":                          "#   Copyright 2018-2022 Docker Inc.\n\ndisabled_plugins = [\"cri\"]\n",
	"/lib/systemd/system/docker.service":                   "[Service]\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n",
	"/etc/default/docker":                                  "DOCKER_OPTS=\"--max-concurrent-downloads 5\"\n",
	"/etc/systemd/system/docker.service.d/http-proxy.conf": "[Service]\nEnvironment=\"HTTPS_PROXY=http://proxy.corp:3128\"\n",
	"/etc/cron.d/cleanup":                                  "# prune every night\n0 3 * * * root docker system prune -af\n",
	"/etc/cron.d/harmless":                                 "0 4 * * * root /usr/bin/logrotate /etc/logrotate.conf\n",
	"/var/spool/cron/crontabs/root":                        "*/10 * * * * /usr/bin/docker ps -q > /tmp/count\n",
	"/etc/systemd/system/backup.service":                   "[Unit]\nDescription=backup\n[Service]\nExecStart=/usr/bin/docker run --rm -v /srv:/srv backup:1\n",
	"/etc/systemd/system/node-exporter.service":            "[Service]\nExecStart=/usr/local/bin/node_exporter\n",
	"/usr/local/bin/deploy.sh":                             "#!/bin/sh\nset -e\n# docker is mentioned in a comment only here\nif docker pull \"$1\"; then echo ok; fi\n",
	"/etc/rc.local":                                        "#!/bin/sh\nsystemctl start docker\nexit 0\n",
	"/var/lib/kubelet/kubeadm-flags.env":                   "KUBELET_KUBEADM_ARGS=\"--network-plugin=cni --pod-infra-container-image=registry.k8s.io/pause:3.6\"\n",
	"/var/lib/kubelet/config.yaml":                         "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n",
}

// startDockerd starts Debian's dockerd on a private socket, data root, exec
// root and pidfile, and returns a client for it.
func startDockerd(t *testing.T, dir string) (string, *client.Client) {
	t.Helper()
	bin := testutil.RequireBinary(t, "dockerd")
	sock := filepath.Join(dir, "d.sock")
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StartDaemon(t, filepath.Join(dir, "dockerd.log"), 30*time.Second, bin,
		"-H", "unix://"+sock, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--config-file", filepath.Join(dir, "daemon.json"),
		"--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none")
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.Ping(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd does not answer on %s: %v", sock, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return sock, c
}

// tinyImage builds a static Go program and imports it into Docker as an
// image with no repo digest (as `docker import` does), and returns its ID.
func tinyImage(t *testing.T, c *client.Client, dir, ref string) string {
	t.Helper()
	gobin := testutil.RequireBinary(t, "go")
	src := filepath.Join(dir, "sleeper")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := "package main\n\nimport (\n\t\"os\"\n\t\"os/signal\"\n\t\"syscall\"\n)\n\nfunc main() {\n\tc := make(chan os.Signal, 1)\n\tsignal.Notify(c, syscall.SIGTERM, syscall.SIGINT)\n\t<-c\n}\n"
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module sleeper\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(gobin, "build", "-o", filepath.Join(dir, "sleeper.bin"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sleeper: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "sleeper.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: "sleeper", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: &tb, SourceName: "-"}, ref, image.ImportOptions{Changes: []string{`CMD ["/sleeper"]`}})
	if err != nil {
		t.Fatalf("docker import: %v", err)
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(rc)
	rc.Close()
	insp, err := c.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("inspect %s: %v (import said %s)", ref, err, out.String())
	}
	if len(insp.RepoDigests) != 0 {
		t.Fatalf("imported image has repo digests %v", insp.RepoDigests)
	}
	return insp.ID
}

func TestNodeCheckOnRealDocker(t *testing.T) {
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "unshim-nc-") // short: socket path limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "node")
	testutil.WriteTree(t, root, hostTree, 0o755)
	sock, c := startDockerd(t, dir)
	ctx := context.Background()

	// An image loaded locally, used by a running "pod" container (dockershim labels).
	imgID := tinyImage(t, c, dir, "local/unshim-tiny:1")
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: "local/unshim-tiny:1",
		Labels: map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.container.name": "web"}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "k8s_web_web-0_shop_uid_0")
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	t.Cleanup(func() {
		_ = c.ContainerRemove(context.Background(), cr.ID, container.RemoveOptions{Force: true})
	})

	// A process holding a connection to the Docker socket: `docker events`.
	dockerCLI := testutil.RequireBinary(t, "docker")
	events := exec.Command(dockerCLI, "-H", "unix://"+sock, "events")
	if err := events.Start(); err != nil {
		t.Fatalf("start docker events: %v", err)
	}
	t.Cleanup(func() { _ = events.Process.Kill(); _ = events.Wait() })
	eventsPid := events.Process.Pid

	run := func(args ...string) (int, []byte, string) {
		var stdout, stderr bytes.Buffer
		code := app.Run(ctx, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}, "unshim", args)
		return code, stdout.Bytes(), stderr.String()
	}
	args := []string{"node", "check", "--root", root, "--proc", "/proc", "--docker-host", "unix://" + sock, "--kubelet-version", "1.23.17", "-o", "json"}

	// docker events connects asynchronously: wait until the check sees it.
	var list struct {
		Findings []check.Finding `json:"findings"`
		Scanned  map[string]int  `json:"scanned"`
	}
	var code int
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out []byte
		var stderr string
		code, out, stderr = run(args...)
		list.Findings, list.Scanned = nil, nil
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("node check -o json: %v\n%s\n%s", err, out, stderr)
		}
		if find(list.Findings, "node-docker-socket-client", "") != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code != 1 {
		t.Errorf("exit code = %d, want 1 (findings at or above high)", code)
	}

	tests := []struct {
		rule, object, file string
		line               int
		severity           check.Severity
		evidence           string
	}{
		{"node-docker-caller", "File//etc/cron.d/cleanup", "/etc/cron.d/cleanup", 2, check.SeverityHigh, "docker system prune"},
		{"node-docker-caller", "File//var/spool/cron/crontabs/root", "/var/spool/cron/crontabs/root", 1, check.SeverityHigh, "/usr/bin/docker ps"},
		{"node-docker-caller", "File//etc/systemd/system/backup.service", "/etc/systemd/system/backup.service", 4, check.SeverityHigh, "docker run"},
		{"node-docker-caller", "File//usr/local/bin/deploy.sh", "/usr/local/bin/deploy.sh", 4, check.SeverityMedium, "docker pull"},
		{"node-docker-caller", "File//etc/rc.local", "/etc/rc.local", 2, check.SeverityHigh, "systemctl start docker"},
		{"node-docker-socket-client", fmt.Sprintf("Process/docker[%d]", eventsPid), "", 0, check.SeverityHigh, "events"},
		{"node-image-no-digest", "Image/local/unshim-tiny:1", "", 0, check.SeverityHigh, imgID},
		{"node-docker-config", "Node/node-a", "/etc/docker/daemon.json", 3, check.SeverityLow, "registry-mirrors=https://mirror.example.com"},
		{"node-docker-config", "Node/node-a", "/etc/docker/daemon.json", 4, check.SeverityLow, "insecure-registries=reg.local:5000,10.0.0.0/8"},
		{"node-docker-config", "Node/node-a", "/etc/docker/daemon.json", 2, check.SeverityLow, "exec-opts=native.cgroupdriver=systemd"},
		{"node-docker-config", "Node/node-a", "/etc/docker/daemon.json", 8, check.SeverityLow, "default-runtime=wrapper"},
		{"node-docker-config", "Node/node-a", "/etc/docker/daemon.json", 7, check.SeverityLow, "data-root=/data/docker"},
		{"node-docker-config", "Node/node-a", "/etc/docker/daemon.json", 6, check.SeverityLow, "log-opts=max-file=3,max-size=10m"},
		{"node-docker-config", "Node/node-a", "/etc/docker/certs.d/reg.local:5000", 0, check.SeverityLow, "reg.local:5000"},
		{"node-docker-config", "Node/node-a", "/etc/systemd/system/docker.service.d/http-proxy.conf", 2, check.SeverityLow, "HTTPS_PROXY=http://proxy.corp:3128"},
		// Set through $DOCKER_OPTS: the finding names the EnvironmentFile that set it, not the unit.
		{"node-docker-config", "Node/node-a", "/etc/default/docker", 1, check.SeverityLow, "max-concurrent-downloads=5"},
		{"node-docker-config-unmapped", "Node/node-a", "/etc/docker/daemon.json", 10, check.SeverityMedium, "live-restore=true"},
		{"node-docker-config-unmapped", "Node/node-a", "/etc/docker/daemon.json", 11, check.SeverityMedium, "userns-remap=default"},
		{"node-docker-config-unmapped", "Node/node-a", "/etc/docker/daemon.json", 4, check.SeverityMedium, "insecure-registries=10.0.0.0/8"},
		{"node-cgroup-driver", "Node/node-a", "/var/lib/kubelet/config.yaml", 0, check.SeverityHigh, "kubelet=systemd docker=cgroupfs"},
		{"node-kubelet-flag", "Node/node-a", "/var/lib/kubelet/kubeadm-flags.env", 1, check.SeverityHigh, "--network-plugin=cni"},
		{"node-kubelet-flag", "Node/node-a", "/var/lib/kubelet/kubeadm-flags.env", 1, check.SeverityLow, "--pod-infra-container-image=registry.k8s.io/pause:3.6"},
		{"node-cni-missing", "Node/node-a", "", 0, check.SeverityHigh, "/etc/cni/net.d"},
		{"node-containerd-config", "Node/node-a", "/etc/containerd/config.toml", 3, check.SeverityHigh, "disabled_plugins=cri"},
		{"node-containerd-config", "Node/node-a", "/etc/containerd/config.toml", 0, check.SeverityMedium, "version="},
		{"node-cni-missing", "Node/node-a", "", 0, check.SeverityHigh, "/opt/cni/bin,/usr/lib/cni"},
	}
	for _, tt := range tests {
		t.Run(tt.rule+"/"+tt.evidence, func(t *testing.T) {
			f := find(list.Findings, tt.rule, tt.evidence)
			if f == nil {
				t.Fatalf("no %s finding with evidence %q in:\n%s", tt.rule, tt.evidence, summary(list.Findings))
			}
			if f.Object.String() != tt.object || f.File != tt.file || (tt.line != 0 && f.Line != tt.line) || f.Severity != tt.severity {
				t.Errorf("finding = %s %s:%d %s, want %s %s:%d %s", f.Object, f.File, f.Line, f.Severity, tt.object, tt.file, tt.line, tt.severity)
			}
		})
	}
	if f := find(list.Findings, "node-image-no-digest", imgID); f != nil && (!strings.Contains(f.Message, "shop/web-0") || f.Pods != 1) {
		t.Errorf("image finding does not name the running pod: %s (pods %d)", f.Message, f.Pods)
	}
	for _, f := range list.Findings {
		if f.Rule == "node-docker-caller" && (strings.Contains(f.File, "harmless") || strings.Contains(f.File, "node-exporter") || strings.Contains(f.Evidence, "comment")) {
			t.Errorf("false positive: %s:%d %s", f.File, f.Line, f.Evidence)
		}
		if f.Rule == "node-docker-socket-client" && f.Object.Name != fmt.Sprintf("docker[%d]", eventsPid) {
			t.Errorf("unexpected socket client %s (%s)", f.Object, f.Evidence)
		}
	}
	if list.Scanned["Image"] < 1 || list.Scanned["Process"] < 2 || list.Scanned["File"] < 7 {
		t.Errorf("scanned = %v", list.Scanned)
	}

	// The table and SARIF forms, and --fail-on none.
	code, out, _ := run(append(args[:len(args)-2], "-o", "table", "--fail-on", "none")...)
	if code != 0 || !bytes.Contains(out, []byte("/etc/cron.d/cleanup:2")) || !bytes.Contains(out, []byte("node-docker-socket-client")) {
		t.Errorf("table (exit %d):\n%s", code, out)
	}
	code, out, _ = run(append(args[:len(args)-2], "-o", "sarif")...)
	if code != 1 || !bytes.Contains(out, []byte(`"ruleId": "node-docker-caller"`)) {
		t.Errorf("sarif (exit %d):\n%.400s", code, out)
	}
}

// TestNodeCheckMalformed: a broken daemon.json is exit 2, naming the file and key.
func TestNodeCheckMalformed(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             []string
	}{
		{"bad JSON", "/etc/docker/daemon.json", `{"debug": tru}`, []string{"/etc/docker/daemon.json", "invalid JSON"}},
		{"unknown key", "/etc/docker/daemon.json", `{"registry-mirror": []}`, []string{"/etc/docker/daemon.json", `"registry-mirror"`}},
		{"wrong type", "/etc/docker/daemon.json", `{"insecure-registries": "r:5000"}`, []string{"/etc/docker/daemon.json", `"insecure-registries"`}},
		{"bad kubelet config", "/var/lib/kubelet/config.yaml", "cgroupDriver: 3\n", []string{"/var/lib/kubelet/config.yaml", `"cgroupDriver"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			testutil.WriteTree(t, root, map[string]string{tt.file: tt.data}, 0o755)
			var stdout, stderr bytes.Buffer
			code := app.Run(context.Background(), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}, "unshim",
				[]string{"node", "check", "--root", root})
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
		})
	}
}

func find(fs []check.Finding, rule, evidence string) *check.Finding {
	for i := range fs {
		if fs[i].Rule == rule && (evidence == "" || strings.Contains(fs[i].Evidence, evidence)) {
			return &fs[i]
		}
	}
	return nil
}

func summary(fs []check.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s %s:%d %q\n", f.Severity, f.Rule, f.Object, f.File, f.Line, f.Evidence)
	}
	return b.String()
}
