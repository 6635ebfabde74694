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
func decodeStream(name string, data []byte, sc *scratch, send func(item) bool) error {
	docs, ok := splitDocuments(data)
	if !ok {
		return decodeYAMLv3(name, data, 1, sc, send)
	}
	for _, c := range docs {
		n, slabs, err := parseBlockDocument(c)
		if errors.Is(err, fallback) {
			if err := decodeYAMLv3(name, c.text, c.first, sc, send); err != nil {
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
		err = leanObject(name, n, sc, func(it item) bool {
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
func decodeYAMLv3(name string, text []byte, first int, sc *scratch, send func(item) bool) error {
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
		if err := leanObject(name, n, sc, send); err != nil {
			return err
		}
	}
}

// leanObject sends the targets of one document (or of each item of a List).
// With sc set, a target without owner references borrows sc's buffers and
// the file's strings: the caller examines it before the next document.
func leanObject(file string, n *yaml.Node, sc *scratch, send func(item) bool) error {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty document, as Helm renders for disabled templates
	}
	if n.Kind != yaml.MappingNode {
		return &ParseError{File: file, Line: n.Line, Err: errors.New("document is not a Kubernetes object (not a mapping)")}
	}
	// Views of the file until it is known whether the target borrows.
	kind, apiVersion := scalarView(n, "kind"), scalarView(n, "apiVersion")
	if strings.HasSuffix(kind, "List") && apiVersion != "" {
		if items := child(n, "items"); items != nil {
			if items.Kind != yaml.SequenceNode {
				return &ParseError{File: file, Line: items.Line, Err: fmt.Errorf("%s: items is not a list", kind)}
			}
			for _, it := range items.Content {
				if err := leanObject(file, it, sc, send); err != nil {
					return err
				}
			}
			return nil
		}
	}
	d := &leanDecoder{file: file, kind: kind, root: n}
	meta := child(n, "metadata")
	refs, err := d.ownerRefs(child(meta, "ownerReferences"))
	if err != nil {
		return err
	}
	namespace, name := scalarView(meta, "namespace"), scalarView(meta, "name")
	var t *check.Target
	if sc != nil && len(refs) == 0 {
		// Examined before the next document is decoded: borrow.
		sc.reset(n)
		d.sc = sc
		t = &sc.target
		*t = check.Target{Line: sc.line}
	} else {
		t = &check.Target{Line: func(field string) int { return lineOf(n, field) }}
		kind, apiVersion = strings.Clone(kind), strings.Clone(apiVersion)
		namespace, name = strings.Clone(namespace), strings.Clone(name)
		d.kind = kind
	}
	t.File, t.APIVersion, t.ObjectLine = file, apiVersion, n.Line
	t.Object = check.ObjectRef{Kind: kind, Namespace: namespace, Name: name}
	t.Owner = t.Object
	if kind == "" || apiVersion == "" {
		t.Skip = "not a Kubernetes object: no apiVersion or kind"
		send(item{t: t})
		return nil
	}
	if specPath, ok := podSpecPath(apiVersion, kind); ok {
		t.SpecPath = specPath
		if spec := at(n, specPath); spec != nil {
			if t.PodSpec, err = d.podSpec(spec); err != nil {
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

// scratch lends one worker's decoder its buffers. A worker that examines
// each target before it decodes the next document (Source.VisitExamined)
// needs no target, pod spec, container, volume or string to outlive the
// document: they are taken from here and from the file's bytes, reused
// document after document, instead of allocated. Check.Examiner copies
// the strings a finding keeps.
type scratch struct {
	file       []byte // the worker's read buffer, when no target points into it
	target     check.Target
	node       *yaml.Node       // the document's root, for line
	line       func(string) int // lineOf(node, field), made once
	spec       corev1.PodSpec
	cm         corev1.ConfigMap
	containers bump[corev1.Container]
	env        bump[corev1.EnvVar]
	mounts     bump[corev1.VolumeMount]
	volumes    bump[corev1.Volume]
	strs       bump[string]
	hostPaths  bump[corev1.HostPathVolumeSource]
	secCtx     bump[corev1.SecurityContext]
	bools      bump[bool]
	envFrom    bump[corev1.EnvVarSource]
}

func newScratch() *scratch {
	sc := &scratch{}
	sc.line = func(field string) int { return lineOf(sc.node, field) }
	return sc
}

// reset readies sc for the document rooted at n.
func (sc *scratch) reset(n *yaml.Node) {
	sc.node = n
	// Only the fields the decoder sets are reset (see bump.takeDirty).
	sc.spec.InitContainers, sc.spec.Containers, sc.spec.Volumes = nil, nil, nil
	data := sc.cm.Data
	clear(data)
	sc.cm = corev1.ConfigMap{Data: data}
	sc.containers.reset()
	sc.env.reset()
	sc.mounts.reset()
	sc.volumes.reset()
	sc.strs.reset()
	sc.hostPaths.reset()
	sc.secCtx.reset()
	sc.bools.reset()
	sc.envFrom.reset()
}

// bump hands out zeroed slices of one buffer, reset per document. When the
// buffer is short a larger one replaces it; slices taken before stay valid.
type bump[T any] struct {
	buf  []T
	used int
}

func (b *bump[T]) take(n int) []T {
	s := b.takeDirty(n)
	clear(s)
	return s
}

// takeDirty is take without zeroing: for the large Kubernetes structs of
// which the decoder sets a few fields, the caller resets those fields (each
// pointer written costs a write barrier while the collector runs, and the
// fields never set stay zero in every buffer).
func (b *bump[T]) takeDirty(n int) []T {
	if n == 0 {
		return nil
	}
	if b.used+n > len(b.buf) {
		b.buf = make([]T, max(2*len(b.buf), n, 16))
		b.used = 0
	}
	s := b.buf[b.used : b.used+n : b.used+n]
	b.used += n
	return s
}

func (b *bump[T]) reset() { b.used = 0 }

// makeSlice returns n zeroed elements: from b when the decoder borrows,
// else newly allocated.
func makeSlice[T any](d *leanDecoder, b func(*scratch) *bump[T], n int) []T {
	if d.sc != nil {
		return b(d.sc).take(n)
	}
	return make([]T, n)
}

// leanDecoder decodes the fields the rules read, with errors naming the
// file, the line and the field path (found from root when there is an error:
// a decoded object's fields are many and its errors rare).
type leanDecoder struct {
	file, kind string
	root       *yaml.Node
	// sc, when set, lends buffers and lets strings be views of the file.
	sc *scratch
}

func (d *leanDecoder) shapeError(n *yaml.Node, want string) error {
	return &ParseError{File: d.file, Line: n.Line, Err: fmt.Errorf("%s field %s: want %s, got %s", d.kind, pathTo(d.root, n), want, shortTag(n))}
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

// str decodes a string field; null is "". The value is copied unless the
// decoder borrows: nodes' values may be views of the file, which a target
// kept beyond its document must not hold on to.
func (d *leanDecoder) str(n *yaml.Node) (string, error) {
	if n == nil {
		return "", nil
	}
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return "", d.shapeError(n, "a string")
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	if d.sc != nil {
		return n.Value, nil
	}
	return strings.Clone(n.Value), nil
}

// list returns the items of a list field; null is no items.
func (d *leanDecoder) list(n *yaml.Node) ([]*yaml.Node, error) {
	if n == nil {
		return nil, nil
	}
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.shapeError(n, "a list")
	}
	return n.Content, nil
}

// mapping checks that a field is a mapping (or null, returned as nil).
func (d *leanDecoder) mapping(n *yaml.Node) (*yaml.Node, error) {
	if n == nil {
		return nil, nil
	}
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, d.shapeError(n, "a mapping")
	}
	return n, nil
}

func (d *leanDecoder) strs(n *yaml.Node) ([]string, error) {
	items, err := d.list(n)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := makeSlice(d, func(sc *scratch) *bump[string] { return &sc.strs }, len(items))
	for i, it := range items {
		if out[i], err = d.str(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *leanDecoder) ownerRefs(n *yaml.Node) ([]metav1.OwnerReference, error) {
	items, err := d.list(n)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	refs := make([]metav1.OwnerReference, 0, len(items))
	for _, it := range items {
		m, err := d.mapping(it)
		if err != nil {
			return nil, err
		}
		var r metav1.OwnerReference
		if r.Kind, err = d.str(child(m, "kind")); err != nil {
			return nil, err
		}
		if r.Name, err = d.str(child(m, "name")); err != nil {
			return nil, err
		}
		if c := child(m, "controller"); c != nil {
			b, err := d.boolean(c)
			if err != nil {
				return nil, err
			}
			r.Controller = &b
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func (d *leanDecoder) boolean(n *yaml.Node) (bool, error) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "true", "True", "TRUE":
			return true, nil
		case "false", "False", "FALSE", "", "null", "~":
			return false, nil
		}
	}
	return false, d.shapeError(n, "true or false")
}

// podSpec decodes the containers and volumes of a pod spec.
func (d *leanDecoder) podSpec(n *yaml.Node) (*corev1.PodSpec, error) {
	m, err := d.mapping(n)
	if err != nil || m == nil {
		return nil, err
	}
	var spec *corev1.PodSpec
	if d.sc != nil {
		spec = &d.sc.spec
	} else {
		spec = &corev1.PodSpec{}
	}
	if spec.InitContainers, err = d.containers(child(m, "initContainers")); err != nil {
		return nil, err
	}
	if spec.Containers, err = d.containers(child(m, "containers")); err != nil {
		return nil, err
	}
	if spec.Volumes, err = d.volumes(child(m, "volumes")); err != nil {
		return nil, err
	}
	return spec, nil
}

func (d *leanDecoder) containers(n *yaml.Node) ([]corev1.Container, error) {
	items, err := d.list(n)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	var out []corev1.Container
	if d.sc != nil {
		out = d.sc.containers.takeDirty(len(items))
		for i := range out {
			c := &out[i]
			c.Name, c.Image, c.Command, c.Args, c.Env, c.VolumeMounts, c.SecurityContext = "", "", nil, nil, nil, nil, nil
		}
	} else {
		out = make([]corev1.Container, len(items))
	}
	for i, it := range items {
		if err := d.container(it, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// container decodes the fields of a container the rules read: name, image,
// command, args, env, volume mounts and whether it is privileged.
func (d *leanDecoder) container(n *yaml.Node, c *corev1.Container) error {
	m, err := d.mapping(n)
	if err != nil || m == nil {
		return err
	}
	return eachEntry(m, func(k string, v *yaml.Node) error {
		var err error
		switch k {
		case "name":
			c.Name, err = d.str(v)
		case "image":
			c.Image, err = d.str(v)
		case "command":
			c.Command, err = d.strs(v)
		case "args":
			c.Args, err = d.strs(v)
		case "env":
			c.Env, err = d.env(v)
		case "volumeMounts":
			c.VolumeMounts, err = d.mounts(v)
		case "securityContext":
			var sc *yaml.Node
			if sc, err = d.mapping(v); err != nil || sc == nil {
				return err
			}
			if p := child(sc, "privileged"); p != nil {
				var b bool
				if b, err = d.boolean(p); err == nil {
					c.SecurityContext = d.securityContext(b)
				}
			}
		}
		return err
	})
}

func (d *leanDecoder) securityContext(privileged bool) *corev1.SecurityContext {
	if d.sc == nil {
		return &corev1.SecurityContext{Privileged: &privileged}
	}
	b := &d.sc.bools.take(1)[0]
	*b = privileged
	s := &d.sc.secCtx.take(1)[0]
	s.Privileged = b
	return s
}

func (d *leanDecoder) env(n *yaml.Node) ([]corev1.EnvVar, error) {
	items, err := d.list(n)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := makeSlice(d, func(sc *scratch) *bump[corev1.EnvVar] { return &sc.env }, len(items))
	for i, it := range items {
		m, err := d.mapping(it)
		if err != nil {
			return nil, err
		}
		if out[i].Name, err = d.str(child(m, "name")); err != nil {
			return nil, err
		}
		if out[i].Value, err = d.str(child(m, "value")); err != nil {
			return nil, err
		}
		if child(m, "valueFrom") != nil {
			out[i].ValueFrom = &makeSlice(d, func(sc *scratch) *bump[corev1.EnvVarSource] { return &sc.envFrom }, 1)[0]
		}
	}
	return out, nil
}

func (d *leanDecoder) mounts(n *yaml.Node) ([]corev1.VolumeMount, error) {
	items, err := d.list(n)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	var out []corev1.VolumeMount
	if d.sc != nil {
		out = d.sc.mounts.takeDirty(len(items))
		for i := range out {
			m := &out[i]
			m.Name, m.MountPath, m.SubPath, m.ReadOnly = "", "", "", false
		}
	} else {
		out = make([]corev1.VolumeMount, len(items))
	}
	for i, it := range items {
		m, err := d.mapping(it)
		if err != nil {
			return nil, err
		}
		if out[i].Name, err = d.str(child(m, "name")); err != nil {
			return nil, err
		}
		if out[i].MountPath, err = d.str(child(m, "mountPath")); err != nil {
			return nil, err
		}
		if out[i].SubPath, err = d.str(child(m, "subPath")); err != nil {
			return nil, err
		}
		if ro := child(m, "readOnly"); ro != nil {
			if out[i].ReadOnly, err = d.boolean(ro); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (d *leanDecoder) volumes(n *yaml.Node) ([]corev1.Volume, error) {
	items, err := d.list(n)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	var out []corev1.Volume
	if d.sc != nil {
		out = d.sc.volumes.takeDirty(len(items))
		for i := range out {
			out[i].Name, out[i].HostPath = "", nil
		}
	} else {
		out = make([]corev1.Volume, len(items))
	}
	for i, it := range items {
		m, err := d.mapping(it)
		if err != nil {
			return nil, err
		}
		if out[i].Name, err = d.str(child(m, "name")); err != nil {
			return nil, err
		}
		hp, err := d.mapping(child(m, "hostPath"))
		if err != nil {
			return nil, err
		}
		if hp != nil {
			p, err := d.str(child(hp, "path"))
			if err != nil {
				return nil, err
			}
			h := &makeSlice(d, func(sc *scratch) *bump[corev1.HostPathVolumeSource] { return &sc.hostPaths }, 1)[0]
			h.Path = p
			out[i].HostPath = h
		}
	}
	return out, nil
}

// configMap decodes a ConfigMap's data.
func (d *leanDecoder) configMap(n *yaml.Node) (*corev1.ConfigMap, error) {
	var cm *corev1.ConfigMap
	if d.sc != nil {
		cm = &d.sc.cm
	} else {
		cm = &corev1.ConfigMap{}
	}
	var err error
	cm.Data, err = d.stringMap(child(n, "data"), false, cm.Data)
	return cm, err
}

// secret reads a Secret's data (base64) and stringData as a ConfigMap's data.
func (d *leanDecoder) secret(n *yaml.Node) (*corev1.ConfigMap, error) {
	var cm *corev1.ConfigMap
	if d.sc != nil {
		cm = &d.sc.cm
	} else {
		cm = &corev1.ConfigMap{}
	}
	data, err := d.stringMap(child(n, "data"), true, cm.Data)
	if err != nil {
		return nil, err
	}
	data, err = d.stringMap(child(n, "stringData"), false, data)
	if err != nil {
		return nil, err
	}
	cm.Data = data
	return cm, nil
}

// stringMap adds the entries of a string map field to into (made when nil
// and there are entries) and returns it; with b64, values are base64.
func (d *leanDecoder) stringMap(n *yaml.Node, b64 bool, into map[string]string) (map[string]string, error) {
	m, err := d.mapping(n)
	if err != nil || m == nil {
		return into, err
	}
	if into == nil {
		into = map[string]string{}
	}
	err = eachEntry(m, func(k string, v *yaml.Node) error {
		s, err := d.str(v)
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
		if d.sc == nil {
			k = strings.Clone(k)
		}
		into[k] = s
		return nil
	})
	return into, err
}
