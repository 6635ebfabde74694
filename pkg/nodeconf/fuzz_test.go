package nodeconf

import (
	"errors"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"k8s.io/apimachinery/pkg/util/version"
)

// checkOutput converts cfg for both schemas and checks every generated TOML
// file parses again: converting must never panic nor write broken TOML.
func checkOutput(t *testing.T, in *Input) {
	t.Helper()
	for _, v := range []*version.Version{version.MustParseGeneric("1.6.20"), version.MustParseGeneric("1.7.0"), version.MustParseGeneric("2.0.0"), version.MustParseGeneric("2.2.0")} {
		in.ContainerdVersion = v
		out, err := Convert(in)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Convert: error is not an *InputError: %v", err)
			}
			continue
		}
		for _, f := range out.Files {
			if len(f.Path) > 5 && f.Path[len(f.Path)-5:] == ".toml" {
				var m map[string]any
				if err := toml.Unmarshal(f.Data, &m); err != nil {
					t.Fatalf("%s does not parse: %v\n%s", f.Path, err, f.Data)
				}
			}
		}
	}
}

func FuzzParseDaemonJSON(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"registry-mirrors":["https://m.example.com"],"insecure-registries":["r:5000","10.0.0.0/8"]}`,
		`{"exec-opts":["native.cgroupdriver=systemd"],"log-opts":{"max-size":"10m","max-file":"3"}}`,
		`{"default-runtime":"nvidia","runtimes":{"nvidia":{"path":"nvidia-container-runtime","runtimeArgs":["--x"]}}}`,
		`{"runtimes":{"k":{"runtimeType":"io.containerd.kata.v2","options":{"ConfigPath":"/x","Debug":true,"N":[1]}}}}`,
		`{"proxies":{"http-proxy":"http://p:3128","no-proxy":"a,b"},"default-ulimits":{"nofile":{"Name":"nofile","Soft":1024,"Hard":4096}}}`,
		`{"data-root":"/data/docker","storage-driver":"overlay2","max-concurrent-downloads":10,"features":{"cdi":true}}`,
		`{"debug":true,"log-format":"json","metrics-addr":"127.0.0.1:9323","oom-score-adjust":-500}`,
		`{"bip":"1","unknown":1}`, `{"registry-mirrors":"x"}`, `[1]`, `null`, `{"a":`,
		`{"log-level":"info","log-opts":{"max-size":"1m","max-size":"2m"},"log-level":"warn","disable-legacy-registry":true}`,
		`{"registry-mirrors":["https://art.example.com/artifactory/api/docker/hub/"],"insecure-registries":["h:1","https://h2"]}`,
		`{"default-ulimits":{"core":{"Name":"core","Soft":-1,"Hard":-1}},"runtimes":{"docker-runc":{"path":"/usr/libexec/docker/docker-runc-current"}},"default-runtime":"docker-runc"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseDaemonJSON("daemon.json", data)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "daemon.json" {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		kernel := version.MustParseGeneric("3.10.0")
		checkOutput(t, &Input{Daemon: cfg, ExistingDirs: map[string]bool{"/opt/cni/bin": true}, Mounts: []string{"/", "/var/lib/docker", "/data/docker"}, KernelVersion: kernel})
	})
}

// FuzzReadEnvFile: an EnvironmentFile never makes the reader panic; what it
// returns are valid variable names, and every skipped line names its file.
func FuzzReadEnvFile(f *testing.F) {
	for _, s := range []string{
		"OPTIONS='--selinux-enabled --log-driver=journald'\nif [ -z \"${DOCKER_CERT_PATH}\" ]; then\n    DOCKER_CERT_PATH=/etc/docker\nfi\n",
		"DOCKER_OPTS=\"--dns 8.8.8.8\"\n; comment\n# comment\n", "export A=b\\\n c", "A='x", "=x", "a b=c",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, skipped, err := ReadEnvFile("/etc/sysconfig/docker", data)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "/etc/sysconfig/docker" {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, v := range vars {
			if !validEnvName(v.Name) {
				t.Fatalf("invalid variable name %q from %q", v.Name, data)
			}
		}
		for _, s := range skipped {
			if s.File != "/etc/sysconfig/docker" || s.Line < 1 {
				t.Fatalf("skipped line %+v", s)
			}
		}
	})
}

func FuzzParseKubeletFlags(f *testing.F) {
	for _, s := range []string{
		`KUBELET_KUBEADM_ARGS="--network-plugin=cni --pod-infra-container-image=k8s.gcr.io/pause:3.6"`,
		"KUBELET_EXTRA_ARGS='--cgroup-driver systemd --cni-bin-dir=/usr/lib/cni,/opt/cni/bin'\n# c\n",
		"export A=\"--container-runtime=remote \\\n --container-runtime-endpoint=unix:///run/containerd/containerd.sock\"",
		`X="--a=\"b c\"" Y=1`, `KUBELET_KUBEADM_ARGS="--x`, `=--a`, "A=b\\", `A=--cni-conf-dir "/etc/cni/net.d"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		flags, err := ParseKubeletFlags("kubeadm-flags.env", data)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "kubeadm-flags.env" {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, fl := range flags {
			if fl.Name == "" {
				t.Fatalf("flag without a name from %q", data)
			}
		}
		checkOutput(t, &Input{KubeletFlags: flags})
	})
}
