package nodeconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"k8s.io/apimachinery/pkg/util/version"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// versions are the containerd versions every case is converted for: both
// schemas, and the 1.6/1.7 and 2.0/2.1+ differences inside each.
var versions = []*version.Version{version.MustParseGeneric("1.6.20"), version.MustParseGeneric("1.7.0"), version.MustParseGeneric("2.0.0"), version.MustParseGeneric("2.2.0")}

type convertCase struct {
	name           string
	daemon         string
	dockerd        []string // dockerd arguments from the unit
	dockerEnv      map[string]string
	kubeletFlags   string
	kubeletConfig  string
	kubeletVersion string
	certs          map[string][]CertFile
	dirs           []string
}

var convertCases = []convertCase{
	{
		name: "worked-example", // shared/research/config.md section 8
		daemon: `{ "exec-opts": ["native.cgroupdriver=systemd"],
  "log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"},
  "storage-driver": "overlay2", "data-root": "/data/docker",
  "registry-mirrors": ["https://mirror.example.com"],
  "insecure-registries": ["harbor.local:5000", "10.0.0.0/8"],
  "max-concurrent-downloads": 10, "live-restore": true,
  "default-runtime": "nvidia",
  "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}} }`,
		kubeletFlags:   `KUBELET_KUBEADM_ARGS="--network-plugin=cni --pod-infra-container-image=registry.aliyuncs.com/google_containers/pause:3.9"`,
		kubeletVersion: "1.23.17",
		certs:          map[string][]CertFile{"harbor.local:5000": {{Name: "ca.crt", Data: []byte("CA\n")}}},
		dirs:           []string{"/opt/cni/bin", "/etc/cni/net.d"},
	},
	{
		name:   "registries",
		daemon: `{"registry-mirrors":["https://m1.example.com","http://10.1.2.3:5000/"],"insecure-registries":["10.1.2.3:5000","reg.local","127.0.0.0/8","http://old.example.com:8080","192.168.0.0/16"]}`,
		certs: map[string][]CertFile{
			"secure.example.com": {{Name: "ca.crt", Data: []byte("CA\n")}, {Name: "client.cert", Data: []byte("CERT\n")}, {Name: "client.key", Data: []byte("KEY\n")}},
			"reg.local":          {{Name: "extra.crt", Data: []byte("CA2\n")}, {Name: "lonely.cert", Data: []byte("X\n")}},
			"index.docker.io":    {{Name: "ca.crt", Data: []byte("HUBCA\n")}},
		},
		dirs: []string{"/usr/lib/cni", "/etc/cni/net.d"},
	},
	{
		name:          "cgroup-and-runtimes",
		daemon:        `{"exec-opts":["native.cgroupdriver=cgroupfs","isolation=hyperv","foo=bar"],"default-runtime":"kata","runtimes":{"kata":{"runtimeType":"io.containerd.kata.v2","options":{"ConfigPath":"/etc/kata/configuration.toml","Debug":true,"Nested":{"a":1}}},"gvisor":{"path":"/usr/local/bin/runsc","runtimeArgs":["--platform=kvm"]},"crun":{"runtimeType":"io.containerd.runc.v2","options":{"BinaryName":"/usr/bin/crun","SystemdCgroup":false}}}}`,
		kubeletConfig: "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\ncontainerLogMaxSize: 20Mi\n",
		dirs:          []string{"/opt/cni/bin"},
	},
	{
		name:           "logs-and-storage",
		daemon:         `{"log-driver":"local","log-opts":{"max-size":"1.5g","max-file":"1","compress":"true"},"storage-driver":"devicemapper","storage-opts":["dm.thinpooldev=/dev/mapper/thin"],"data-root":"/var/lib/docker","exec-root":"/mnt/run/docker"}`,
		kubeletVersion: "1.30.14",
		dirs:           []string{"/opt/cni/bin", "/etc/cni/net.d"},
	},
	{
		name:   "other-log-driver",
		daemon: `{"log-driver":"journald","log-opts":{"tag":"{{.Name}}"},"storage-driver":"vfs","log-level":"warn","tls":true,"tlsverify":true,"hosts":["tcp://0.0.0.0:2376"],"allow-nondistributable-artifacts":["r:5000"],"ip-forward":true}`,
		dirs:   []string{"/opt/cni/bin", "/etc/cni/net.d"},
	},
	{
		name:   "daemon-settings",
		daemon: `{"debug":true,"log-format":"json","metrics-addr":"127.0.0.1:9323","oom-score-adjust":-500,"max-concurrent-downloads":6,"max-concurrent-uploads":2,"max-download-attempts":9,"selinux-enabled":true,"features":{"cdi":true,"containerd-snapshotter":true,"buildkit":true},"cdi-spec-dirs":["/etc/cdi"],"containerd":"/run/custom/containerd.sock","containerd-namespace":"moby","live-restore":true,"seccomp-profile":"/etc/docker/seccomp.json","userns-remap":"default","cgroup-parent":"/docker","default-shm-size":"128M","no-new-privileges":true,"shutdown-timeout":30,"authorization-plugins":["authz"],"labels":["a=b"],"experimental":true}`,
		dirs:   []string{"/opt/cni/bin", "/etc/cni/net.d"},
	},
	{
		name:   "networking-keys",
		daemon: `{"bip":"172.17.0.1/16","mtu":1450,"iptables":false,"ip-forward":false,"ip-masq":false,"ipv6":true,"fixed-cidr-v6":"fd00::/64","default-address-pools":[{"base":"10.10.0.0/16","size":24}],"dns":["10.0.0.10"],"dns-search":["corp"],"userland-proxy":false,"icc":false}`,
		dirs:   []string{"/opt/cni/bin", "/etc/cni/net.d"},
	},
	{
		name:      "proxies-and-ulimits",
		daemon:    `{"proxies":{"https-proxy":"http://secure-proxy:3129","no-proxy":"localhost,.svc"},"default-ulimits":{"nofile":{"Name":"nofile","Soft":65536,"Hard":1048576},"core":{"Name":"core","Soft":-1,"Hard":-1},"weird":{"Name":"weird","Soft":1,"Hard":1}}}`,
		dockerEnv: map[string]string{"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "localhost", "https_proxy": "http://old:1"},
		dirs:      []string{"/opt/cni/bin", "/etc/cni/net.d"},
	},
	{
		name:    "dockerd-flags",
		daemon:  `{"registry-mirrors":["https://m.example.com"]}`,
		dockerd: []string{"-H", "fd://", "--containerd=/run/containerd/containerd.sock", "--insecure-registry", "r1:5000", "--insecure-registry=r2", "--exec-opt", "native.cgroupdriver=systemd", "--log-opt", "max-size=50m", "--add-runtime", "nv=/usr/bin/nvidia-container-runtime", "--default-runtime=nv", "-D", "--live-restore=false", "--default-ulimit", "nofile=1024:2048", "--http-proxy", "http://p:1"},
		dirs:    []string{"/opt/cni/bin", "/etc/cni/net.d"},
	},
	{
		name:           "kubelet-1.35",
		daemon:         `{"exec-opts":["native.cgroupdriver=systemd"]}`,
		kubeletFlags:   "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///var/run/cri-dockerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10\"\nKUBELET_EXTRA_ARGS='--cni-bin-dir=/usr/lib/cni,/opt/cni/bin --cni-conf-dir /etc/cni/custom.d --cgroup-driver=cgroupfs --container-log-max-files=4'\n",
		kubeletConfig:  "kind: KubeletConfiguration\ncontainerLogMaxFiles: 7\n",
		kubeletVersion: "1.35.0",
		dirs:           []string{"/usr/lib/cni", "/opt/cni/bin", "/etc/cni/custom.d"},
	},
	{
		name:           "empty-node-kubelet-1.31",
		kubeletVersion: "1.31.2",
	},
	{
		name: "empty-node-kubelet-unknown",
	},
}

func (tc convertCase) input(t *testing.T, v *version.Version) *Input {
	t.Helper()
	d, err := ParseDaemonJSON("/etc/docker/daemon.json", []byte(tc.daemon))
	if err != nil {
		t.Fatalf("daemon.json: %v", err)
	}
	var flagCfgs []*DaemonConfig
	if tc.dockerd != nil {
		df, err := ParseDockerdFlags("/lib/systemd/system/docker.service", tc.dockerd)
		if err != nil {
			t.Fatalf("dockerd flags: %v", err)
		}
		flagCfgs = append(flagCfgs, df.Config)
	}
	if d, err = MergeDaemon(d, flagCfgs...); err != nil {
		t.Fatalf("merge: %v", err)
	}
	in := &Input{ContainerdVersion: v, Daemon: d, Certs: tc.certs, ExistingDirs: map[string]bool{},
		DockerEnvironment: tc.dockerEnv, DockerEnvironmentSource: map[string]string{}}
	for k := range tc.dockerEnv {
		in.DockerEnvironmentSource[k] = "/etc/systemd/system/docker.service.d/http-proxy.conf"
	}
	for _, dir := range tc.dirs {
		in.ExistingDirs[dir] = true
	}
	if tc.kubeletFlags != "" {
		if in.KubeletFlags, err = ParseKubeletFlags("/var/lib/kubelet/kubeadm-flags.env", []byte(tc.kubeletFlags)); err != nil {
			t.Fatalf("kubelet flags: %v", err)
		}
	}
	if tc.kubeletConfig != "" {
		if in.KubeletConfig, err = ParseKubeletConfig("/var/lib/kubelet/config.yaml", []byte(tc.kubeletConfig)); err != nil {
			t.Fatalf("kubelet config: %v", err)
		}
	}
	if tc.kubeletVersion != "" {
		kv, err := version.ParseGeneric(tc.kubeletVersion)
		if err != nil {
			t.Fatal(err)
		}
		in.KubeletVersion = kv
	}
	return in
}

// render writes an Output as the golden text: every file, then the kubelet
// settings and the unmapped items as JSON.
func render(out *Output) []byte {
	var b bytes.Buffer
	for _, f := range out.Files {
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f.Path, f.Data)
	}
	rest := struct {
		Kubelet      map[string]any     `json:"kubelet"`
		KubeletFlags KubeletFlagChanges `json:"kubeletFlags"`
		Unmapped     []Unmapped         `json:"unmapped"`
	}{out.Kubelet, out.KubeletFlags, out.Unmapped}
	js, _ := json.MarshalIndent(rest, "", "  ")
	b.Write(js)
	b.WriteByte('\n')
	return b.Bytes()
}

