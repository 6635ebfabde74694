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
// are found by joining path parts.
func lineOf(n *yaml.Node, field string) int {
	if n == nil {
		return 0
	}
	line, cur := n.Line, n
	parts := splitField(field)
	for i := 0; i < len(parts); i++ {
		if cur.Kind == yaml.AliasNode && cur.Alias != nil {
			cur = cur.Alias
		}
		if idx, isIndex := parts[i].index(); isIndex {
			if cur.Kind != yaml.SequenceNode || idx >= len(cur.Content) {
				return line
			}
			cur = cur.Content[idx]
			line = cur.Line
			continue
		}
		found := false
		for j := i; j < len(parts) && !found; j++ {
			key := joinParts(parts[i : j+1])
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

func joinParts(ps []fieldPart) string {
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = string(p)
	}
	return strings.Join(ss, ".")
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

type fieldPart string

func (p fieldPart) index() (int, bool) {
	s := string(p)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	i, err := strconv.Atoi(s[1 : len(s)-1])
	return i, err == nil
}

// splitField splits "spec.containers[0].image" into spec, containers, [0], image.
func splitField(field string) []fieldPart {
	var parts []fieldPart
	for _, seg := range strings.Split(field, ".") {
		for seg != "" {
			i := strings.Index(seg, "[")
			switch {
			case i < 0:
				parts = append(parts, fieldPart(seg))
				seg = ""
			case i > 0:
				parts = append(parts, fieldPart(seg[:i]))
				seg = seg[i:]
			default:
				j := strings.Index(seg, "]")
				if j < 0 {
					parts = append(parts, fieldPart(seg))
					seg = ""
					break
				}
				parts = append(parts, fieldPart(seg[:j+1]))
				seg = seg[j+1:]
			}
		}
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
