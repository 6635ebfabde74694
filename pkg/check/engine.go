package check

import (
	"context"
	"fmt"
	"hash/maphash"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// RuleMeta describes a rule: its stable ID, how serious a match is and what to do about it.
type RuleMeta struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	Remedy   string   `json:"remedy"`
}

// Rule inspects one Target and reports every Docker dependency it sees in
// it. Check may be called from several goroutines at once (a ParallelSource
// runs the rules in its workers), so a Rule keeps no unguarded state.
type Rule interface {
	Meta() RuleMeta
	Check(t *Target) []Hit
}

// Hit is one match of a rule inside a Target.
type Hit struct {
	Container string
	Evidence  string
	// Field is the path of the matched field from the object's root,
	// e.g. "spec.template.spec.volumes[0].hostPath.path".
	Field   string
	Message string
	// Remedy overrides the rule's remedy when the match knows a better one.
	Remedy string
	// Severity overrides the rule's severity when the match knows better
	// (a catalogued image that mounts a directory for its own reasons).
	Severity *Severity
}

// Target is one object handed to the rules.
type Target struct {
	// Object is the object that was read.
	Object ObjectRef
	// Owner is the top-level owner Object rolls up to (Object itself for a top-level object).
	Owner ObjectRef
	// PodSpec is set for Pods and for workloads with a pod template.
	PodSpec *corev1.PodSpec
	// SpecPath is the field path of PodSpec inside the object ("spec" for a Pod).
	SpecPath string
	// ConfigMap is set when the object is a ConfigMap.
	ConfigMap *corev1.ConfigMap
	// LivePod is true for a Pod read from a live cluster; findings count such pods.
	LivePod bool
	// File names the manifest the object came from ("" for a live cluster).
	File string
	// Line returns the line of a field path in File; nil for live objects.
	Line func(field string) int
	// Fields locates the containers and volumes of a PodSpec that was
	// assembled from an object of another shape (a custom resource's steps,
	// templates or sidecars); nil when PodSpec is the object's own.
	Fields *SpecFields
	// Skip, when set, says why the object was not checked: the engine
	// reports it as skipped and runs no rule on it.
	Skip string
	// APIVersion is the object's apiVersion as written (manifests only).
	APIVersion string
	// ObjectLine is the line the object starts on in File (manifests only).
	ObjectLine int

	derived []derivedValue
}

type derivedValue struct {
	key, value any
}

// Derived returns what compute derives from t, computed once per target
// for key (a pointer of the caller's): several rules read the same
// derived view of a target (its hostPath mounts), and a target is
// examined by one goroutine at a time.
func (t *Target) Derived(key any, compute func(*Target) any) any {
	for _, d := range t.derived {
		if d.key == key {
			return d.value
		}
	}
	v := compute(t)
	t.derived = append(t.derived, derivedValue{key, v})
	return v
}

// SpecFields gives the field path of each container and volume of an assembled PodSpec.
type SpecFields struct {
	InitContainers []string
	Containers     []string
	Volumes        []string
}

// ContainerField returns the field path of container i of list
// ("initContainers" or "containers") of t's PodSpec.
func (t *Target) ContainerField(list string, i int) string {
	if t.Fields != nil {
		paths := t.Fields.Containers
		if list == "initContainers" {
			paths = t.Fields.InitContainers
		}
		if i < len(paths) {
			return paths[i]
		}
	}
	return fmt.Sprintf("%s.%s[%d]", t.SpecPath, list, i)
}

// VolumeField returns the field path of volume i of t's PodSpec.
func (t *Target) VolumeField(i int) string {
	if t.Fields != nil && i < len(t.Fields.Volumes) {
		return t.Fields.Volumes[i]
	}
	return fmt.Sprintf("%s.volumes[%d]", t.SpecPath, i)
}

// Source yields the objects to check, one at a time, with owners resolved.
type Source interface {
	Visit(ctx context.Context, fn func(*Target) error) error
}

// Result is what a check run found and how much it looked at.
type Result struct {
	Findings []Finding `json:"findings"`
	// Scanned counts the objects read, by kind, skipped ones included.
	Scanned map[string]int `json:"scanned"`
	// Skipped lists the objects read but not checked, in the order read.
	Skipped []Skipped `json:"skipped"`
}

// Skipped is an object that was read but not checked, and why.
type Skipped struct {
	Object     ObjectRef `json:"object"`
	APIVersion string    `json:"apiVersion,omitempty"`
	File       string    `json:"file,omitempty"`
	Line       int       `json:"line,omitempty"`
	Reason     string    `json:"reason"`
}

// ParallelSource is a Source that can run the rules in the goroutines that
// read its objects, so reading and checking use every CPU.
type ParallelSource interface {
	Source
	// VisitExamined hands each object to examine, which may be called from
	// several goroutines at once, and each Examined to fn, one at a time,
	// in the order Visit would hand the objects over. An object whose Owner
	// is known only later (one with owner references) is examined once its
	// Owner is set, so rules always see the Owner Visit would give them.
	VisitExamined(ctx context.Context, examine func(*Target) *Examined, fn func(*Examined) error) error
}

// Examined is what the rules found on one Target: its findings, before
// they are merged with those of other objects of the same owner.
type Examined struct {
	kind     string
	skipped  *Skipped
	findings []Finding
	livePod  bool
}

