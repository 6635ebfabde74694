package nodeconf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/unshim/unshim/cmd/unshim/app"
	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodefiles"
)

// TestRealContainerdTakesConvertedConfig converts a Docker node's setup with
// `unshim convert`, starts a real containerd on each generated config (on a
// private root, state dir and socket) and proves through the CRI API that
// the CRI plugin is up and that the sandbox image, SystemdCgroup, the CNI
// directories and the registry hosts (a mirror and an insecure registry,
// served by two local registries) took effect.
func TestRealContainerdTakesConvertedConfig(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name   string
		binary func(t *testing.T) (string, string)
		schema int
	}{
		{"debian-containerd-1.6", func(t *testing.T) (string, string) {
			bin := testutil.RequireBinary(t, "containerd")
			out, err := exec.Command(bin, "--version").Output()
			if err != nil {
				t.Fatalf("containerd --version: %v", err)
			}
			v, err := nodefiles.ParseVersionOutput(string(out))
			if err != nil {
				t.Fatal(err)
			}
			return bin, v.String()
		}, 2},
		{"module-containerd-2.x", func(t *testing.T) (string, string) {
			testutil.RequireBinary(t, "go")
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			bin, err := lab.EnsureContainerd(ctx, log.NoopLogger(), lab.DefaultContainerdVersion)
			if err != nil {
				testutil.Missing(t, "containerd %s from the Go module proxy: %v", lab.DefaultContainerdVersion, err)
			}
			return bin, lab.DefaultContainerdVersion
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin, version := tt.binary(t)
			testContainerd(t, bin, version, tt.schema)
		})
	}
}

