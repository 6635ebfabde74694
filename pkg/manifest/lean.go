package manifest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/check"
)

// decodeStream reads the YAML or JSON documents of data and sends a target for
// every object in them, in order; send returns false when the check has
// stopped. Documents in the plain block subset of YAML are parsed by the
// fast path (blockyaml.go), the others by yaml.v3. Only the fields the rules read are decoded, straight
// from the YAML node tree: no map[string]any, no JSON round trip, no full
// typed object. Those fields are checked for shape (a list where a list
// belongs); the rest of the object is not validated.
func decodeStream(name string, data []byte, send func(item) bool) error {
	docs, ok := splitDocuments(data)
	if !ok {
		return decodeYAMLv3(name, data, 1, send)
	}
	for _, c := range docs {
		n, slabs, err := parseBlockDocument(c)
		if errors.Is(err, fallback) {
			if err := decodeYAMLv3(name, c.text, c.first, send); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if n == nil {
			continue
		}
		ref := &docRef{slabs: slabs}
		ref.pending.Store(1)
		err = leanObject(name, n, func(it item) bool {
			ref.pending.Add(1)
			it.doc = ref
			return send(it)
		})
		ref.done()
		if err != nil {
			return err
		}
	}
	return nil
}

// docRef counts the targets of a fast-path document the check has not yet
// finished with; when none is left, the document's node slabs are reused.
// A target kept for later (one with owner references) is never finished, so
// its document's slabs are simply left to the garbage collector.
type docRef struct {
	pending atomic.Int32
	slabs   []*nodeSlab
}

// done marks one target (or the decoder's own hold) finished.
func (d *docRef) done() {
	if d != nil && d.pending.Add(-1) == 0 {
		releaseSlabs(d.slabs)
	}
}

// decodeYAMLv3 decodes text, which starts on line first of the file, with
// yaml.v3: the documents the fast path leaves, and whole streams it cannot split.
func decodeYAMLv3(name string, text []byte, first int, send func(item) bool) error {
	var r io.Reader = bytes.NewReader(text)
	if first > 1 {
		// Lines before the document keep yaml.v3's line numbers those of the file.
		r = io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("\n"), first-1)), r)
	}
	dec := yaml.NewDecoder(r)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			line, msg := yamlError(err)
			return &ParseError{File: name, Line: line, Err: errors.New(msg)}
		}
		n := &doc
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				continue
			}
			n = n.Content[0]
		}
		if err := leanObject(name, n, send); err != nil {
			return err
		}
	}
}

