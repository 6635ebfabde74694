package nodeconf

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"k8s.io/apimachinery/pkg/util/version"
)

// convertDaemon converts daemon.json (and dockerd flags) for v.
func convertDaemon(t *testing.T, v *version.Version, daemon string, flags []string, mod func(*Input)) *Output {
	t.Helper()
	d, err := ParseDaemonJSON("/etc/docker/daemon.json", []byte(daemon))
	if err != nil {
		t.Fatal(err)
	}
	var fl []*DaemonConfig
	if flags != nil {
		df, err := ParseDockerdFlags("/lib/systemd/system/docker.service", flags)
		if err != nil {
			t.Fatal(err)
		}
		fl = append(fl, df.Config)
	}
	if d, err = MergeDaemon(d, fl...); err != nil {
		t.Fatal(err)
	}
	in := &Input{ContainerdVersion: v, Daemon: d, ExistingDirs: map[string]bool{"/opt/cni/bin": true, "/etc/cni/net.d": true}}
	if mod != nil {
		mod(in)
	}
	out, err := Convert(in)
	if err != nil {
		t.Fatalf("Convert refused a setup dockerd runs: %v", err)
	}
	return out
}

func unmappedKeys(out *Output) map[string]Unmapped {
	m := map[string]Unmapped{}
	for _, u := range out.Unmapped {
		m[u.Key] = u
	}
	return m
}