func testContainerd(t *testing.T, bin, version string, schema int) {
	mirror, reg := newFakeRegistry(), newFakeRegistry()
	defer mirror.Close()
	defer reg.Close()
	tmp, err := os.MkdirTemp("", "unshim-ctrd-") // short: the socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	root, out := filepath.Join(tmp, "node"), filepath.Join(tmp, "out")
	sandbox := reg.Host() + "/unshim/pause:3.9"
	writeFile(t, root, "/etc/docker/daemon.json", `{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "registry-mirrors": ["`+mirror.URL+`"],
  "insecure-registries": ["`+reg.Host()+`"],
  "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"},
  "max-concurrent-downloads": 4, "live-restore": true
}`)
	writeFile(t, root, "/var/lib/kubelet/kubeadm-flags.env",
		`KUBELET_KUBEADM_ARGS="--network-plugin=cni --cni-conf-dir=/etc/cni/net.d --cni-bin-dir=/opt/cni/bin --pod-infra-container-image=`+sandbox+`"`+"\n")
	writeFile(t, root, "/etc/cni/net.d/10-unshim.conflist", `{"cniVersion":"0.4.0","name":"unshim","plugins":[{"type":"bridge","bridge":"unshim0","ipam":{"type":"host-local","subnet":"10.99.0.0/24"}}]}`)
	writeFile(t, root, "/opt/cni/bin/bridge", "#!/bin/sh\nexit 1\n")

	// unshim convert, through the command line other tools call.
	var stdout, stderr bytes.Buffer
	code := app.Run(context.Background(), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}, "unshim",
		[]string{"convert", "--root", root, "--containerd-version", version, "--kubelet-version", "1.23.17", "--out", out, "-o", "json"})
	if code != 0 {
		t.Fatalf("unshim convert exited %d: %s", code, stderr.String())
	}
	var res struct {
		Files   []string       `json:"files"`
		Kubelet map[string]any `json:"kubelet"`
		Schema  int            `json:"schema"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("convert -o json: %v\n%s", err, stdout.String())
	}
	if res.Schema != schema {
		t.Fatalf("schema = %d, want %d", res.Schema, schema)
	}
	if res.Kubelet["cgroupDriver"] != "systemd" || res.Kubelet["containerLogMaxSize"] != "10M" || res.Kubelet["containerLogMaxFiles"] != float64(3) {
		t.Errorf("kubelet settings = %v", res.Kubelet)
	}

	// The config names node paths; this containerd runs beside the real one,
	// so point those paths into the test's node tree and disable NRI (its
	// socket is host-global). Nothing else is touched.
	cfg, err := os.ReadFile(filepath.Join(out, "etc/containerd/config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte("version = "+string(rune('0'+schema)))) {
		t.Fatalf("config.toml has no version %d line:\n%s", schema, cfg)
	}
	runCfg := strings.NewReplacer(
		`"/etc/containerd/certs.d"`, `"`+filepath.Join(out, "etc/containerd/certs.d")+`"`,
		`"/etc/cni/net.d"`, `"`+filepath.Join(root, "etc/cni/net.d")+`"`,
		`"/opt/cni/bin"`, `"`+filepath.Join(root, "opt/cni/bin")+`"`,
		"disabled_plugins = []", `disabled_plugins = ["io.containerd.nri.v1.nri"]`,
	).Replace(string(cfg))
	cfgPath := filepath.Join(tmp, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(runCfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// Offline: containerd parses it and the merged config carries the settings.
	dump, err := exec.Command(bin, "--config", cfgPath, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, dump)
	}
	for _, want := range []string{"SystemdCgroup = true", sandbox} {
		if !bytes.Contains(dump, []byte(want)) {
			t.Errorf("config dump lacks %q", want)
		}
	}

	sock := filepath.Join(tmp, "c.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testutil.StartDaemon(t, filepath.Join(tmp, "containerd.log"), 15*time.Second, bin,
		"--config", cfgPath, "--root", filepath.Join(tmp, "root"), "--state", filepath.Join(tmp, "state"), "--address", sock)

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt, img := runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)

	// The CRI plugin is up: RuntimeReady, and NetworkReady from the CNI config in conf_dir.
	var status *runtimeapi.StatusResponse
	deadline := time.Now().Add(60 * time.Second)
	for {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		status, err = rt.Status(sctx, &runtimeapi.StatusRequest{Verbose: true})
		scancel()
		if err == nil && ready(status, runtimeapi.RuntimeReady) && ready(status, runtimeapi.NetworkReady) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI not ready after 60s: status %v, err %v", status.GetStatus(), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var info struct {
		SandboxImage string `json:"sandboxImage"`
		Containerd   struct {
			DefaultRuntimeName string `json:"defaultRuntimeName"`
			Runtimes           map[string]struct {
				Type    string         `json:"runtimeType"`
				Options map[string]any `json:"options"`
			} `json:"runtimes"`
		} `json:"containerd"`
		CNI struct {
			BinDir  string   `json:"binDir"`
			BinDirs []string `json:"binDirs"`
			ConfDir string   `json:"confDir"`
		} `json:"cni"`
		Registry struct {
			ConfigPath string `json:"configPath"`
		} `json:"registry"`
		StreamServerAddress string `json:"streamServerAddress"`
	}
	if err := json.Unmarshal([]byte(status.Info["config"]), &info); err != nil {
		t.Fatalf("CRI status config: %v", err)
	}
	runc := info.Containerd.Runtimes["runc"]
	if runc.Type != "io.containerd.runc.v2" || runc.Options["SystemdCgroup"] != true {
		t.Errorf("CRI runc runtime = %+v, want io.containerd.runc.v2 with SystemdCgroup true", runc)
	}
	if info.CNI.ConfDir != filepath.Join(root, "etc/cni/net.d") {
		t.Errorf("CRI cni confDir = %q", info.CNI.ConfDir)
	}
	if bins := append([]string{info.CNI.BinDir}, info.CNI.BinDirs...); !contains(bins, filepath.Join(root, "opt/cni/bin")) {
		t.Errorf("CRI cni bin dirs = %v", bins)
	}
	if schema == 2 {
		if info.SandboxImage != sandbox {
			t.Errorf("CRI sandboxImage = %q, want %q", info.SandboxImage, sandbox)
		}
		if info.Registry.ConfigPath != filepath.Join(out, "etc/containerd/certs.d") {
			t.Errorf("CRI registry configPath = %q", info.Registry.ConfigPath)
		}
		if info.StreamServerAddress != "127.0.0.1" {
			t.Errorf("CRI streamServerAddress = %q", info.StreamServerAddress)
		}
	}

	// Registry hosts: the sandbox image comes from the insecure registry over
	// plain HTTP (certs.d/HOST/hosts.toml), a Docker Hub image from the mirror
	// (certs.d/docker.io/hosts.toml, ?ns=docker.io).
	pull := func(ref string) *runtimeapi.Image {
		pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
		defer pcancel()
		if _, err := img.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("CRI PullImage %s: %v\nmirror saw %v\nregistry saw %v", ref, err, mirror.Requests(), reg.Requests())
		}
		st, err := img.ImageStatus(pctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil || st.Image == nil {
			t.Fatalf("CRI ImageStatus %s: %v %v", ref, st, err)
		}
		return st.Image
	}
	pause := pull(sandbox)
	if !anyContains(reg.Requests(), "/v2/unshim/pause/manifests/3.9") {
		t.Errorf("the insecure registry was not asked for the sandbox image: %v", reg.Requests())
	}
	if schema == 3 && !pause.Pinned {
		t.Errorf("sandbox image %s is not pinned: pinned_images.sandbox did not take effect", sandbox)
	}
	pull("docker.io/library/unshim-probe:1")
	if !anyContains(mirror.Requests(), "/v2/library/unshim-probe/manifests/1?ns=docker.io") {
		t.Errorf("the mirror was not asked for the Docker Hub image: %v", mirror.Requests())
	}
}

func ready(s *runtimeapi.StatusResponse, cond string) bool {
	for _, c := range s.GetStatus().GetConditions() {
		if c.Type == cond {
			return c.Status
		}
	}
	return false
}

func writeFile(t *testing.T, root, nodePath, data string) {
	t.Helper()
	p := filepath.Join(root, nodePath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o644)
	if strings.HasPrefix(data, "#!") {
		mode = 0o755
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func anyContains(l []string, sub string) bool {
	for _, x := range l {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}
