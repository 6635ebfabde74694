package manifest

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// TestLineOf: the line of a field path, through keys with dots in them and
// list indexes, and of the deepest part found when the rest is missing.
func TestLineOf(t *testing.T) {
	doc := `kind: ConfigMap
data:
  fluent-bit.conf: |
    [INPUT]
  other: x
spec:
  containers:
  - name: a
    image: b
  - name: c
    env:
    - name: D
      value: e
`
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	root := n.Content[0]
	tests := []struct {
		field string
		want  int
	}{
		{"", 1},
		{"kind", 1},
		{"data.fluent-bit.conf", 3},
		{"data.other", 5},
		{"spec.containers[0].image", 9},
		{"spec.containers[1]", 10},
		{"spec.containers[1].env[0].value", 13},
		{"spec.containers[5].image", 7},
		{"spec.missing.deeper", 6},
		{"data.fluent-bit", 2},
	}
	for _, tt := range tests {
		if got := lineOf(root, tt.field); got != tt.want {
			t.Errorf("lineOf(%q) = %d, want %d", tt.field, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { lineOf(root, "spec.containers[1].env[0].value") }); n != 0 {
		t.Errorf("lineOf allocates %v times", n)
	}
}