func config(t *testing.T, out *Output) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := toml.Unmarshal(out.File(ConfigPath).Data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAcceptsWhatDockerdAccepts: setups dockerd runs are converted, and
// what is not carried over is listed.
func TestAcceptsWhatDockerdAccepts(t *testing.T) {
	v16 := version.MustParseGeneric("1.6.20")
	tests := []struct {
		name     string
		daemon   string
		flags    []string
		unmapped []string
		check    func(t *testing.T, out *Output)
	}{
		{name: "RHEL docker flags", flags: []string{"--add-registry", "registry.access.redhat.com", "--block-registry=docker.io", "--signature-verification=false", "--confirm-def-push=false"},
			unmapped: []string{"add-registry", "block-registry", "signature-verification", "confirm-def-push"}},
		{name: "old key", daemon: `{"disable-legacy-registry": true}`, unmapped: []string{"disable-legacy-registry"}},
		{name: "repeated keys", daemon: `{"log-level":"info","log-opts":{"max-size":"10m","max-size":"20m"},"log-level":"warn"}`,
			unmapped: []string{"log-level", "log-opts.max-size"},
			check: func(t *testing.T, out *Output) {
				if out.Kubelet["containerLogMaxSize"] != "20M" {
					t.Errorf("containerLogMaxSize = %v, want the last value 20M", out.Kubelet["containerLogMaxSize"])
				}
				if lvl := lookup(config(t, out), "debug", "level"); lvl != "warn" {
					t.Errorf("debug.level = %v, want the last value warn", lvl)
				}
			}},
		{name: "add-runtime beside runtimes", daemon: `{"runtimes":{"nvidia":{"path":"/usr/bin/nvidia-container-runtime"},"same":{"path":"/from/file"}}}`,
			flags: []string{"--add-runtime", "runsc=/usr/local/bin/runsc", "--add-runtime=same=/from/flag"},
			check: func(t *testing.T, out *Output) {
				cfg := config(t, out)
				rts := []string{"plugins", criV2, "containerd", "runtimes"}
				for name, bin := range map[string]string{"nvidia": "/usr/bin/nvidia-container-runtime", "runsc": "/usr/local/bin/runsc", "same": "/from/file"} {
					if got := lookup(cfg, append(rts, name, "options", "BinaryName")...); got != bin {
						t.Errorf("runtime %s BinaryName = %v, want %s", name, got, bin)
					}
				}
			}},
		{name: "Docker-packaged runc", flags: []string{"--add-runtime", "docker-runc=/usr/libexec/docker/docker-runc-current", "--default-runtime=docker-runc"},
			unmapped: []string{"runtimes.docker-runc", "default-runtime"},
			check: func(t *testing.T, out *Output) {
				cfg := config(t, out)
				if got := lookup(cfg, "plugins", criV2, "containerd", "default_runtime_name"); got != "runc" {
					t.Errorf("default_runtime_name = %v, want runc", got)
				}
				if got := lookup(cfg, "plugins", criV2, "containerd", "runtimes", "docker-runc"); got != nil {
					t.Errorf("docker-runc carried over: %v", got)
				}
			}},
		{name: "mirror with a path", daemon: `{"registry-mirrors":["https://art.example.com/artifactory/api/docker/hub/"]}`,
			check: func(t *testing.T, out *Output) {
				if h := out.File(CertsDir + "/docker.io/hosts.toml"); h == nil || !strings.Contains(string(h.Data), `[host."https://art.example.com/artifactory/api/docker/hub"]`) {
					t.Errorf("docker.io/hosts.toml = %v", h)
				}
			}},
		{name: "oom-score-adjust", daemon: `{"oom-score-adjust": -500}`, unmapped: []string{"oom-score-adjust"},
			check: func(t *testing.T, out *Output) {
				if got := config(t, out)["oom_score"]; got != nil {
					t.Errorf("oom_score = %v: it would override OOMScoreAdjust=-999", got)
				}
			}},
		{name: "ip-forward false", daemon: `{"ip-forward": false}`, unmapped: []string{"ip-forward"},
			check: func(t *testing.T, out *Output) {
				if r := unmappedKeys(out)["ip-forward"].Reason; strings.Contains(r, "persist net.ipv4.ip_forward=1") {
					t.Errorf("ip-forward false reason = %q", r)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			daemon := tt.daemon
			if daemon == "" {
				daemon = "{}"
			}
			out := convertDaemon(t, v16, daemon, tt.flags, nil)
			got := unmappedKeys(out)
			for _, k := range tt.unmapped {
				if u, ok := got[k]; !ok || u.Reason == "" {
					t.Errorf("unmapped lacks %q (with a reason): %+v", k, out.Unmapped)
				}
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
}

func TestUnprivilegedByKernel(t *testing.T) {
	k := func(s string) *version.Version { v, _ := ParseKernelVersion(s); return v }
	tests := []struct {
		v      *version.Version
		kernel *version.Version
		want   any // enable_unprivileged_ports, nil when not written
	}{
		{version.MustParseGeneric("1.6.20"), k("5.15.0-105-generic"), true},
		{version.MustParseGeneric("1.6.20"), k("4.11.0"), true},
		{version.MustParseGeneric("1.6.20"), k("3.10.0-1160.el7.x86_64"), false},
		{version.MustParseGeneric("1.6.20"), nil, nil},
		{version.MustParseGeneric("2.2.0"), k("4.4.0-210-generic"), false},
		{version.MustParseGeneric("2.2.0"), k("6.1.0-18-amd64"), true},
		{version.MustParseGeneric("2.2.0"), nil, nil},
	}
	for _, tt := range tests {
		name := tt.v.String() + "/unknown"
		if tt.kernel != nil {
			name = tt.v.String() + "/" + tt.kernel.String()
		}
		t.Run(name, func(t *testing.T) {
			out := convertDaemon(t, tt.v, "{}", nil, func(in *Input) { in.KernelVersion = tt.kernel })
			base := []string{"plugins", criV2}
			if tt.v.Major() >= 2 {
				base = []string{"plugins", criRuntime}
			}
			cfg := config(t, out)
			for _, key := range []string{"enable_unprivileged_ports", "enable_unprivileged_icmp"} {
				if got := lookup(cfg, append(base, key)...); got != tt.want {
					t.Errorf("%s = %v, want %v", key, got, tt.want)
				}
			}
		})
	}
	if _, err := ParseKernelVersion("linux"); err == nil {
		t.Error("ParseKernelVersion(linux): no error")
	}
}

func TestContainerdRootFor(t *testing.T) {
	tests := []struct {
		dataRoot string
		mounts   []string
		want     string
	}{
		{"/var/lib/docker", []string{"/", "/boot"}, ""},
		{"/var/lib/docker", []string{"/", "/var/lib/docker"}, "/var/lib/docker/containerd"},
		{"/data/docker", []string{"/", "/data/docker"}, "/data/docker/containerd"},
		{"/data/docker/", []string{"/", "/data"}, "/data/containerd"},
		{"/data/docker", nil, "/data/containerd"},
	}
	for _, tt := range tests {
		got, set := ContainerdRootFor(tt.dataRoot, tt.mounts)
		if got != tt.want || set != (tt.want != "") {
			t.Errorf("ContainerdRootFor(%s, %v) = %q, %t; want %q", tt.dataRoot, tt.mounts, got, set, tt.want)
		}
	}
}

// TestUlimitsGoToContainers: default-ulimits become the rlimits of a base
// spec every runtime uses, not limits of containerd itself.
func TestUlimitsGoToContainers(t *testing.T) {
	out := convertDaemon(t, version.MustParseGeneric("2.2.0"), `{"runtimes":{"kata":{"runtimeType":"io.containerd.kata.v2"}},"default-ulimits":{"nofile":{"Name":"nofile","Soft":1024,"Hard":4096},"core":{"Name":"core","Soft":-1,"Hard":-1}}}`, nil, nil)
	for _, f := range out.Files {
		if strings.HasPrefix(f.Path, DropInDir) && strings.Contains(string(f.Data), "Limit") {
			t.Errorf("%s limits containerd itself:\n%s", f.Path, f.Data)
		}
	}
	spec := out.File(BaseSpecPath)
	if spec == nil {
		t.Fatal("no base spec written")
	}
	var s struct {
		Process struct {
			Rlimits []struct {
				Type       string
				Soft, Hard uint64
			}
			Capabilities struct{ Bounding []string }
		}
		Mounts []any
	}
	if err := json.Unmarshal(spec.Data, &s); err != nil {
		t.Fatal(err)
	}
	got := map[string][2]uint64{}
	for _, r := range s.Process.Rlimits {
		got[r.Type] = [2]uint64{r.Soft, r.Hard}
	}
	if got["RLIMIT_NOFILE"] != [2]uint64{1024, 4096} || got["RLIMIT_CORE"] != [2]uint64{^uint64(0), ^uint64(0)} || len(got) != 2 {
		t.Errorf("rlimits = %v", got)
	}
	if len(s.Mounts) == 0 || len(s.Process.Capabilities.Bounding) == 0 {
		t.Errorf("base spec is not containerd's default spec: %s", spec.Data)
	}
	cfg := config(t, out)
	for _, rt := range []string{"runc", "kata"} {
		if got := lookup(cfg, "plugins", criRuntime, "containerd", "runtimes", rt, "base_runtime_spec"); got != BaseSpecPath {
			t.Errorf("runtime %s base_runtime_spec = %v", rt, got)
		}
	}
}

func TestReadEnvFileSkipsWhatSystemdSkips(t *testing.T) {
	data := "OPTIONS='--selinux-enabled'\nif [ -z \"${DOCKER_CERT_PATH}\" ]; then\n    DOCKER_CERT_PATH=/etc/docker\nfi\n; comment\n"
	vars, skipped, err := ReadEnvFile("/etc/sysconfig/docker", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vars {
		names = append(names, v.Name+"="+v.Value)
	}
	if strings.Join(names, " ") != "OPTIONS=--selinux-enabled DOCKER_CERT_PATH=/etc/docker" {
		t.Errorf("vars = %v", names)
	}
	if len(skipped) != 2 || skipped[0].Line != 2 || skipped[1].Line != 4 || skipped[1].Text != "fi" {
		t.Errorf("skipped = %+v", skipped)
	}
	if _, err := ParseEnvFile("/etc/default/kubelet", []byte("fi\n")); err == nil {
		t.Error("ParseEnvFile (strict) accepted a line that is not an assignment")
	}
}

func TestArgSources(t *testing.T) {
	u, err := ParseUnit([]UnitFile{{Path: "/usr/lib/systemd/system/docker.service", Data: []byte("[Service]\nExecStart=/usr/bin/dockerd --debug $OPTIONS\n")}})
	if err != nil {
		t.Fatal(err)
	}
	args, err := u.ExpandArgsFrom(map[string]string{"OPTIONS": "--log-driver=journald"}, map[string]string{"OPTIONS": "/etc/sysconfig/docker"})
	if err != nil {
		t.Fatal(err)
	}
	df, err := ParseDockerdArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	if s := df.Config.Get("log-driver"); s == nil || s.Source != "/etc/sysconfig/docker" {
		t.Errorf("log-driver source = %+v, want /etc/sysconfig/docker", s)
	}
	if s := df.Config.Get("debug"); s == nil || s.Source != "/usr/lib/systemd/system/docker.service" {
		t.Errorf("debug source = %+v", s)
	}
}
