package phases

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodeplan"
)

func TestRehearsalConfig(t *testing.T) {
	// A converted config.toml of the shape convert writes for containerd 1.6
	// (version 2) and 2.x (version 3): certs.d and the base runtime spec
	// under /etc/containerd, the default sockets.
	for _, tc := range []struct {
		schema int
		in     string
	}{
		{2, `version = 2
root = "/var/lib/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    base_runtime_spec = "/etc/containerd/cri-base.json"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
`},
		{3, `version = 3
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  base_runtime_spec = "/etc/containerd/cri-base.json"
`},
	} {
		out, err := rehearsalConfig([]byte(tc.in), tc.schema)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := toml.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("schema %d: output does not parse: %v\n%s", tc.schema, err, out)
		}
		get := func(keys ...string) any {
			var v any = cfg
			for _, k := range keys {
				m, ok := v.(map[string]any)
				if !ok {
					return nil
				}
				v = m[k]
			}
			return v
		}
		if get("root") != rehearseDir+"/root" || get("state") != rehearseRun+"/state" || get("grpc", "address") != rehearseSock ||
			get("ttrpc", "address") != rehearseSock+".ttrpc" || get("debug", "address") != "" || get("metrics", "address") != "" {
			t.Errorf("schema %d: not private:\n%s", tc.schema, out)
		}
		if int(get("version").(int64)) != tc.schema {
			t.Errorf("schema %d: version became %v", tc.schema, get("version"))
		}
		s := string(out)
		if strings.Contains(s, `"/etc/containerd/`) || strings.Contains(s, `'/etc/containerd/`) {
			t.Errorf("schema %d: a path still under /etc/containerd:\n%s", tc.schema, s)
		}
		if !strings.Contains(s, rehearseDir+"/etc/containerd/certs.d") || !strings.Contains(s, rehearseDir+"/etc/containerd/cri-base.json") {
			t.Errorf("schema %d: certs.d or the base spec not moved:\n%s", tc.schema, s)
		}
		if nri := get("plugins", "io.containerd.nri.v1.nri", "disable"); (tc.schema >= 3) != (nri == true) {
			t.Errorf("schema %d: NRI disable = %v", tc.schema, nri)
		}
	}
	if _, err := rehearsalConfig([]byte("version = 2\n[plugins\n"), 2); err == nil {
		t.Error("a config that does not parse was rewritten")
	}
}

func TestRehearsalFiles(t *testing.T) {
	p := &nodeplan.Plan{Schema: 2, Containerd: []nodeplan.FileChange{
		{Path: nodeconf.ConfigPath, New: []byte("version = 2\n")},
		{Path: nodeconf.CertsDir + "/docker.io/hosts.toml", New: []byte(`server = "https://registry-1.docker.io"`)},
		{Path: nodeconf.DropInDir + "/http-proxy.conf", New: []byte("[Service]\nEnvironment=\"HTTPS_PROXY=http://proxy:3128\" \"NO_PROXY=10.0.0.0/8,.svc\"\nEnvironment=HTTP_PROXY=http://proxy:3128\n")},
	}}
	files, env, err := rehearsalFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for k := range files {
		paths = append(paths, k)
	}
	if len(files) != 2 || files[rehearseDir+nodeconf.CertsDir+"/docker.io/hosts.toml"] == nil || files[rehearseDir+nodeconf.ConfigPath] == nil {
		t.Errorf("files laid out: %v", paths)
	}
	want := []string{"HTTPS_PROXY=http://proxy:3128", "NO_PROXY=10.0.0.0/8,.svc", "HTTP_PROXY=http://proxy:3128"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("environment %q, want %q", env, want)
	}
	if _, _, err := rehearsalFiles(&nodeplan.Plan{}); err == nil {
		t.Error("a plan without config.toml was rehearsed")
	}
}

func TestRegistryErrorNamesTheSetting(t *testing.T) {
	e := &RegistryError{Where: "the rehearsal", Failures: []RegistryFailure{{Ref: "192.0.2.2:5000/app:1", Registry: "192.0.2.2:5000",
		Hosts: []string{"https://192.0.2.2:5000/v2"}, Err: "http: server gave HTTP response to HTTPS client"}},
		Unmapped: []nodeconf.Unmapped{{Key: "insecure-registries", Value: "192.0.2.0/24", Reason: "a CIDR"}}}
	msg := e.Error()
	for _, want := range []string{"192.0.2.2:5000/app:1", "registry 192.0.2.2:5000", "https://192.0.2.2:5000/v2", "insecure-registries=192.0.2.0/24", "HTTP response"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	var re *RegistryError
	if !errors.As(error(e), &re) {
		t.Error("not a RegistryError")
	}
}