// leanObject sends the targets of one document (or of each item of a List).
func leanObject(file string, n *yaml.Node, send func(item) bool) error {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty document, as Helm renders for disabled templates
	}
	if n.Kind != yaml.MappingNode {
		return &ParseError{File: file, Line: n.Line, Err: errors.New("document is not a Kubernetes object (not a mapping)")}
	}
	kind, apiVersion := scalar(n, "kind"), scalar(n, "apiVersion")
	if strings.HasSuffix(kind, "List") && apiVersion != "" {
		if items := child(n, "items"); items != nil {
			if items.Kind != yaml.SequenceNode {
				return &ParseError{File: file, Line: items.Line, Err: fmt.Errorf("%s: items is not a list", kind)}
			}
			for _, it := range items.Content {
				if err := leanObject(file, it, send); err != nil {
					return err
				}
			}
			return nil
		}
	}
	d := &leanDecoder{file: file, kind: kind}
	t := &check.Target{File: file, APIVersion: apiVersion, ObjectLine: n.Line, Line: func(field string) int { return lineOf(n, field) }}
	meta := child(n, "metadata")
	t.Object = check.ObjectRef{Kind: kind, Namespace: scalar(meta, "namespace"), Name: scalar(meta, "name")}
	t.Owner = t.Object
	refs, err := d.ownerRefs(child(meta, "ownerReferences"), "metadata.ownerReferences")
	if err != nil {
		return err
	}
	if kind == "" || apiVersion == "" {
		t.Skip = "not a Kubernetes object: no apiVersion or kind"
		send(item{t: t})
		return nil
	}
	if specPath, ok := podSpecPath(apiVersion, kind); ok {
		t.SpecPath = specPath
		if spec := at(n, specPath); spec != nil {
			if t.PodSpec, err = d.podSpec(spec, specPath); err != nil {
				return err
			}
		}
		send(item{t: t, refs: refs})
		return nil
	}
	switch {
	case groupOf(apiVersion) == "" && kind == "ConfigMap":
		t.ConfigMap, err = d.configMap(n)
	case groupOf(apiVersion) == "" && kind == "Secret":
		// Collectors keep their configuration in Secrets too (promtail's chart does):
		// the configuration rules read them as they read ConfigMaps.
		t.ConfigMap, err = d.secret(n)
	case runsNoPods(apiVersion, kind):
		// Nothing in it runs a container: checked, with nothing to find.
	default:
		targets := genericTargets(n, t)
		if len(targets) == 0 {
			t.Skip = fmt.Sprintf("%s (%s) is not a kind unshim knows, and no container-shaped entry (image with command, args, env, volumeMounts or script) was found in it; "+
				"the pods it may start are checked only on a live cluster", kind, apiVersion)
			send(item{t: t})
			return nil
		}
		for _, g := range targets {
			if !send(item{t: g, refs: refs}) {
				return nil
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	send(item{t: t, refs: refs})
	return nil
}

// leanDecoder decodes the fields the rules read, with errors naming the
// file, the line and the field path.
type leanDecoder struct {
	file, kind string
}

func (d *leanDecoder) shapeError(n *yaml.Node, field, want string) error {
	return &ParseError{File: d.file, Line: n.Line, Err: fmt.Errorf("%s field %s: want %s, got %s", d.kind, field, want, shortTag(n))}
}

func shortTag(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strings.TrimPrefix(n.Tag, "!!") + " " + fmt.Sprintf("%q", n.Value)
}

// str decodes a string field; null is "". The value is copied: nodes'
// values may be views of the file, which a target must not hold on to.
func (d *leanDecoder) str(n *yaml.Node, field string) (string, error) {
	if n == nil {
		return "", nil
	}
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return "", d.shapeError(n, field, "a string")
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	return strings.Clone(n.Value), nil
}

// list returns the items of a list field; null is no items.
func (d *leanDecoder) list(n *yaml.Node, field string) ([]*yaml.Node, error) {
	if n == nil {
		return nil, nil
	}
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.shapeError(n, field, "a list")
	}
	return n.Content, nil
}

// mapping checks that a field is a mapping (or null, returned as nil).
func (d *leanDecoder) mapping(n *yaml.Node, field string) (*yaml.Node, error) {
	if n == nil {
		return nil, nil
	}
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, d.shapeError(n, field, "a mapping")
	}
	return n, nil
}

func (d *leanDecoder) strs(n *yaml.Node, field string) ([]string, error) {
	items, err := d.list(n, field)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]string, len(items))
	for i, it := range items {
		if out[i], err = d.str(it, fmt.Sprintf("%s[%d]", field, i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *leanDecoder) ownerRefs(n *yaml.Node, field string) ([]metav1.OwnerReference, error) {
	items, err := d.list(n, field)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	refs := make([]metav1.OwnerReference, 0, len(items))
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		m, err := d.mapping(it, f)
		if err != nil {
			return nil, err
		}
		var r metav1.OwnerReference
		if r.Kind, err = d.str(child(m, "kind"), f+".kind"); err != nil {
			return nil, err
		}
		if r.Name, err = d.str(child(m, "name"), f+".name"); err != nil {
			return nil, err
		}
		if c := child(m, "controller"); c != nil {
			b, err := d.boolean(c, f+".controller")
			if err != nil {
				return nil, err
			}
			r.Controller = &b
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func (d *leanDecoder) boolean(n *yaml.Node, field string) (bool, error) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "true", "True", "TRUE":
			return true, nil
		case "false", "False", "FALSE", "", "null", "~":
			return false, nil
		}
	}
	return false, d.shapeError(n, field, "true or false")
}

// podSpec decodes the containers and volumes of a pod spec.
func (d *leanDecoder) podSpec(n *yaml.Node, field string) (*corev1.PodSpec, error) {
	m, err := d.mapping(n, field)
	if err != nil || m == nil {
		return nil, err
	}
	spec := &corev1.PodSpec{}
	if spec.InitContainers, err = d.containers(child(m, "initContainers"), field+".initContainers"); err != nil {
		return nil, err
	}
	if spec.Containers, err = d.containers(child(m, "containers"), field+".containers"); err != nil {
		return nil, err
	}
	if spec.Volumes, err = d.volumes(child(m, "volumes"), field+".volumes"); err != nil {
		return nil, err
	}
	return spec, nil
}

func (d *leanDecoder) containers(n *yaml.Node, field string) ([]corev1.Container, error) {
	items, err := d.list(n, field)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]corev1.Container, len(items))
	for i, it := range items {
		if err := d.container(it, fmt.Sprintf("%s[%d]", field, i), &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// container decodes the fields of a container the rules read: name, image,
// command, args, env, volume mounts and whether it is privileged.
func (d *leanDecoder) container(n *yaml.Node, field string, c *corev1.Container) error {
	m, err := d.mapping(n, field)
	if err != nil || m == nil {
		return err
	}
	return eachEntry(m, func(k string, v *yaml.Node) error {
		f := field + "." + k
		var err error
		switch k {
		case "name":
			c.Name, err = d.str(v, f)
		case "image":
			c.Image, err = d.str(v, f)
		case "command":
			c.Command, err = d.strs(v, f)
		case "args":
			c.Args, err = d.strs(v, f)
		case "env":
			c.Env, err = d.env(v, f)
		case "volumeMounts":
			c.VolumeMounts, err = d.mounts(v, f)
		case "securityContext":
			var sc *yaml.Node
			if sc, err = d.mapping(v, f); err != nil || sc == nil {
				return err
			}
			if p := child(sc, "privileged"); p != nil {
				var b bool
				if b, err = d.boolean(p, f+".privileged"); err == nil {
					c.SecurityContext = &corev1.SecurityContext{Privileged: &b}
				}
			}
		}
		return err
	})
}

func (d *leanDecoder) env(n *yaml.Node, field string) ([]corev1.EnvVar, error) {
	items, err := d.list(n, field)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]corev1.EnvVar, len(items))
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		m, err := d.mapping(it, f)
		if err != nil {
			return nil, err
		}
		if out[i].Name, err = d.str(child(m, "name"), f+".name"); err != nil {
			return nil, err
		}
		if out[i].Value, err = d.str(child(m, "value"), f+".value"); err != nil {
			return nil, err
		}
		if child(m, "valueFrom") != nil {
			out[i].ValueFrom = &corev1.EnvVarSource{}
		}
	}
	return out, nil
}

