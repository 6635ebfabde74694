package manifest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/rules"
)

func lineContaining(t *testing.T, file, text string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, text) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line with %q", file, text)
	return 0
}

func runCheck(t *testing.T, src check.Source) *check.Result {
	t.Helper()
	rs, err := rules.All(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := check.Run(context.Background(), src, rs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestHelmRendered(t *testing.T) {
	file := "testdata/helm-rendered.yaml"
	res := runCheck(t, &Source{Paths: []string{file}})
	got := map[string]check.Finding{}
	for _, f := range res.Findings {
		got[f.Rule] = f
	}
	tests := []struct {
		rule, object, lineText string
	}{
		{"docker-socket-mount", "Deployment/runner", "path: /var/run/docker.sock"},
		{"docker-log-config", "ConfigMap/runner-logging", "fluent-bit.conf:"},
	}
	for _, tt := range tests {
		f, ok := got[tt.rule]
		if !ok {
			t.Errorf("no %s finding in %v", tt.rule, res.Findings)
			continue
		}
		if f.Object.String() != tt.object || f.File != file {
			t.Errorf("%s: object %s file %s", tt.rule, f.Object, f.File)
		}
		if want := lineContaining(t, file, tt.lineText); f.Line != want {
			t.Errorf("%s: line %d, want %d (%q)", tt.rule, f.Line, want, tt.lineText)
		}
	}
	if res.Scanned["Deployment"] != 1 || res.Scanned["ConfigMap"] != 1 {
		t.Errorf("scanned %v", res.Scanned)
	}
}

func TestListJSONRollsUp(t *testing.T) {
	res := runCheck(t, &Source{Paths: []string{"testdata/list.json"}})
	if len(res.Findings) != 1 {
		t.Fatalf("findings %+v, want one on the Deployment", res.Findings)
	}
	f := res.Findings[0]
	if f.Object != (check.ObjectRef{Kind: "Deployment", Namespace: "ci", Name: "web"}) || f.Rule != "docker-in-docker" {
		t.Errorf("finding %+v", f)
	}
	if f.Line != lineContaining(t, "testdata/list.json", `"image": "docker:dind"`) {
		t.Errorf("line %d", f.Line)
	}
}

func TestStdinAndErrors(t *testing.T) {
	tests := []struct {
		name, input string
		wantLine    int
		wantErr     string
	}{
		{"ok", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n", 0, ""},
		{"empty", "", 0, ""},
		{"comments only", "# nothing\n---\n# still nothing\n", 0, ""},
		{"unclosed flow", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n", 4, "did not find expected"},
		{"bad indentation", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n   labels: x: y\n", 5, "mapping values"},
		{"tab", "apiVersion: v1\n\tkind: Pod\n", 2, "tab"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      containers: many\n", 7, "spec.template.spec.containers: want a list"},
		{"wrong type in a container", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: [x]\n", 7, "spec.containers[0].image: want a string"},
		{"bad privileged", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    securityContext: {privileged: maybe}\n", 7, "privileged: want true or false"},
		{"scalar document", "just text\n", 1, "not a Kubernetes object"},
		{"list items not a list", "apiVersion: v1\nkind: List\nitems: 3\n", 3, "items is not a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, _ := rules.All(rules.Options{})
			_, err := check.Run(context.Background(), &Source{Paths: []string{"-"}, Stdin: strings.NewReader(tt.input)}, rs)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			if pe.File != "<stdin>" || pe.Line != tt.wantLine || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %q (line %d), want line %d and %q", err, pe.Line, tt.wantLine, tt.wantErr)
			}
		})
	}
}

func TestMissingPath(t *testing.T) {
	rs, _ := rules.All(rules.Options{})
	_, err := check.Run(context.Background(), &Source{Paths: []string{"testdata/does-not-exist"}}, rs)
	if err == nil || !strings.Contains(err.Error(), "does-not-exist") {
		t.Errorf("error %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range []string{"testdata/helm-rendered.yaml", "testdata/list.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: docker:dind}]}\n"))
	rs, err := rules.All(rules.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := &Source{Paths: []string{"-"}, Stdin: strings.NewReader(string(data))}
		// Any input either fails with an error or checks without panicking.
		if _, err := check.Run(context.Background(), src, rs); err != nil {
			return
		}
	})
}

// visitOnly hides a Source's VisitExamined, so check.Run takes the plain
// Visit path: targets decoded afresh, nothing borrowed, rules in one goroutine.
type visitOnly struct{ check.Source }

// TestExaminedMatchesVisit: the workers' path (rules run where the files
// are decoded, from reused buffers and views of the files) finds exactly
// what the plain Visit path finds, on the corpus and the reader's testdata.
func TestExaminedMatchesVisit(t *testing.T) {
	rs, err := rules.All(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Files of owned objects between files of others: a worker reuses its
	// read buffer for the next file only when no target kept for the end
	// (one with owner references) points into it.
	dir := t.TempDir()
	for i := 0; i < 12; i++ {
		body := fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d%d, namespace: ns}\nspec:\n  template:\n    spec:\n"+
			"      containers:\n      - {name: c%d, image: docker:%d-dind}\n      volumes:\n      - name: s\n        hostPath: {path: /var/run/docker.sock}\n", i, i, i)
		if i%3 == 1 {
			body = fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p%d\n  namespace: ns\n  ownerReferences:\n  - {kind: ReplicaSet, name: rs%d, controller: true}\n"+
				"spec:\n  containers:\n  - name: owned%d\n    image: docker:%d-dind\n", i, i, i, i) +
				fmt.Sprintf("---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs%d\n  namespace: ns\n  ownerReferences:\n  - {kind: Deployment, name: top%d, controller: true}\n", i, i)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{"../check/testdata/corpus", "testdata/helm-rendered.yaml", "testdata/list.json", dir}
	for _, workers := range []int{1, 2, 3} {
		src := &Source{Paths: paths, Workers: workers}
		got, err := check.Run(context.Background(), src, rs)
		if err != nil {
			t.Fatal(err)
		}
		want, err := check.Run(context.Background(), visitOnly{src}, rs)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Findings) < 20 {
			t.Fatalf("only %d findings: too few to compare", len(want.Findings))
		}
		if !reflect.DeepEqual(got, want) {
			for i := range want.Findings {
				if i < len(got.Findings) && !reflect.DeepEqual(got.Findings[i], want.Findings[i]) {
					t.Errorf("workers %d: finding %d\n got  %+v\n want %+v", workers, i, got.Findings[i], want.Findings[i])
					break
				}
			}
			t.Errorf("workers %d: %d findings, %d skipped; want %d, %d", workers, len(got.Findings), len(got.Skipped), len(want.Findings), len(want.Skipped))
		}
	}
}
