package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/report"
)

// TestCheckOutputs checks every -o format of `unshim check`, live and on files.
func TestCheckOutputs(t *testing.T) {
	e := requireLab(t)
	ns := e.namespace(t)
	e.apply(t, ns, readManifest(t, "testdata/rules/docker-socket-mount.yaml"))
	e.apply(t, ns, readManifest(t, "testdata/rules/docker-log-config.yaml"))
	live := func(o string) result { return run(t, "", e.kube("check", "-n", ns, "-o", o)...) }

	t.Run("table", func(t *testing.T) {
		r := live("table")
		if r.code != 1 {
			t.Fatalf("exit %d: %s", r.code, r.errOut)
		}
		for _, want := range []string{"SEVERITY", "OBJECT", "CRITICAL", "Pod/" + ns + "/pos-var-run-socket", "docker-socket-mount", "docker-log-config", "What to do:", "crictl", "/var/log/pods", "findings ("} {
			if !strings.Contains(r.out, want) {
				t.Errorf("table lacks %q:\n%s", want, r.out)
			}
		}
		if !strings.Contains(r.errOut, "findings at or above high") {
			t.Errorf("stderr lacks the exit reason: %q", r.errOut)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := live("json")
		l := decodeFindings(t, r)
		var raw map[string]any
		if err := json.Unmarshal([]byte(r.out), &raw); err != nil {
			t.Fatal(err)
		}
		items, ok := raw["findings"].([]any)
		if !ok || len(items) == 0 {
			t.Fatalf("no top-level findings array: %s", r.out)
		}
		first := items[0].(map[string]any)
		for _, k := range []string{"object", "rule", "severity", "message", "remedy"} {
			if _, ok := first[k]; !ok {
				t.Errorf("finding lacks %q: %v", k, first)
			}
		}
		obj := first["object"].(map[string]any)
		for _, k := range []string{"kind", "namespace", "name"} {
			if _, ok := obj[k]; !ok {
				t.Errorf("object lacks %q: %v", k, obj)
			}
		}
		if l.Summary.Total != len(l.Findings) || l.Findings[0].Severity.String() != "critical" {
			t.Errorf("summary %+v / first severity %s", l.Summary, l.Findings[0].Severity)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		r := live("yaml")
		var l report.FindingList
		if err := yaml.UnmarshalStrict([]byte(r.out), &l); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, r.out)
		}
		if len(l.Findings) == 0 || l.Findings[0].Object.Namespace != ns {
			t.Errorf("yaml findings: %+v", l.Findings)
		}
	})
	t.Run("sarif", func(t *testing.T) {
		for _, args := range [][]string{e.kube("check", "-n", ns, "-o", "sarif"), {"check", "-f", "testdata/rules/docker-socket-mount.yaml", "-o", "sarif"}} {
			r := run(t, "", args...)
			var s struct {
				Version string `json:"version"`
				Runs    []struct {
					Tool struct {
						Driver struct {
							Name  string `json:"name"`
							Rules []struct {
								ID string `json:"id"`
							} `json:"rules"`
						} `json:"driver"`
					} `json:"tool"`
					Results []struct {
						RuleID    string `json:"ruleId"`
						Level     string `json:"level"`
						Locations []struct {
							PhysicalLocation *struct {
								ArtifactLocation struct {
									URI string `json:"uri"`
								} `json:"artifactLocation"`
								Region struct {
									StartLine int `json:"startLine"`
								} `json:"region"`
							} `json:"physicalLocation"`
						} `json:"locations"`
					} `json:"results"`
				} `json:"runs"`
			}
			if err := json.Unmarshal([]byte(r.out), &s); err != nil {
				t.Fatalf("not SARIF JSON: %v\n%s", err, r.out)
			}
			all, _ := rules.All(rules.Options{})
			if s.Version != "2.1.0" || len(s.Runs) != 1 || s.Runs[0].Tool.Driver.Name != "unshim" || len(s.Runs[0].Tool.Driver.Rules) != len(all) {
				t.Fatalf("SARIF header: %+v", s)
			}
			res := s.Runs[0].Results
			if len(res) == 0 || res[0].RuleID != "docker-socket-mount" || res[0].Level != "error" {
				t.Fatalf("SARIF results: %+v", res)
			}
			fromFile := args[1] == "-f"
			if pl := res[0].Locations[0].PhysicalLocation; fromFile != (pl != nil) || (fromFile && (pl.ArtifactLocation.URI == "" || pl.Region.StartLine == 0)) {
				t.Errorf("physical location %+v for -f=%v", pl, fromFile)
			}
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		if r := live("xml"); r.code != 2 || !strings.Contains(r.errOut, "unknown output format") {
			t.Errorf("exit %d, stderr %q", r.code, r.errOut)
		}
	})
}

// TestCheckExitCodes covers 0, 1 and 2, and the --fail-on threshold.
func TestCheckExitCodes(t *testing.T) {
	e := requireLab(t)
	clean := e.namespace(t)
	e.apply(t, clean, readManifest(t, "testdata/rules/docker-socket-dir-mount.yaml")[3:]) // the neg-* objects only
	medium := e.namespace(t)
	e.apply(t, medium, readManifest(t, "testdata/rules/docker-log-config.yaml"))
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"nothing found", e.kube("check", "-n", clean), 0},
		{"medium below default high", e.kube("check", "-n", medium), 0},
		{"medium at --fail-on medium", e.kube("check", "-n", medium, "--fail-on", "medium"), 1},
		{"critical file", []string{"check", "-f", "testdata/rules/docker-socket-mount.yaml"}, 1},
		{"critical file, --fail-on none", []string{"check", "-f", "testdata/rules/docker-socket-mount.yaml", "--fail-on", "none"}, 0},
		{"bad --fail-on", []string{"check", "-f", "testdata/rules/docker-socket-mount.yaml", "--fail-on", "severe"}, 2},
		{"directory", []string{"check", "-f", "testdata/rules"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := run(t, "", tt.args...); r.code != tt.want {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.want, r.out, r.errOut)
			}
		})
	}
}

