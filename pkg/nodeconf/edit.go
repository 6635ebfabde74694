package nodeconf

import (
	"fmt"
	"strings"

	yamlv3 "gopkg.in/yaml.v3"
)

// FlagEdit is one kubelet flag to set (Value) or, with Remove, to drop.
type FlagEdit struct {
	Name   string // without dashes
	Value  string
	Remove bool
}

// EditFlagsVar rewrites the kubelet flags carried by variable name of an
// environment file (KUBELET_KUBEADM_ARGS of kubeadm-flags.env): removed flags
// go, set flags replace their old value in place or are appended. Other lines
// are kept as they were. A variable that is not there is added when a flag
// is set. systemd splits $VAR on white space without quotes, so a value with
// white space is an error.
func EditFlagsVar(file string, data []byte, name string, edits []FlagEdit) ([]byte, error) {
	vars, err := ParseEnvFile(file, data)
	if err != nil {
		return nil, err
	}
	var cur *EnvVar
	for i := range vars {
		if vars[i].Name == name {
			cur = &vars[i]
		}
	}
	var flags []KubeletFlag
	if cur != nil {
		words, err := splitWords(cur.Value)
		if err != nil {
			return nil, &InputError{File: file, Key: name, Err: err}
		}
		if flags, err = ParseKubeletArgs(file, words); err != nil {
			return nil, err
		}
	}
	for _, e := range edits {
		if strings.ContainsAny(e.Value, " \t\n\"'\\$") {
			return nil, &InputError{File: file, Key: "--" + e.Name, Err: fmt.Errorf("value %q cannot be carried in %s", e.Value, name)}
		}
		found := false
		out := flags[:0:0]
		for _, f := range flags {
			if f.Name != e.Name {
				out = append(out, f)
				continue
			}
			if !e.Remove && !found {
				out = append(out, KubeletFlag{Name: e.Name, Value: e.Value, HasValue: true})
			}
			found = true
		}
		if !e.Remove && !found {
			out = append(out, KubeletFlag{Name: e.Name, Value: e.Value, HasValue: true})
		}
		flags = out
	}
	words := make([]string, len(flags))
	for i, f := range flags {
		words[i] = "--" + f.Name
		if f.HasValue {
			words[i] += "=" + f.Value
		}
	}
	line := name + "=\"" + strings.Join(words, " ") + "\""

	lines := strings.Split(string(data), "\n")
	if cur == nil {
		if len(flags) == 0 {
			return data, nil
		}
		text := strings.TrimRight(string(data), "\n")
		if text != "" {
			text += "\n"
		}
		return []byte(text + line + "\n"), nil
	}
	// Replace the variable's line and its continuation lines.
	start := cur.Line - 1
	end := start
	for end < len(lines)-1 && strings.HasSuffix(strings.TrimSpace(lines[end]), "\\") {
		end++
	}
	if strings.HasPrefix(strings.TrimSpace(lines[start]), "export ") {
		line = "export " + line
	}
	out := append(append(append([]string{}, lines[:start]...), line), lines[end+1:]...)
	return []byte(strings.Join(out, "\n")), nil
}

// SetYAMLFields sets top-level fields of a YAML mapping document (a
// KubeletConfiguration, kubeadm's instance-config.yaml), keeping every other
// field, its order and its comments. Where it can, it edits lines: a field
// whose value is a one-line scalar gets its line replaced, a new field is
// appended, and the rest of the file stays byte for byte (so the diff an
// operator reviews is the change and nothing else). Otherwise the document
// is re-encoded. An empty document becomes a mapping.
func SetYAMLFields(file string, data []byte, fields [][2]any) ([]byte, error) {
	if out, ok := setYAMLLines(data, fields); ok {
		return out, nil
	}
	return encodeYAMLFields(file, data, fields)
}

// setYAMLLines is SetYAMLFields by line edits; ok is false when the
// document is not a plain block mapping of one-line scalars where it matters.
func setYAMLLines(data []byte, fields [][2]any) ([]byte, bool) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil || doc.Kind != yamlv3.DocumentNode || len(doc.Content) != 1 {
		return nil, false
	}
	m := doc.Content[0]
	if m.Kind != yamlv3.MappingNode || m.Style&yamlv3.FlowStyle != 0 {
		return nil, false
	}
	lines := strings.Split(string(data), "\n")
	var appended []string
	for _, kv := range fields {
		key, ok := kv[0].(string)
		if !ok {
			return nil, false
		}
		out, err := yamlv3.Marshal(map[string]any{key: kv[1]})
		if err != nil || strings.Count(strings.TrimRight(string(out), "\n"), "\n") > 0 {
			return nil, false
		}
		line := strings.TrimRight(string(out), "\n")
		found := false
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if k.Value != key {
				continue
			}
			if v.Kind != yamlv3.ScalarNode || v.Line != k.Line || v.Style&(yamlv3.LiteralStyle|yamlv3.FoldedStyle) != 0 || k.Column != 1 {
				return nil, false
			}
			n := k.Line - 1
			if n >= len(lines) || !strings.HasPrefix(lines[n], key) {
				return nil, false
			}
			lines[n] = line
			found = true
		}
		if !found {
			appended = append(appended, line)
		}
	}
	text := strings.Join(lines, "\n")
	if len(appended) > 0 {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += strings.Join(appended, "\n") + "\n"
	}
	return []byte(text), true
}

func encodeYAMLFields(file string, data []byte, fields [][2]any) ([]byte, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return nil, &InputError{File: file, Err: fmt.Errorf("invalid YAML: %v", err)}
	}
	if doc.Kind == 0 {
		doc = yamlv3.Node{Kind: yamlv3.DocumentNode, Content: []*yamlv3.Node{{Kind: yamlv3.MappingNode, Tag: "!!map"}}}
	}
	if doc.Kind != yamlv3.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yamlv3.MappingNode {
		return nil, &InputError{File: file, Err: fmt.Errorf("want a mapping at the top")}
	}
	m := doc.Content[0]
	for _, kv := range fields {
		key, ok := kv[0].(string)
		if !ok {
			return nil, fmt.Errorf("%s: field name %v is not a string", file, kv[0])
		}
		var val yamlv3.Node
		if err := val.Encode(kv[1]); err != nil {
			return nil, fmt.Errorf("%s: encode %s: %w", file, key, err)
		}
		set := false
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				m.Content[i+1] = &val
				set = true
			}
		}
		if !set {
			m.Content = append(m.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: key}, &val)
		}
	}
	var b strings.Builder
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return []byte(b.String()), nil
}
