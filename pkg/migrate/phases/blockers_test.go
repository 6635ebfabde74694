package phases

import (
	"testing"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/nodecheck"
	"github.com/unshim/unshim/pkg/nodeplan"
)

func TestBlockers(t *testing.T) {
	fs := []check.Finding{
		{Rule: nodecheck.RuleKubeletFlag, Severity: check.SeverityHigh, Object: check.ObjectRef{Kind: "Node", Name: "n"}},
		{Rule: nodecheck.RuleSocketClient, Severity: check.SeverityHigh, Object: check.ObjectRef{Kind: "Process", Name: "kubelet[12]"}},
		{Rule: nodecheck.RuleSocketClient, Severity: check.SeverityHigh, Object: check.ObjectRef{Kind: "Process", Name: "datadog-agent[40]"}},
		{Rule: nodecheck.RuleDockerCaller, Severity: check.SeverityHigh, Object: check.ObjectRef{Kind: "Node", Name: "n"}},
		{Rule: "hostpath-docker-socket", Severity: check.SeverityCritical, Object: check.ObjectRef{Kind: "DaemonSet", Name: "ci"}},
		{Rule: nodecheck.RuleImageNoDigest, Severity: check.SeverityMedium, Object: check.ObjectRef{Kind: "Image", Name: "x"}},
	}
	names := func(b []check.Finding) (out []string) {
		for _, f := range b {
			out = append(out, f.Rule+"/"+f.Object.Name)
		}
		return out
	}
	got := names(Blockers(fs, nodeplan.Containerd, nil))
	want := []string{"node-docker-socket-client/datadog-agent[40]", "node-docker-caller/n", "hostpath-docker-socket/ci"}
	if len(got) != len(want) {
		t.Fatalf("blockers %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("blocker %d = %s, want %s", i, got[i], want[i])
		}
	}
	// Allowed by rule ID: gone.
	if got := names(Blockers(fs, nodeplan.Containerd, []string{nodecheck.RuleSocketClient, nodecheck.RuleDockerCaller})); len(got) != 1 || got[0] != "hostpath-docker-socket/ci" {
		t.Errorf("with --allow: %v", got)
	}
	// Keeping Docker behind cri-dockerd: whatever uses Docker keeps working.
	if got := names(Blockers(fs, nodeplan.CRIDockerd, nil)); len(got) != 0 {
		t.Errorf("cri-dockerd blockers %v, want none", got)
	}
}