// TestCheckBadInput: every kind of bad input gives a clear message and exit 2.
func TestCheckBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("malformed.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: [broken\n")
	wrongType := write("wrongtype.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: \"not a list\"\n")
	notObject := write("list.yaml", "- a\n- b\n")
	badKubeconfig := write("kubeconfig", "apiVersion: v1\nkind: Config\nclusters: [\n")
	// An apiserver address where nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	unreachable := write("unreachable", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://"+addr+"\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: x}\ncurrent-context: c\n")

	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"malformed YAML names file and line", "", []string{"check", "-f", malformed}, []string{malformed + ":9", "invalid YAML"}},
		{"malformed YAML on stdin", "kind: Pod\napiVersion: v1\nspec: [\n", []string{"check", "-f", "-"}, []string{"<stdin>:"}},
		{"wrong type names the field", "", []string{"check", "-f", wrongType}, []string{wrongType + ":6", "spec.containers"}},
		{"not an object", "", []string{"check", "-f", notObject}, []string{notObject + ":1", "not a Kubernetes object"}},
		{"missing file", "", []string{"check", "-f", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml", "no such file"}},
		{"malformed kubeconfig", "", []string{"--kubeconfig", badKubeconfig, "check"}, []string{"kubeconfig"}},
		{"unreachable apiserver", "", []string{"--kubeconfig", unreachable, "check", "-A", "--request-timeout", "5s"}, []string{addr, "connection refused"}},
		{"unreachable apiserver, nodes", "", []string{"--kubeconfig", unreachable, "nodes"}, []string{addr}},
		{"-A with -f", "", []string{"check", "-A", "-f", malformed}, []string{"-A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.stdin, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", r.code, r.errOut)
			}
			if r.out != "" {
				t.Errorf("wrote results on bad input: %q", r.out)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.errOut, w) {
					t.Errorf("stderr %q lacks %q", r.errOut, w)
				}
			}
		})
	}
}

// TestPluginName: installed as kubectl-unshim, the command calls itself `kubectl unshim`.
func TestPluginName(t *testing.T) {
	r := runAs(t, "kubectl-unshim", "", "--help")
	if r.code != 0 || !strings.Contains(r.out, "kubectl unshim [command]") {
		t.Errorf("exit %d; help:\n%s", r.code, r.out)
	}
	r = runAs(t, "unshim", "", "--help")
	if !strings.Contains(r.out, "unshim [command]") || strings.Contains(r.out, "kubectl unshim [command]") {
		t.Errorf("help as unshim:\n%s", r.out)
	}
	for _, flag := range []string{"--kubeconfig", "--context", "--namespace", "--as"} {
		if !strings.Contains(r.out, flag) {
			t.Errorf("help lacks kubectl's %s flag", flag)
		}
	}
}

// TestCatalogFlag: --catalog adds agents and log patterns; a bad catalog is exit 2.
func TestCatalogFlag(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte("agents:\n- name: Acme Agent\n  images: [\"*/acme/agent\"]\n  note: reads docker.sock\n  remedy: upgrade acme to 5.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(pod, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: acme}\nspec:\n  containers:\n  - name: a\n    image: registry.example.com/acme/agent:4.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "check", "-f", pod, "-o", "json")
	if l := decodeFindings(t, r); len(l.Findings) != 0 {
		t.Fatalf("built-in catalog knows Acme: %+v", l.Findings)
	}
	r = run(t, "", "check", "-f", pod, "-o", "json", "--catalog", cat)
	l := decodeFindings(t, r)
	if len(l.Findings) != 1 || l.Findings[0].Rule != "known-docker-agent" || !strings.Contains(l.Findings[0].Message, "Acme Agent") || l.Findings[0].Remedy != "upgrade acme to 5.0" || l.Findings[0].Line != 7 {
		t.Fatalf("findings with --catalog: %+v", l.Findings)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("agents:\n- name: x\n  images: [a]\n  colour: red\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "check", "-f", pod, "--catalog", bad)
	if r.code != 2 || !strings.Contains(r.errOut, bad) || !strings.Contains(r.errOut, "colour") {
		t.Errorf("bad catalog: exit %d, stderr %q", r.code, r.errOut)
	}
}
