package rules

import (
	"fmt"
	"os"
	"path"
	"reflect"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/check"
)

func TestScriptMatch(t *testing.T) {
	tests := []struct {
		script string
		want   string // "" for no match
	}{
		{"docker ps", "docker ps"},
		{"/usr/bin/docker image prune -af", "/usr/bin/docker image prune -af"},
		{"set -e\nif true; then docker rm -f x; fi\n", "if true; then docker rm -f x; fi"},
		{"systemctl restart docker", "systemctl restart docker"},
		{"systemctl --no-block restart docker.service", "systemctl --no-block restart docker.service"},
		{"service docker reload", "service docker reload"},
		{"cat > /etc/docker/daemon.json <<EOF", "cat > /etc/docker/daemon.json <<EOF"},
		{"dockerd --data-root /x", "dockerd --data-root /x"},
		{"dockerize -wait tcp://db:5432", ""},
		{"docker-compose up", ""},
		{"echo building Dockerfile", ""},
		{"systemctl restart containerd", ""},
		{"crictl ps", ""},
	}
	for _, tt := range tests {
		if got := scriptMatch(tt.script); got != tt.want {
			t.Errorf("scriptMatch(%q) = %q, want %q", tt.script, got, tt.want)
		}
	}
}

func TestIsDind(t *testing.T) {
	tests := map[string]bool{
		"docker:dind":                            true,
		"docker:24.0.7-dind":                     true,
		"docker.io/library/docker:dind-rootless": true,
		"registry.example.com/ci/dind:1":         true,
		"registry.example.com/ci/docker-dind":    true,
		"docker:24-cli":                          false,
		"registry.example.com/dinder:1":          false,
		"nginx:dind":                             false,
		"localhost:5000/docker@sha256:abc":       false,
	}
	for image, want := range tests {
		if got := isDind(image); got != want {
			t.Errorf("isDind(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestNormalizePathAndWithin(t *testing.T) {
	tests := []struct {
		path, base string
		want       bool
	}{
		{"/var/run/docker.sock", "/run", true},
		{"/run/docker.sock/", "/var/run/docker.sock", true},
		{"/var/run/../run/docker.sock", "/run/docker.sock", true},
		{"/var/runner", "/var/run", false},
		{"/etc/dockerfiles", "/etc/docker", false},
		{"/anything", "/", true},
	}
	for _, tt := range tests {
		if got := within(normalizePath(tt.path), normalizePath(tt.base)); got != tt.want {
			t.Errorf("within(%q, %q) = %v, want %v", tt.path, tt.base, got, tt.want)
		}
	}
}

func TestAgentImageForms(t *testing.T) {
	cat, err := BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newAgentRule(cat)
	tests := map[string]string{
		"datadog/agent:7":                           "Datadog Agent",
		"gcr.io/datadoghq/agent:7.50.0":             "Datadog Agent",
		"public.ecr.aws/datadog/agent@sha256:00":    "Datadog Agent",
		"docker.io/falcosecurity/falco:0.36":        "Falco",
		"registry.example.com/datadog-agent-docs:1": "",
		"nginx": "",
	}
	for image, want := range tests {
		got := ""
		if a := r.matchAgent(image); a != nil {
			got = a.Name
		}
		if got != want {
			t.Errorf("matchAgent(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestCatalogErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "agents:\n- name: x\n  images: [a]\n  colour: red\n", "colour"},
		{"bad pattern", "logConfigs:\n- name: x\n  pattern: '('\n", "bad pattern"},
		{"bad glob", "agents:\n- name: x\n  images: ['[']\n", "bad image pattern"},
		{"missing name", "agents:\n- images: [a]\n", "needs a name"},
		{"not yaml", "agents: [\n", "parse catalog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tt.yaml), "extra.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "extra.yaml") {
				t.Errorf("error %v, want one naming extra.yaml and %q", err, tt.want)
			}
		})
	}
}

func TestCatalogConditionErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty condition", "agents:\n- name: x\n  images: [a]\n  unless: [{}]\n", "needs env, args or mounts"},
		{"bad args", "agents:\n- name: x\n  images: [a]\n  when: [{args: ['(']}]\n", "bad args pattern"},
		{"bad env value", "agents:\n- name: x\n  images: [a]\n  unless: [{env: [{name: A, value: '('}]}]\n", "bad value pattern"},
		{"env without name", "agents:\n- name: x\n  images: [a]\n  unless: [{env: [{value: a}]}]\n", "without a name"},
		{"relative mount", "agents:\n- name: x\n  images: [a]\n  unless: [{mounts: [run/x]}]\n", "not absolute"},
		{"known mount without reason", "knownMounts:\n- name: x\n  images: [a]\n  paths: [/]\n", "needs a name"},
		{"known mount of a rule it cannot lower", "knownMounts:\n- name: x\n  images: [a]\n  paths: [/]\n  reason: r\n  rules: [docker-socket-mount]\n", `rule "docker-socket-mount" cannot be lowered`},
		{"known mount with a bad condition", "knownMounts:\n- name: x\n  images: [a]\n  paths: [/]\n  reason: r\n  when: [{args: ['(']}]\n", "knownMounts[0] (x): when[0]: bad args pattern"},
		{"bad monitor pattern", "monitorConfigs:\n- name: x\n  pattern: '('\n", "monitorConfigs[0] (x): bad pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tt.yaml), "extra.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "extra.yaml") {
				t.Errorf("error %v, want one naming extra.yaml and %q", err, tt.want)
			}
		})
	}
}

