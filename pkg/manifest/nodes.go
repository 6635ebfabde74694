package manifest

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// child returns the value node of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	_, v := mappingEntry(n, key)
	return v
}

// scalar returns a copy of the string value of key in mapping n ("" when
// missing, null or not a scalar): nodes' values may be views of the file.
func scalar(n *yaml.Node, key string) string {
	return strings.Clone(scalarView(n, key))
}

// scalarView is scalar without the copy.
func scalarView(n *yaml.Node, key string) string {
	if c := resolve(child(n, key)); c != nil && c.Kind == yaml.ScalarNode && c.Tag != "!!null" {
		return c.Value
	}
	return ""
}

// lineOf walks a field path ("a.b[2].c") from n and returns the line of the
// deepest key or item reached. Keys that contain dots ("fluent-bit.conf")
// are found by joining path parts. It allocates nothing: it runs for every
// finding.
func lineOf(n *yaml.Node, field string) int {
	if n == nil {
		return 0
	}
	line, cur := n.Line, n
	var spans [16]fieldSpan
	parts := splitField(spans[:0], field)
	for i := 0; i < len(parts); i++ {
		if cur.Kind == yaml.AliasNode && cur.Alias != nil {
			cur = cur.Alias
		}
		if idx, isIndex := parts[i].index(field); isIndex {
			if cur.Kind != yaml.SequenceNode || idx >= len(cur.Content) {
				return line
			}
			cur = cur.Content[idx]
			line = cur.Line
			continue
		}
		found := false
		for j := i; j < len(parts) && !found; j++ {
			// Parts i to j, dots between them kept: a key with dots in it.
			key := field[parts[i].start:parts[j].end]
			if k, v := mappingEntry(cur, key); k != nil {
				line, cur, i, found = k.Line, v, j, true
			}
		}
		if !found {
			return line
		}
	}
	return line
}

// mappingEntry returns the key and value nodes of key in mapping n.
// A key given directly wins over one merged in with `<<`.
func mappingEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i].Tag != "!!merge" {
			return n.Content[i], n.Content[i+1]
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag != "!!merge" {
			continue
		}
		for _, src := range mergeSources(n.Content[i+1]) {
			if k, v := mappingEntry(src, key); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// mergeSources returns the mappings a `<<` key merges in: one, or a list of them.
func mergeSources(v *yaml.Node) []*yaml.Node {
	v = resolve(v)
	if v.Kind == yaml.SequenceNode {
		return v.Content
	}
	return []*yaml.Node{v}
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// eachEntry calls fn for each key of mapping n and its value, merged keys
// first, so that a key given directly is seen last and wins.
func eachEntry(n *yaml.Node, fn func(key string, v *yaml.Node) error) error {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag != "!!merge" {
			continue
		}
		for _, src := range mergeSources(n.Content[i+1]) {
			if err := eachEntry(src, fn); err != nil {
				return err
			}
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag == "!!merge" {
			continue
		}
		if err := fn(n.Content[i].Value, n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// at follows a dotted path of keys ("spec.template.spec") from n; nil when one is missing.
func at(n *yaml.Node, path string) *yaml.Node {
	for _, k := range strings.Split(path, ".") {
		if n = child(n, k); n == nil {
			return nil
		}
	}
	return resolve(n)
}

// fieldSpan is one part of a field path: field[start:end], a key or an index ("[2]").
type fieldSpan struct{ start, end int }

func (p fieldSpan) index(field string) (int, bool) {
	s := field[p.start:p.end]
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	i, err := strconv.Atoi(s[1 : len(s)-1])
	return i, err == nil
}

// splitField appends the parts of "spec.containers[0].image" to parts:
// spec, containers, [0], image.
func splitField(parts []fieldSpan, field string) []fieldSpan {
	pos := 0
	for pos <= len(field) {
		end := strings.IndexByte(field[pos:], '.')
		if end < 0 {
			end = len(field)
		} else {
			end += pos
		}
		seg := pos
		for seg < end {
			i := strings.IndexByte(field[seg:end], '[')
			switch {
			case i < 0:
				parts = append(parts, fieldSpan{seg, end})
				seg = end
			case i > 0:
				parts = append(parts, fieldSpan{seg, seg + i})
				seg += i
			default:
				j := strings.IndexByte(field[seg:end], ']')
				if j < 0 {
					parts = append(parts, fieldSpan{seg, end})
					seg = end
					break
				}
				parts = append(parts, fieldSpan{seg, seg + j + 1})
				seg += j + 1
			}
		}
		pos = end + 1
	}
	return parts
}

// pathTo returns the field path of node n in the tree at root
// ("spec.containers[0].image"), or "" when n is not in it. It is how an
// error names its field: decoding does not carry paths, as errors are rare.
// A node reached through an alias is named where its anchor sits.
func pathTo(root, n *yaml.Node) string {
	var walk func(cur *yaml.Node, path string, depth int) (string, bool)
	walk = func(cur *yaml.Node, path string, depth int) (string, bool) {
		if cur == n {
			return path, true
		}
		if cur == nil || depth > 64 {
			return "", false
		}
		switch cur.Kind {
		case yaml.DocumentNode:
			for _, c := range cur.Content {
				if p, ok := walk(c, path, depth+1); ok {
					return p, true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(cur.Content); i += 2 {
				key := cur.Content[i].Value
				if path != "" {
					key = path + "." + key
				}
				if p, ok := walk(cur.Content[i+1], key, depth+1); ok {
					return p, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range cur.Content {
				if p, ok := walk(c, path+"["+strconv.Itoa(i)+"]", depth+1); ok {
					return p, true
				}
			}
		}
		return "", false
	}
	p, _ := walk(root, "", 0)
	return p
}
