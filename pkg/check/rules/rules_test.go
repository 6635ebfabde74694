package rules

import (
	"strings"
	"testing"
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
