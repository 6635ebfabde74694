package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/manifest"
	"github.com/unshim/unshim/pkg/report"
)

// customSocket is the extra socket path the rule cases pass with --docker-socket.
const customSocket = "/srv/docker/docker.sock"

// TestRules runs every rule's case file (testdata/rules/RULE.yaml) both as
// manifests (-f) and live (created in the lab): every object named pos-*
// must get a finding of RULE, and no object named neg-* may.
func TestRules(t *testing.T) {
	e := requireLab(t)
	all, err := rules.All(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/rules/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, file := range files {
		rule := strings.TrimSuffix(filepath.Base(file), ".yaml")
		covered[rule] = true
		objs, err := (&manifest.Source{Paths: []string{file}}).Read()
		if err != nil {
			t.Fatal(err)
		}
		t.Run(rule, func(t *testing.T) {
			t.Run("manifest", func(t *testing.T) {
				r := run(t, "", "check", "-f", file, "-o", "json", "--fail-on", "none", "--docker-socket", customSocket)
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.errOut)
				}
				l := decodeFindings(t, r)
				assertCases(t, rule, objs, l)
				for _, f := range l.Findings {
					if f.File != file || f.Line <= 0 {
						t.Errorf("finding %s on %s has location %s:%d, want %s and a line", f.Rule, f.Object, f.File, f.Line, file)
					}
				}
			})
			t.Run("live", func(t *testing.T) {
				ns := e.namespace(t)
				e.apply(t, ns, objs)
				r := run(t, "", e.kube("check", "-n", ns, "-o", "json", "--fail-on", "none", "--docker-socket", customSocket)...)
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.errOut)
				}
				l := decodeFindings(t, r)
				assertCases(t, rule, objs, l)
				for _, f := range l.Findings {
					if f.Object.Namespace != ns || f.File != "" {
						t.Errorf("live finding %+v: want namespace %s and no file", f, ns)
					}
				}
			})
		})
	}
	for _, r := range all {
		if !covered[r.Meta().ID] {
			t.Errorf("rule %s has no case file testdata/rules/%s.yaml", r.Meta().ID, r.Meta().ID)
		}
	}
}

func assertCases(t *testing.T, rule string, objs []manifest.Object, l report.FindingList) {
	t.Helper()
	found := rulesByObject(l)
	pos, neg := 0, 0
	for _, o := range objs {
		name := o.Obj.(metav1.Object).GetName()
		switch {
		case strings.HasPrefix(name, "pos-"):
			pos++
			if !found[name][rule] {
				t.Errorf("%s: no %s finding (found %v)", name, rule, found[name])
			}
		case strings.HasPrefix(name, "neg-"):
			neg++
			if found[name][rule] {
				t.Errorf("%s: unexpected %s finding", name, rule)
			}
		}
	}
	if pos == 0 || neg == 0 {
		t.Errorf("case file for %s needs at least one pos-* and one neg-* object (has %d and %d)", rule, pos, neg)
	}
}