func TestConvertGolden(t *testing.T) {
	for _, tc := range convertCases {
		for _, v := range versions {
			t.Run(fmt.Sprintf("%s/%d.%d", tc.name, v.Major(), v.Minor()), func(t *testing.T) {
				out, err := Convert(tc.input(t, v))
				if err != nil {
					t.Fatalf("Convert: %v", err)
				}
				for _, f := range out.Files {
					if strings.HasSuffix(f.Path, ".toml") {
						var m map[string]any
						if err := toml.Unmarshal(f.Data, &m); err != nil {
							t.Errorf("%s is not valid TOML: %v", f.Path, err)
						}
					}
				}
				golden := filepath.Join("testdata", "golden", fmt.Sprintf("%s-%d.%d.golden", tc.name, v.Major(), v.Minor()))
				got := render(out)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("output differs from %s (run go test -update and review the diff):\n%s", golden, got)
				}
			})
		}
	}
}

// TestConvertSchema checks, for every containerd version, the keys that
// must be there whatever the input (config.md section 7, issue 4).
func TestConvertSchema(t *testing.T) {
	tc := convertCases[0]
	tests := []struct {
		v       *version.Version
		version int64
		sandbox []string
		systemd []string
		cniBin  []string
	}{
		{version.MustParseGeneric("1.6.20"), 2, []string{"plugins", criV2, "sandbox_image"}, []string{"plugins", criV2, "containerd", "runtimes", "runc", "options", "SystemdCgroup"}, []string{"plugins", criV2, "cni", "bin_dir"}},
		{version.MustParseGeneric("1.7.34"), 2, []string{"plugins", criV2, "sandbox_image"}, []string{"plugins", criV2, "containerd", "runtimes", "runc", "options", "SystemdCgroup"}, []string{"plugins", criV2, "cni", "bin_dir"}},
		{version.MustParseGeneric("2.0.11"), 3, []string{"plugins", criImages, "pinned_images", "sandbox"}, []string{"plugins", criRuntime, "containerd", "runtimes", "runc", "options", "SystemdCgroup"}, []string{"plugins", criRuntime, "cni", "bin_dir"}},
		{version.MustParseGeneric("2.2.7"), 3, []string{"plugins", criImages, "pinned_images", "sandbox"}, []string{"plugins", criRuntime, "containerd", "runtimes", "runc", "options", "SystemdCgroup"}, []string{"plugins", criRuntime, "cni", "bin_dirs"}},
	}
	for _, tt := range tests {
		t.Run(tt.v.String(), func(t *testing.T) {
			out, err := Convert(tc.input(t, tt.v))
			if err != nil {
				t.Fatal(err)
			}
			var cfg map[string]any
			if err := toml.Unmarshal(out.File(ConfigPath).Data, &cfg); err != nil {
				t.Fatal(err)
			}
			if got := cfg["version"]; got != tt.version {
				t.Errorf("version = %v, want %d", got, tt.version)
			}
			if dp, ok := cfg["disabled_plugins"].([]any); !ok || len(dp) != 0 {
				t.Errorf("disabled_plugins = %v, want [] (the CRI plugin enabled)", cfg["disabled_plugins"])
			}
			if got := lookup(cfg, tt.sandbox...); got != "registry.aliyuncs.com/google_containers/pause:3.9" {
				t.Errorf("sandbox image = %v", got)
			}
			if got := lookup(cfg, tt.systemd...); got != true {
				t.Errorf("SystemdCgroup = %v, want true", got)
			}
			if got := lookup(cfg, tt.cniBin...); got == nil {
				t.Errorf("CNI bin dir missing at %v", tt.cniBin)
			}
			if got := lookup(cfg, "plugins", criV2, "stream_server_address"); got != "127.0.0.1" {
				t.Errorf("stream_server_address = %v", got)
			}
		})
	}
}

