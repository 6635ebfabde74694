package pin

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var deployTemplate = []string{"spec", "template", "spec"}

// apply merges patch into obj, as the apiserver does with a merge patch.
func apply(t *testing.T, obj map[string]any, patch []byte) map[string]any {
	t.Helper()
	orig, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonpatch.MergePatch(orig, patch)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func obj(t *testing.T, y string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPinUnpinRoundTrip pins pod specs of every shape and checks the
// pinned affinity, then that unpin gives back the object as it was.
func TestPinUnpinRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// wantTerms is the pinned node selector terms as YAML.
		wantTerms string
	}{
		{
			name: "no affinity",
			in:   "metadata: {name: a}\nspec: {template: {spec: {containers: [{name: c}]}}}\n",
			wantTerms: `- matchExpressions:
  - {key: unshim.io/runtime, operator: In, values: [docker, cri-dockerd]}`,
		},
		{
			name: "pod affinity only",
			in:   "metadata: {name: a}\nspec: {template: {spec: {affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}}}}\n",
			wantTerms: `- matchExpressions:
  - {key: unshim.io/runtime, operator: In, values: [docker, cri-dockerd]}`,
		},
		{
			name: "preferred node affinity only",
			in:   "metadata: {name: a}\nspec: {template: {spec: {affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: {matchExpressions: [{key: k, operator: Exists}]}}]}}}}}\n",
			wantTerms: `- matchExpressions:
  - {key: unshim.io/runtime, operator: In, values: [docker, cri-dockerd]}`,
		},
		{
			name: "two terms, one with fields only: the expression goes into each (terms are ORed)",
			in: `metadata: {name: a, annotations: {keep: me}}
spec: {template: {spec: {affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [
  {matchExpressions: [{key: disk, operator: In, values: [ssd]}]},
  {matchFields: [{key: metadata.name, operator: In, values: [n1]}]}]}}}}}}
`,
			wantTerms: `- matchExpressions:
  - {key: disk, operator: In, values: [ssd]}
  - {key: unshim.io/runtime, operator: In, values: [docker, cri-dockerd]}
- matchFields: [{key: metadata.name, operator: In, values: [n1]}]
  matchExpressions:
  - {key: unshim.io/runtime, operator: In, values: [docker, cri-dockerd]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := obj(t, tt.in)
			ch, err := pinPatch(&unstructured.Unstructured{Object: in}, deployTemplate)
			if err != nil || ch.Skip != "" {
				t.Fatalf("pin: %v %q", err, ch.Skip)
			}
			pinned := apply(t, in, ch.Patch)
			terms, _, _ := unstructured.NestedSlice(pinned, "spec", "template", "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
			var want []any
			if err := yaml.Unmarshal([]byte(tt.wantTerms), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(terms, want) {
				got, _ := yaml.Marshal(terms)
				t.Errorf("pinned terms\n%s\nwant\n%s", got, tt.wantTerms)
			}
			if _, ok := pinned["metadata"].(map[string]any)["annotations"].(map[string]any)[Annotation]; !ok {
				t.Error("no annotation")
			}
			again, err := pinPatch(&unstructured.Unstructured{Object: pinned}, deployTemplate)
			if err != nil || again.Skip != "already pinned" {
				t.Errorf("pin of a pinned object: %+v %v", again, err)
			}
			un, err := unpinPatch(&unstructured.Unstructured{Object: pinned}, deployTemplate)
			if err != nil {
				t.Fatal(err)
			}
			back := apply(t, pinned, un.Patch)
			if ann, ok := back["metadata"].(map[string]any)["annotations"].(map[string]any); ok && len(ann) == 0 {
				delete(back["metadata"].(map[string]any), "annotations") // an emptied map, as the apiserver drops it
			}
			if !reflect.DeepEqual(back, in) {
				a, _ := yaml.Marshal(back)
				b, _ := yaml.Marshal(in)
				t.Errorf("after unpin\n%s\nwant\n%s", a, b)
			}
		})
	}
}

func TestPlanSkipsWhatCannotChange(t *testing.T) {
	ch, err := Plan(t.Context(), nil, []Workload{{Kind: "Job", Namespace: "n", Name: "j"}, {Kind: "Pod", Namespace: "n", Name: "p"}, {Kind: "Widget", Namespace: "n", Name: "w"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 3 {
		t.Fatalf("%d changes", len(ch))
	}
	for _, c := range ch {
		if c.Skip == "" || len(c.Patch) != 0 {
			t.Errorf("%s: %+v, want skipped without a patch", c.Workload, c)
		}
	}
}
