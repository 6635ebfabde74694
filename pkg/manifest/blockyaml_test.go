package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// sameTree compares what the check reads of two node trees: kinds, values,
// lines, null-ness and structure.
func sameTree(a, b *yaml.Node, path string) error {
	a, b = resolve(a), resolve(b)
	if a.Kind != b.Kind || a.Value != b.Value || a.Line != b.Line || (a.Tag == "!!null") != (b.Tag == "!!null") {
		return fmt.Errorf("%s: fast {kind %d value %q line %d tag %s} yaml.v3 {kind %d value %q line %d tag %s}",
			path, a.Kind, a.Value, a.Line, a.Tag, b.Kind, b.Value, b.Line, b.Tag)
	}
	if len(a.Content) != len(b.Content) {
		return fmt.Errorf("%s: fast has %d children, yaml.v3 %d", path, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		if err := sameTree(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); err != nil {
			return err
		}
	}
	return nil
}

// compareWithYAMLv3 parses data with the fast path and with yaml.v3; for
// every document the fast path takes, yaml.v3 must take it too and build
// the same tree. It returns how many documents the fast path took and left.
func compareWithYAMLv3(data []byte) (took, left int, err error) {
	docs, ok := splitDocuments(data)
	if !ok {
		return 0, 1, nil
	}
	for _, c := range docs {
		fast, _, ferr := parseBlockDocument(c)
		if errors.Is(ferr, fallback) {
			left++
			continue
		}
		if ferr != nil {
			return took, left, ferr
		}
		padded := append(bytes.Repeat([]byte("\n"), c.first-1), c.text...)
		var doc yaml.Node
		yerr := yaml.Unmarshal(padded, &doc)
		if yerr != nil {
			return took, left, fmt.Errorf("line %d: fast path took a document yaml.v3 rejects: %v", c.first, yerr)
		}
		var slow *yaml.Node
		if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
			slow = doc.Content[0]
		}
		switch {
		case fast == nil && slow == nil:
		case fast == nil || slow == nil:
			return took, left, fmt.Errorf("line %d: fast %v, yaml.v3 %v", c.first, fast, slow)
		default:
			if err := sameTree(fast, slow, fmt.Sprintf("line %d", c.first)); err != nil {
				return took, left, err
			}
		}
		took++
	}
	return took, left, nil
}

func TestBlockParserMatchesYAMLv3(t *testing.T) {
	var files []string
	for _, dir := range []string{"testdata", "../check/testdata/corpus", "../../test/e2e/testdata/rules", "../../deploy", "../../examples"} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".json")) {
				files = append(files, p)
			}
			return nil
		})
	}
	tookAll := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		took, left, err := compareWithYAMLv3(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		tookAll += took
		t.Logf("%s: fast path took %d documents, left %d to yaml.v3", f, took, left)
	}
	if tookAll < 50 {
		t.Errorf("the fast path took only %d documents of the tree's manifests", tookAll)
	}
}

// TestBlockParserCases: constructs at the edge of the subset, each either
// parsed like yaml.v3 or left to it, never parsed differently.
func TestBlockParserCases(t *testing.T) {
	tests := []struct {
		name, in string
		fast     bool // the fast path takes it
	}{
		{"nested", "a:\n  b:\n    c: d\n  e: [1, 'two', \"th\\\"ree\"]\n", true},
		{"indentless sequence", "a:\n- b: 1\n  c: 2\n- d\nz: 3\n", true},
		{"nested sequences", "a:\n  - - x\n    - y\n  - []\n", true},
		{"literal clip", "a: |\n  line 1\n\n  line 2\n\n\nb: 2\n", true},
		{"literal strip", "a: |-\n    x\n     y\nb: ~\n", true},
		{"literal empty", "a: |\nb: 1\n", true},
		{"comments", "# c\na: b # c\n# c\nc:   # c\n  - d # c\n", true},
		{"empty value", "a:\nb: 1\n", true},
		{"flow mapping", "a: {b: c, d: [e, {f: g}], 'h': \"i\"}\n", true},
		{"url and colons", "a: http://x:80/y\nb: nginx:1.25\n", true},
		{"crlf", "a: b\r\nc:\r\n- d\r\n", true},
		{"folded", "a: >\n  x\n  y\n", false},
		{"keep", "a: |+\n  x\n\nb: 1\n", false},
		{"anchor", "a: &x 1\nb: *x\n", false},
		{"merge", "a: {b: 1}\nc:\n  <<: {d: 2}\n", false},
		{"tag", "a: !!str 1\n", false},
		{"multi-line plain", "a: b\n  c\n", false},
		{"multi-line flow", "a: [b,\n  c]\n", false},
		{"tab", "a:\tb\n", false},
		{"duplicate key", "a: 1\na: 2\n", false},
		{"bad indentation", "a:\n  b: 1\n   c: 2\n", false},
		{"mapping in scalar", "a: b: c\n", false},
		{"unicode", "a: é\n", false},
		{"unterminated quote", "a: 'b\n", false},
		{"trailing comma", "a: [b, ]\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			took, _, err := compareWithYAMLv3([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if (took == 1) != tt.fast {
				t.Errorf("fast path took it: %v, want %v", took == 1, tt.fast)
			}
		})
	}
}

func FuzzBlockParser(f *testing.F) {
	for _, p := range []string{"testdata/helm-rendered.yaml", "../check/testdata/corpus/tekton.yaml", "../check/testdata/corpus/node-problem-detector.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a:\n- b: |\n    c\n  d: [e, {f: g}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := compareWithYAMLv3(data); err != nil {
			t.Fatal(err)
		}
	})
}
