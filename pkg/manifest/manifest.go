// Package manifest reads Kubernetes manifests (files, directories or stdin;
// multi-document YAML, JSON, `kind: List`, Helm-rendered output) and is the
// check.Source for them, with the file and line of every field kept.
package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/owner"
)

// Source reads manifests from Paths; "-" stands for Stdin.
type Source struct {
	Paths []string
	Stdin io.Reader
}

var _ check.Source = (*Source)(nil)

// Object is one Kubernetes object read from a manifest.
type Object struct {
	Obj  runtime.Object
	File string
	node *yaml.Node
}

// Line returns the line of a field path such as "spec.containers[0].image"
// inside the object, or of the nearest enclosing field that exists.
func (o *Object) Line(field string) int {
	return lineOf(o.node, field)
}

// ParseError is malformed input, located by file and line.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Visit reads every manifest, rolls objects up to their owners among the
// objects read, and hands the checkable ones to fn. It reads everything
// before calling fn, so bad input anywhere stops the check before it reports.
func (s *Source) Visit(ctx context.Context, fn func(*check.Target) error) error {
	objs, err := s.Read()
	if err != nil {
		return err
	}
	ix := owner.NewIndex()
	type item struct {
		t    *check.Target
		refs []metav1.OwnerReference
	}
	var items []item
	for i := range objs {
		o := &objs[i]
		t, ok := check.NewTarget(o.Obj)
		if !ok {
			continue
		}
		refs := o.Obj.(metav1.Object).GetOwnerReferences()
		ix.Add(t.Object.Kind, t.Object.Namespace, t.Object.Name, refs)
		t.File = o.File
		t.Line = o.Line
		items = append(items, item{t, refs})
	}
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		it.t.Owner = ix.Top(it.t.Object.Kind, it.t.Object.Namespace, it.t.Object.Name, it.refs)
		if err := fn(it.t); err != nil {
			return err
		}
	}
	return nil
}

// Read reads every object of every path.
func (s *Source) Read() ([]Object, error) {
	if len(s.Paths) == 0 {
		return nil, errors.New("no manifest given")
	}
	var out []Object
	for _, p := range s.Paths {
		if p == "-" {
			if s.Stdin == nil {
				return nil, errors.New("read stdin: no input")
			}
			objs, err := Decode("<stdin>", s.Stdin)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			objs, err := readFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

// expand returns p itself for a file, or the YAML and JSON files under a directory, sorted.
func expand(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read manifests in %s: %w", p, err)
	}
	sort.Strings(files)
	return files, nil
}

func readFile(path string) ([]Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	defer f.Close()
	return Decode(path, f)
}

// Decode reads every object of a YAML or JSON stream; name is used for File and in errors.
func Decode(name string, r io.Reader) ([]Object, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Object
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			line, msg := yamlError(err)
			return nil, &ParseError{File: name, Line: line, Err: errors.New(msg)}
		}
		objs, err := fromDocument(name, &doc)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
}

// yamlError splits a yaml.v3 error ("yaml: line 8: did not find expected
// ',' or ']'") into its 1-based line (0 when unknown) and its message.
// yaml.v3 reports parser errors that carry a context mark ("did not find
// expected ...") with a 0-based line and everything else 1-based; the line
// is corrected here so it points at the file's real line.
func yamlError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, "invalid YAML: " + msg
	}
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, convErr := strconv.Atoi(rest[:j])
	if convErr != nil {
		return 0, "invalid YAML: " + msg
	}
	text := strings.TrimPrefix(rest[j:], ": ")
	if strings.HasPrefix(text, "did not find expected") {
		n++
	}
	return n, "invalid YAML: " + text
}

func fromDocument(file string, doc *yaml.Node) ([]Object, error) {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil // an empty document, as Helm renders for disabled templates
	}
	if n.Kind != yaml.MappingNode {
		return nil, &ParseError{File: file, Line: n.Line, Err: errors.New("document is not a Kubernetes object (not a mapping)")}
	}
	kind := scalar(n, "kind")
	apiVersion := scalar(n, "apiVersion")
	if kind == "" || apiVersion == "" {
		return nil, nil // not a Kubernetes object (a values file, a kustomization without kind)
	}
	if strings.HasSuffix(kind, "List") {
		if items := child(n, "items"); items != nil {
			if items.Kind != yaml.SequenceNode {
				return nil, &ParseError{File: file, Line: items.Line, Err: fmt.Errorf("%s: items is not a list", kind)}
			}
			var out []Object
			for _, it := range items.Content {
				objs, err := fromDocument(file, it)
				if err != nil {
					return nil, err
				}
				out = append(out, objs...)
			}
			return out, nil
		}
	}
	obj := newTyped(apiVersion, kind)
	if obj == nil {
		return nil, nil // a kind the check does not look into
	}
	var generic any
	if err := n.Decode(&generic); err != nil {
		return nil, &ParseError{File: file, Line: n.Line, Err: err}
	}
	raw, err := json.Marshal(generic)
	if err != nil {
		return nil, &ParseError{File: file, Line: n.Line, Err: fmt.Errorf("%s: %w", kind, err)}
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		line := n.Line
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			line = lineOf(n, te.Field)
			err = fmt.Errorf("%s field %s: want %s, got %s", kind, te.Field, te.Type, te.Value)
		} else {
			err = fmt.Errorf("%s: %w", kind, err)
		}
		return nil, &ParseError{File: file, Line: line, Err: err}
	}
	return []Object{{Obj: obj, File: file, node: n}}, nil
}

// newTyped returns an empty typed object for the kinds the check inspects, nil for others.
func newTyped(apiVersion, kind string) runtime.Object {
	group := ""
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	switch group + "/" + kind {
	case "/Pod":
		return &corev1.Pod{}
	case "/PodTemplate":
		return &corev1.PodTemplate{}
	case "/ReplicationController":
		return &corev1.ReplicationController{}
	case "/ConfigMap":
		return &corev1.ConfigMap{}
	case "apps/Deployment":
		return &appsv1.Deployment{}
	case "apps/ReplicaSet":
		return &appsv1.ReplicaSet{}
	case "apps/DaemonSet":
		return &appsv1.DaemonSet{}
	case "apps/StatefulSet":
		return &appsv1.StatefulSet{}
	case "batch/Job":
		return &batchv1.Job{}
	case "batch/CronJob":
		return &batchv1.CronJob{}
	}
	return nil
}

// child returns the value node of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	_, v := mappingEntry(n, key)
	return v
}

func scalar(n *yaml.Node, key string) string {
	if c := child(n, key); c != nil && c.Kind == yaml.ScalarNode {
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
func mappingEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
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