func (d *leanDecoder) mounts(n *yaml.Node, field string) ([]corev1.VolumeMount, error) {
	items, err := d.list(n, field)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]corev1.VolumeMount, len(items))
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		m, err := d.mapping(it, f)
		if err != nil {
			return nil, err
		}
		if out[i].Name, err = d.str(child(m, "name"), f+".name"); err != nil {
			return nil, err
		}
		if out[i].MountPath, err = d.str(child(m, "mountPath"), f+".mountPath"); err != nil {
			return nil, err
		}
		if out[i].SubPath, err = d.str(child(m, "subPath"), f+".subPath"); err != nil {
			return nil, err
		}
		if ro := child(m, "readOnly"); ro != nil {
			if out[i].ReadOnly, err = d.boolean(ro, f+".readOnly"); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (d *leanDecoder) volumes(n *yaml.Node, field string) ([]corev1.Volume, error) {
	items, err := d.list(n, field)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]corev1.Volume, len(items))
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		m, err := d.mapping(it, f)
		if err != nil {
			return nil, err
		}
		if out[i].Name, err = d.str(child(m, "name"), f+".name"); err != nil {
			return nil, err
		}
		hp, err := d.mapping(child(m, "hostPath"), f+".hostPath")
		if err != nil {
			return nil, err
		}
		if hp != nil {
			p, err := d.str(child(hp, "path"), f+".hostPath.path")
			if err != nil {
				return nil, err
			}
			out[i].HostPath = &corev1.HostPathVolumeSource{Path: p}
		}
	}
	return out, nil
}

// configMap decodes a ConfigMap's data.
func (d *leanDecoder) configMap(n *yaml.Node) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	var err error
	cm.Data, err = d.stringMap(child(n, "data"), "data", false)
	return cm, err
}

// secret reads a Secret's data (base64) and stringData as a ConfigMap's data.
func (d *leanDecoder) secret(n *yaml.Node) (*corev1.ConfigMap, error) {
	data, err := d.stringMap(child(n, "data"), "data", true)
	if err != nil {
		return nil, err
	}
	sd, err := d.stringMap(child(n, "stringData"), "stringData", false)
	if err != nil {
		return nil, err
	}
	if data == nil {
		data = sd
	} else {
		for k, v := range sd {
			data[k] = v
		}
	}
	return &corev1.ConfigMap{Data: data}, nil
}

func (d *leanDecoder) stringMap(n *yaml.Node, field string, b64 bool) (map[string]string, error) {
	m, err := d.mapping(n, field)
	if err != nil || m == nil {
		return nil, err
	}
	out := map[string]string{}
	err = eachEntry(m, func(k string, v *yaml.Node) error {
		s, err := d.str(v, field+"."+k)
		if err != nil {
			return err
		}
		if b64 {
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil // not base64: nothing a collector could read
			}
			s = string(raw)
		}
		out[strings.Clone(k)] = s
		return nil
	})
	return out, err
}