func lookup(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func TestMalformedInput(t *testing.T) {
	tests := []struct {
		name    string
		run     func() error
		wantErr []string // substrings: the file and the key
	}{
		{"bad JSON", func() error {
			_, err := ParseDaemonJSON("/etc/docker/daemon.json", []byte(`{"debug": tru}`))
			return err
		}, []string{"/etc/docker/daemon.json", "invalid JSON"}},
		{"trailing data", func() error { _, err := ParseDaemonJSON("d.json", []byte(`{} {}`)); return err }, []string{"d.json", "after the top-level object"}},
		{"not an object", func() error { _, err := ParseDaemonJSON("d.json", []byte(`["debug"]`)); return err }, []string{"d.json", "invalid JSON"}},
		{"unknown key", func() error { _, err := ParseDaemonJSON("d.json", []byte(`{"registry-mirror":["x"]}`)); return err }, []string{"d.json", `"registry-mirror"`, "unknown key"}},
		{"string for list", func() error {
			_, err := ParseDaemonJSON("d.json", []byte(`{"registry-mirrors":"https://m"}`))
			return err
		}, []string{"d.json", `"registry-mirrors"`, "want a list of strings, got a string"}},
		{"string for bool", func() error { _, err := ParseDaemonJSON("d.json", []byte(`{"live-restore":"yes"}`)); return err }, []string{"d.json", `"live-restore"`, "want a boolean"}},
		{"number for log-opts value", func() error { _, err := ParseDaemonJSON("d.json", []byte(`{"log-opts":{"max-file":3}}`)); return err }, []string{"d.json", `"log-opts.max-file"`, "want a string, got a number 3"}},
		{"float for int", func() error {
			_, err := ParseDaemonJSON("d.json", []byte(`{"max-concurrent-downloads":2.5}`))
			return err
		}, []string{"d.json", `"max-concurrent-downloads"`, "want an integer"}},
		{"unknown runtime field", func() error {
			_, err := ParseDaemonJSON("d.json", []byte(`{"runtimes":{"x":{"paht":"/bin/x"}}}`))
			return err
		}, []string{"d.json", `"runtimes"`, "paht"}},
		{"runtime path and type", func() error {
			_, err := ParseDaemonJSON("d.json", []byte(`{"runtimes":{"x":{"path":"/bin/x","runtimeType":"io.containerd.runc.v2"}}}`))
			return err
		}, []string{"d.json", `"runtimes"`, "mutually exclusive"}},
		{"unknown dockerd flag", func() error {
			_, err := ParseDockerdFlags("docker.service", []string{"--registry-mirrors=x"})
			return err
		}, []string{"docker.service", "--registry-mirrors", "unknown dockerd flag"}},
		{"dockerd flag without value", func() error { _, err := ParseDockerdFlags("docker.service", []string{"--data-root"}); return err }, []string{"docker.service", "--data-root", "needs a value"}},
		{"dockerd bool flag", func() error { _, err := ParseDockerdFlags("docker.service", []string{"--debug=maybe"}); return err }, []string{"docker.service", "--debug", "want a boolean"}},
		{"flag and file", func() error {
			f, _ := ParseDaemonJSON("/etc/docker/daemon.json", []byte(`{"hosts":["unix:///var/run/docker.sock"]}`))
			fl, _ := ParseDockerdFlags("docker.service", []string{"-H", "fd://"})
			_, err := MergeDaemon(f, fl.Config)
			return err
		}, []string{"/etc/docker/daemon.json", `"hosts"`, "both as a dockerd flag"}},
		{"bad cgroup driver", func() error { return convertErr(`{"exec-opts":["native.cgroupdriver=sytemd"]}`) }, []string{"/etc/docker/daemon.json", `"exec-opts"`, "sytemd"}},
		{"bad mirror", func() error { return convertErr(`{"registry-mirrors":["mirror.example.com"]}`) }, []string{"/etc/docker/daemon.json", `"registry-mirrors"`, "want an http(s) URL"}},
		{"mirror with query", func() error { return convertErr(`{"registry-mirrors":["https://m.example.com/x?y=1"]}`) }, []string{"/etc/docker/daemon.json", `"registry-mirrors"`, "want an http(s) URL"}},
		{"ulimit soft above hard", func() error { return convertErr(`{"default-ulimits":{"nofile":{"Name":"nofile","Soft":10,"Hard":5}}}`) }, []string{"/etc/docker/daemon.json", `"default-ulimits.nofile"`, "above the hard"}},
		{"bad insecure registry", func() error { return convertErr(`{"insecure-registries":["a b"]}`) }, []string{"/etc/docker/daemon.json", `"insecure-registries"`}},
		{"bad max-size", func() error { return convertErr(`{"log-opts":{"max-size":"lots"}}`) }, []string{"/etc/docker/daemon.json", `"log-opts.max-size"`}},
		{"bad max-file", func() error { return convertErr(`{"log-opts":{"max-file":"0"}}`) }, []string{"/etc/docker/daemon.json", `"log-opts.max-file"`}},
		{"bad log level", func() error { return convertErr(`{"log-level":"verbose"}`) }, []string{"/etc/docker/daemon.json", `"log-level"`}},
		{"default runtime missing", func() error { return convertErr(`{"default-runtime":"nvidia"}`) }, []string{"/etc/docker/daemon.json", `"default-runtime"`, "not in runtimes"}},
		{"runtime without path", func() error { return convertErr(`{"runtimes":{"x":{}}}`) }, []string{"/etc/docker/daemon.json", `"runtimes.x"`}},
		{"kubelet config wrong type", func() error {
			_, err := ParseKubeletConfig("/var/lib/kubelet/config.yaml", []byte("cgroupDriver: [systemd]\n"))
			return err
		}, []string{"/var/lib/kubelet/config.yaml", `"cgroupDriver"`, "want a string"}},
		{"kubelet config bad YAML", func() error {
			_, err := ParseKubeletConfig("/var/lib/kubelet/config.yaml", []byte("a: [\n"))
			return err
		}, []string{"/var/lib/kubelet/config.yaml", "invalid YAML"}},
		{"kubelet config other kind", func() error {
			_, err := ParseKubeletConfig("/var/lib/kubelet/config.yaml", []byte("kind: Pod\n"))
			return err
		}, []string{"/var/lib/kubelet/config.yaml", `"kind"`}},
		{"kubelet max files wrong type", func() error {
			_, err := ParseKubeletConfig("c.yaml", []byte("containerLogMaxFiles: five\n"))
			return err
		}, []string{"c.yaml", `"containerLogMaxFiles"`, "want an integer"}},
		{"kubelet flags unterminated quote", func() error {
			_, err := ParseKubeletFlags("/var/lib/kubelet/kubeadm-flags.env", []byte("KUBELET_KUBEADM_ARGS=\"--network-plugin=cni\n"))
			return err
		}, []string{"/var/lib/kubelet/kubeadm-flags.env", `"KUBELET_KUBEADM_ARGS"`, "unterminated"}},
		{"kubelet flags not an assignment", func() error {
			_, err := ParseKubeletFlags("/etc/default/kubelet", []byte("--cgroup-driver=systemd\n"))
			return err
		}, []string{"/etc/default/kubelet", "line 1", "NAME=VALUE"}},
		{"kubelet flags positional", func() error {
			_, err := ParseKubeletFlags("/etc/default/kubelet", []byte("KUBELET_EXTRA_ARGS=hello\n"))
			return err
		}, []string{"/etc/default/kubelet", "no arguments"}},
		{"kubelet bad cgroup driver flag", func() error {
			flags, _ := ParseKubeletFlags("/etc/default/kubelet", []byte("KUBELET_EXTRA_ARGS=--cgroup-driver=foo\n"))
			_, err := Convert(&Input{ContainerdVersion: version.MustParseGeneric("1.6.0"), KubeletFlags: flags})
			return err
		}, []string{"/etc/default/kubelet", `"--cgroup-driver"`}},
		{"unsupported containerd", func() error {
			_, err := Convert(&Input{ContainerdVersion: version.MustParseGeneric("1.5.0")})
			return err
		}, []string{`"containerd-version"`, "1.5.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("no error")
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("error %v is not an *InputError", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func convertErr(daemon string) error {
	d, err := ParseDaemonJSON("/etc/docker/daemon.json", []byte(daemon))
	if err != nil {
		return err
	}
	_, err = Convert(&Input{ContainerdVersion: version.MustParseGeneric("2.0.0"), Daemon: d})
	return err
}

func TestDockerSizeToQuantity(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10m", "10M"}, {"100m", "100M"}, {"1g", "1G"}, {"100k", "100k"}, {"1.5g", "1500M"},
		{"10MB", "10M"}, {"512", "512"}, {"2.5k", "2500"}, {"10mi", "10M"}, {"1t", "1T"},
	}
	for _, tt := range tests {
		got, err := dockerSizeToQuantity(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("dockerSizeToQuantity(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "m", "-1m", "ten", "1x"} {
		if _, err := dockerSizeToQuantity(bad); err == nil {
			t.Errorf("dockerSizeToQuantity(%q): no error", bad)
		}
	}
}

func TestParseUnit(t *testing.T) {
	files := []UnitFile{
		{Path: "/lib/systemd/system/docker.service", Data: []byte("[Unit]\nDescription=x\n[Service]\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS\n")},
		{Path: "/etc/systemd/system/docker.service.d/10-override.conf", Data: []byte("[Service]\nExecStart=\nExecStart=/usr/bin/dockerd \\\n  --data-root=/data/docker ${EXTRA}\nEnvironment=\"HTTP_PROXY=http://p:3128\" NO_PROXY=localhost\n")},
	}
	u, err := ParseUnit(files)
	if err != nil {
		t.Fatal(err)
	}
	args, err := u.ExpandArgs(map[string]string{"EXTRA": "--debug", "DOCKER_OPTS": "--mtu 1400"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args, " "); got != "--data-root=/data/docker --debug" {
		t.Errorf("args = %q", got)
	}
	if u.ExecStartFile != files[1].Path {
		t.Errorf("ExecStartFile = %q", u.ExecStartFile)
	}
	if u.Environment["HTTP_PROXY"] != "http://p:3128" || u.Environment["NO_PROXY"] != "localhost" {
		t.Errorf("Environment = %v", u.Environment)
	}
	if len(u.EnvironmentFiles) != 1 || u.EnvironmentFiles[0] != "/etc/default/docker" {
		t.Errorf("EnvironmentFiles = %v", u.EnvironmentFiles)
	}
}

func TestParseKubeletFlags(t *testing.T) {
	flags, err := ParseKubeletFlags("f.env", []byte("# kubeadm\nKUBELET_KUBEADM_ARGS=\"--network-plugin=cni --pod-infra-container-image k8s.gcr.io/pause:3.6 --fail-swap-on=false\"\nexport KUBELET_EXTRA_ARGS='--node-labels=a=b --v 2 --rotate-certificates'\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range flags {
		got = append(got, fmt.Sprintf("%s=%s@%d", f.Name, f.Value, f.Line))
	}
	want := "network-plugin=cni@2 pod-infra-container-image=k8s.gcr.io/pause:3.6@2 fail-swap-on=false@2 node-labels=a=b@3 v=2@3 rotate-certificates=@3"
	if strings.Join(got, " ") != want {
		t.Errorf("flags = %s\nwant    %s", strings.Join(got, " "), want)
	}
}

func TestPauseImage(t *testing.T) {
	for v, want := range map[string]string{"1.23.0": "3.6", "1.30.1": "3.9", "1.31.0": "3.10", "1.35.0": "3.10.1", "1.20.0": "3.4.1"} {
		if got := PauseImage(version.MustParseGeneric(v)); got != "registry.k8s.io/pause:"+want {
			t.Errorf("PauseImage(%v) = %s", v, got)
		}
	}
}