// Examiner returns the function that runs rules on one Target; it is safe
// for concurrent use when the rules are (every rule of pkg/check/rules is).
// Every string a finding or a skipped object takes from the target is
// copied (once per distinct value): a source may lend a target strings that
// are views of a buffer it reuses (pkg/manifest does).
func Examiner(rules []Rule) func(*Target) *Examined {
	metas := make([]RuleMeta, len(rules))
	for i, r := range rules {
		metas[i] = r.Meta()
	}
	var strs interner
	ref := func(o ObjectRef) ObjectRef {
		return ObjectRef{Kind: strs.intern(o.Kind), Namespace: strs.intern(o.Namespace), Name: strs.intern(o.Name)}
	}
	return func(t *Target) *Examined {
		object := ref(t.Object)
		e := &Examined{kind: object.Kind, livePod: t.LivePod}
		if t.Skip != "" {
			e.skipped = &Skipped{Object: object, APIVersion: strs.intern(t.APIVersion), File: strs.intern(t.File), Line: t.ObjectLine, Reason: strs.intern(t.Skip)}
			return e
		}
		owner := object
		var via *ObjectRef
		if t.Object != t.Owner {
			owner = ref(t.Owner)
			via = &object
		}
		for i, r := range rules {
			meta := &metas[i]
			for _, h := range r.Check(t) {
				f := Finding{
					Object:    owner,
					Rule:      meta.ID,
					Severity:  meta.Severity,
					Message:   strs.intern(h.Message),
					Remedy:    meta.Remedy,
					Container: strs.intern(h.Container),
					Evidence:  strs.intern(h.Evidence),
					Field:     strs.intern(h.Field),
					File:      strs.intern(t.File),
					Via:       via,
				}
				if h.Remedy != "" {
					f.Remedy = h.Remedy
				}
				if h.Severity != nil {
					f.Severity = *h.Severity
				}
				if t.Line != nil {
					f.Line = t.Line(h.Field)
				}
				e.findings = append(e.findings, f)
			}
		}
		return e
	}
}

// interner keeps one copy of each string findings hold: the same message,
// field, image or path recurs across the objects of a large check, and the
// findings are all held until they are sorted. Safe for concurrent use.
type interner struct {
	mu   sync.Mutex
	strs map[string]string
}

// intern returns the kept copy of s, copying s the first time it is seen.
func (in *interner) intern(s string) string {
	if s == "" {
		return ""
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.strs[s]; ok {
		return c
	}
	if in.strs == nil {
		in.strs = map[string]string{}
	}
	c := strings.Clone(s)
	in.strs[c] = c
	return c
}

// Run feeds every object of src to every rule and returns the findings,
// merged per top-level owner and sorted most serious first.
func Run(ctx context.Context, src Source, rules []Rule) (*Result, error) {
	res := &Result{Scanned: map[string]int{}}
	ix := newFindingIndex()
	merge := func(e *Examined) error {
		res.Scanned[e.kind]++
		if e.skipped != nil {
			res.Skipped = append(res.Skipped, *e.skipped)
			return nil
		}
		for _, f := range e.findings {
			i, seen := ix.find(res.Findings, &f)
			if !seen {
				res.Findings = append(res.Findings, f)
			}
			if e.livePod {
				res.Findings[i].Pods++
			}
		}
		return nil
	}
	examine := Examiner(rules)
	var err error
	if ps, ok := src.(ParallelSource); ok {
		err = ps.VisitExamined(ctx, examine, merge)
	} else {
		err = src.Visit(ctx, func(t *Target) error { return merge(examine(t)) })
	}
	if err != nil {
		return nil, err
	}
	Sort(res.Findings)
	return res, nil
}

// Sort orders findings most serious first, then by object (namespace, kind,
// name), rule, container, file and line; findings equal in all of these keep
// their order. It is the one order of findings, of a cluster's and of a
// node's (pkg/nodecheck).
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Object.Namespace != b.Object.Namespace {
			return a.Object.Namespace < b.Object.Namespace
		}
		if a.Object.Kind != b.Object.Kind {
			return a.Object.Kind < b.Object.Kind
		}
		if a.Object.Name != b.Object.Name {
			return a.Object.Name < b.Object.Name
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Container != b.Container {
			return a.Container < b.Container
		}
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
}

// Worst returns the highest severity among fs and false when fs is empty.
func Worst(fs []Finding) (Severity, bool) {
	if len(fs) == 0 {
		return 0, false
	}
	w := fs[0].Severity
	for _, f := range fs[1:] {
		if f.Severity > w {
			w = f.Severity
		}
	}
	return w, true
}

// findingIndex finds the finding already recorded with the same key. It
// holds a 64-bit hash of the key per finding, not the key's strings: the
// index lives as long as the check, and a large one has tens of thousands
// of findings. Keys whose hash another key has (practically never) go to a
// map of their own.
type findingIndex struct {
	seed   maphash.Seed
	byHash map[uint64]int32
	other  map[findingKey]int
}

func newFindingIndex() *findingIndex {
	return &findingIndex{seed: maphash.MakeSeed(), byHash: map[uint64]int32{}}
}

// find returns the index in fs of the finding with f's key and true, or
// the index f takes when appended to fs and false (recording it there).
func (x *findingIndex) find(fs []Finding, f *Finding) (int, bool) {
	var h maphash.Hash
	h.SetSeed(x.seed)
	for _, s := range [...]string{f.Object.Kind, f.Object.Namespace, f.Object.Name, f.Rule, f.Container, f.Evidence, f.File} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	sum := h.Sum64()
	i, ok := x.byHash[sum]
	if !ok {
		x.byHash[sum] = int32(len(fs))
		return len(fs), false
	}
	if fs[i].key() == f.key() {
		return int(i), true
	}
	k := f.key()
	if j, ok := x.other[k]; ok {
		return j, true
	}
	if x.other == nil {
		x.other = map[findingKey]int{}
	}
	x.other[k] = len(fs)
	return len(fs), false
}
