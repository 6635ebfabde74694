package preview

import (
	"strings"
	"testing"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/pin"
	"github.com/unshim/unshim/pkg/rollout/plan"
)

func TestRisks(t *testing.T) {
	docker := func(name string) plan.Node {
		return plan.Node{Name: name, Runtime: "docker", Via: "dockershim", Labels: map[string]string{}}
	}
	pinned := []pin.Workload{{Kind: "Deployment", Namespace: "ci", Name: "builder"}}
	tests := []struct {
		name     string
		all      []plan.Node
		selected []string
		pinned   []pin.Workload
		allow    bool
		pdbs     []BlockingPDB
		findings []check.Finding
		notReady []string
		want     []string // substrings, one risk each, in order
	}{
		{name: "nothing to say", all: []plan.Node{docker("a"), docker("b")}, selected: []string{"a"}, want: nil},
		{name: "last Docker nodes with pinned workloads are refused", all: []plan.Node{docker("a"), docker("b")}, selected: []string{"a", "b"}, pinned: pinned,
			want: []string{"refuses them unless spec.allowLastDockerNodes"}},
		{name: "allowed, still said", all: []plan.Node{docker("a")}, selected: []string{"a"}, pinned: pinned, allow: true,
			want: []string{"nowhere to run (Deployment/ci/builder)"}},
		{name: "one Docker node stays", all: []plan.Node{docker("a"), docker("b")}, selected: []string{"a"}, pinned: pinned,
			want: []string{"only one Docker node (b)"}},
		{name: "pinned but Docker nodes stay", all: []plan.Node{docker("a"), docker("b"), docker("c")}, selected: []string{"a"}, pinned: pinned, want: nil},
		{name: "blocking PDB, high findings, not Ready", all: []plan.Node{docker("a"), docker("b")}, selected: []string{"a"},
			pdbs:     []BlockingPDB{{Namespace: "db", Name: "pg", Nodes: []string{"a"}}},
			findings: []check.Finding{{Severity: check.SeverityCritical}, {Severity: check.SeverityLow}},
			notReady: []string{"a", "b"},
			want:     []string{"db/pg allows no disruption", "2 Docker dependencies", "not Ready: a"}},
		{name: "low findings only are not a risk", all: []plan.Node{docker("a"), docker("b")}, selected: []string{"a"},
			findings: []check.Finding{{Severity: check.SeverityMedium}}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &v1alpha1.RuntimeMigrationSpec{TargetRuntime: "containerd", AllowLastDockerNodes: tt.allow, Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}}
			var sel []plan.Node
			selected := map[string]bool{}
			for _, n := range tt.selected {
				selected[n] = true
				sel = append(sel, docker(n))
			}
			spec.Nodes.Names = tt.selected
			p, err := plan.Make(sel, spec)
			if err != nil {
				t.Fatal(err)
			}
			p.Waves = p.Waves[:1] // one wave: no "no canary" note
			got := risks(p, tt.all, tt.notReady, selected, &Preview{PDBs: tt.pdbs, Docker: tt.findings}, tt.pinned, spec)
			if len(got) != len(tt.want) {
				t.Fatalf("risks %+v, want %d: %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].Message, w) {
					t.Errorf("risk %d %q, want it to contain %q", i, got[i].Message, w)
				}
			}
		})
	}
}
