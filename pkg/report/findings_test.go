package report

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/manifest"
)

// TestFindingsJSONStreams: the streamed JSON is byte for byte what the
// encoder writes for the whole list, with and without findings.
func TestFindingsJSONStreams(t *testing.T) {
	f := check.Finding{Object: check.ObjectRef{Kind: "Pod", Namespace: "ci", Name: "a<b>"}, Rule: "docker-in-docker",
		Severity: check.SeverityHigh, Message: "runs docker:dind & more", Remedy: "r", Container: "c", Evidence: "docker:dind",
		Field: "spec.containers[0].image", File: "x.yaml", Line: 7, Pods: 3, Via: &check.ObjectRef{Kind: "Pod", Name: "b"}}
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

// wholeSARIF is the SARIF log built whole, as it was before it streamed.
func wholeSARIF(fs []check.Finding, rules []check.RuleMeta, skipped []check.Skipped) sarifLog {
	log := newSARIFLog(rules)
	run := &log.Runs[0]
	if len(skipped) > 0 {
		inv := sarifInvocation{ExecutionSuccessful: true}
		for _, s := range skipped {
			inv.Notifications = append(inv.Notifications, sarifNotificationOf(s))
		}
		run.Invocations = []sarifInvocation{inv}
	}
	for _, f := range fs {
		run.Results = append(run.Results, sarifResultOf(f))
	}
	return log
}

// TestFindingsStreamOnCorpus: on the check's corpus (long messages that
// YAML folds, skipped objects, findings with and without lines) and on an
// empty result, the streamed JSON, YAML and SARIF are byte for byte what
// the encoders write for the whole value.
func TestFindingsStreamOnCorpus(t *testing.T) {
	rs, err := rules.All(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	metas := make([]check.RuleMeta, len(rs))
	for i, r := range rs {
		metas[i] = r.Meta()
	}
	corpus, err := check.Run(context.Background(), &manifest.Source{Paths: []string{"../check/testdata/corpus"}}, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(corpus.Findings) < 20 || len(corpus.Skipped) == 0 {
		t.Fatalf("corpus gave %d findings, %d skipped: too few to test with", len(corpus.Findings), len(corpus.Skipped))
	}
	for _, tc := range []struct {
		name string
		res  *check.Result
	}{
		{"corpus", corpus},
		{"empty", &check.Result{Scanned: map[string]int{}}},
	} {
		fs, sk := tc.res.Findings, tc.res.Skipped
		if fs == nil {
			fs = []check.Finding{}
		}
		if sk == nil {
			sk = []check.Skipped{}
		}
		list := FindingList{Findings: fs, Summary: summarize(fs), Scanned: tc.res.Scanned, Skipped: sk}
		whole := map[Format]func(w *bytes.Buffer) error{
			JSON:  func(w *bytes.Buffer) error { return writeJSON(w, list) },
			YAML:  func(w *bytes.Buffer) error { return writeYAML(w, list) },
			SARIF: func(w *bytes.Buffer) error { return writeJSON(w, wholeSARIF(fs, metas, sk)) },
		}
		for _, f := range []Format{JSON, YAML, SARIF} {
			var got, want bytes.Buffer
			if err := Findings(&got, tc.res, metas, f); err != nil {
				t.Fatalf("%s %s: %v", tc.name, f, err)
			}
			if err := whole[f](&want); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("%s %s: streamed output differs from the whole-built one\n%s", tc.name, f, firstDiff(got.String(), want.String()))
			}
		}
	}
}

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n streamed %q\n whole    %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(al), len(bl))
}