// TestCatalogFileConditions: a --catalog file can use when, unless and
// knownMounts on images of its own.
func TestCatalogFileConditions(t *testing.T) {
	extra := `agents:
- name: Acme Agent
  images: ["acme/agent"]
  note: reads the Docker socket
  when: [{args: ['--mode=node']}]
  unless: [{env: [{name: ACME_RUNTIME, value: '^containerd$'}], mounts: [/run/containerd/containerd.sock]}]
knownMounts:
- name: Acme Agent
  images: ["acme/agent"]
  paths: [/run]
  reason: it keeps its lock in /run/acme
- name: Acme Agent on CRI logs
  images: ["acme/agent"]
  paths: [/var/lib/docker/containers, /etc/docker]
  rules: [docker-json-logs]
  unless: [{args: ['--logs=json']}]
  reason: it reads /var/log/pods
`
	dir := t.TempDir()
	f := dir + "/extra.yaml"
	if err := os.WriteFile(f, []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalog(f)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := All(Options{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(args []string, env []corev1.EnvVar, hostPaths ...string) *check.Target {
		spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "registry.example.com/acme/agent:2", Args: args, Env: env}}}
		for i, p := range hostPaths {
			name := fmt.Sprintf("v%d", i)
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p}}})
			spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/host" + p})
		}
		return &check.Target{PodSpec: spec, SpecPath: "spec"}
	}
	hits := func(t *check.Target) map[string]string {
		out := map[string]string{}
		for _, r := range rs {
			for _, h := range r.Check(t) {
				sev := r.Meta().Severity
				if h.Severity != nil {
					sev = *h.Severity
				}
				out[r.Meta().ID] = sev.String()
			}
		}
		return out
	}
	containerd := []corev1.EnvVar{{Name: "ACME_RUNTIME", Value: "containerd"}}
	tests := []struct {
		name string
		t    *check.Target
		want map[string]string
	}{
		{"when holds", pod([]string{"--mode=node"}, nil), map[string]string{"known-docker-agent": "medium"}},
		{"when does not hold", pod([]string{"--mode=cluster"}, nil), map[string]string{}},
		{"unless holds", pod([]string{"--mode=node"}, containerd, "/var/run/containerd"), map[string]string{}},
		{"unless needs every part", pod([]string{"--mode=node"}, containerd), map[string]string{"known-docker-agent": "medium"}},
		{"known mount is info", pod([]string{"--mode=cluster"}, nil, "/var/run"), map[string]string{"docker-socket-dir-mount": "info"}},
		{"other mount stays medium", pod([]string{"--mode=cluster"}, nil, "/"), map[string]string{"docker-socket-dir-mount": "medium"}},
		{"known mount of another rule", pod([]string{"--mode=cluster"}, nil, "/var/lib/docker/containers"), map[string]string{"docker-json-logs": "info"}},
		{"known mount's unless holds", pod([]string{"--mode=cluster", "--logs=json"}, nil, "/var/lib/docker/containers"), map[string]string{"docker-json-logs": "medium"}},
		{"known mount lowers only its rules", pod([]string{"--mode=cluster"}, nil, "/etc/docker"), map[string]string{"docker-config-mount": "medium"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hits(tt.t); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("hits %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRequiredLiteral(t *testing.T) {
	cat, err := BuiltinCatalog()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		`/var/lib/docker/containers`:                                                  "/var/lib/docker/containers",
		`(?m)^\s*-\s*docker:\s*\{\s*\}`:                                               "docker:",
		`(?is)path\s+/var/log/containers/[^x]`:                                        "/var/log/containers/",
		`(?im)^[ \t]*(?:parser(?:_firstline)?|docker_mode)[ \t]+(?:docker|on)[ \t]*$`: "parser|docker_mode",
		`ab|cd`:   "ab|cd",
		`ab|c*`:   "",
		`(x+y)+z`: "x",
		`a*`:      "",
	}
	for p, want := range tests {
		if got, _ := requiredLiterals(p); strings.Join(got, "|") != want {
			t.Errorf("requiredLiterals(%q) = %q, want %q", p, got, want)
		}
	}
	// Every match of every catalogued pattern contains its literal.
	samples := []string{"Path /var/LOG/containers/*.log\n<parse>\n@type json", "  - docker: {}", "PARSER docker", "Docker_Mode On",
		`type = "docker_logs"`, `"source": "dockerd"`, `"logPath": "/var/log/docker.log"`, "--component=docker", "/var/lib/docker/containers"}
	for _, l := range append(cat.LogConfigs, cat.MonitorConfigs...) {
		re := regexp.MustCompile(l.Pattern)
		lits, fold := requiredLiterals(l.Pattern)
		for _, s := range samples {
			in := s
			if fold {
				in = strings.ToLower(s)
			}
			if re.MatchString(s) && !containsAny(in, lits) {
				t.Errorf("%s matches %q, which lacks all its literals %q", l.Name, s, lits)
			}
		}
	}
}

// TestIsClean: isClean says a path is clean exactly when path.Clean leaves
// it as it is (and it is absolute), so normalizePath's shortcut changes nothing.
func TestIsClean(t *testing.T) {
	for _, p := range []string{"/", "//", "/a", "/a/", "/a//b", "/a/./b", "/a/../b", "/.", "/..", "/a/.", "/a/..",
		"/a/.b", "/a/..b", "/a/b.", "/var/run/docker.sock", "a/b", "", "/.../x", "/a/b/c"} {
		want := strings.HasPrefix(p, "/") && path.Clean(p) == p
		if got := isClean(p); got != want {
			t.Errorf("isClean(%q) = %v, want %v", p, got, want)
		}
		if got, want := normalizePath(p), normalizeSlow(p); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", p, got, want)
		}
	}
}

func normalizeSlow(p string) string {
	if p == "" {
		return ""
	}
	p = path.Clean("/" + p)
	if p == "/var/run" || strings.HasPrefix(p, "/var/run/") {
		p = "/run" + strings.TrimPrefix(p, "/var/run")
	}
	return p
}

func TestHasSegment(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/root/.docker", true}, {"/root/.docker/config.json", true}, {"/.docker", true},
		{"/root/.dockerx", false}, {"/root/x.docker", false}, {"/", false}, {"", false},
	}
	for _, tt := range tests {
		if got := hasSegment(tt.path, ".docker"); got != tt.want {
			t.Errorf("hasSegment(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
