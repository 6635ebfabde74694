package report

import (
	"bytes"
	"testing"

	"github.com/unshim/unshim/pkg/check"
)

// TestFindingsJSONStreams: the streamed JSON is byte for byte what the
// encoder writes for the whole list, with and without findings.
func TestFindingsJSONStreams(t *testing.T) {
	f := check.Finding{Object: check.ObjectRef{Kind: "Pod", Namespace: "ci", Name: "a<b>"}, Rule: "docker-in-docker",
		Severity: check.SeverityHigh, Message: "runs docker:dind & more", Remedy: "r", Container: "c", Evidence: "docker:dind",
		Field: "spec.containers[0].image", File: "x.yaml", Line: 7, Via: &check.ObjectRef{Kind: "Pod", Name: "b"}}
	skipped := []check.Skipped{{Object: check.ObjectRef{Kind: "Task", Name: "t"}, APIVersion: "tekton.dev/v1", File: "x.yaml", Line: 3, Reason: "why"}}
	for _, res := range []*check.Result{
		{Scanned: map[string]int{}},
		{Findings: []check.Finding{f, f}, Scanned: map[string]int{"Pod": 2, "Task": 1}, Skipped: skipped},
	} {
		var got, want bytes.Buffer
		if err := Findings(&got, res, nil, JSON); err != nil {
			t.Fatal(err)
		}
		fs := res.Findings
		if fs == nil {
			fs = []check.Finding{}
		}
		sk := res.Skipped
		if sk == nil {
			sk = []check.Skipped{}
		}
		if err := writeJSON(&want, FindingList{Findings: fs, Summary: summarize(fs), Scanned: res.Scanned, Skipped: sk}); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("streamed:\n%s\nencoder:\n%s", got.String(), want.String())
		}
	}
}
