package check

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// RuleMeta describes a rule: its stable ID, how serious a match is and what to do about it.
type RuleMeta struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	Remedy   string   `json:"remedy"`
}

// Rule inspects one Target and reports every Docker dependency it sees in it.
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
}

// Source yields the objects to check, one at a time, with owners resolved.
type Source interface {
	Visit(ctx context.Context, fn func(*Target) error) error
}

// Result is what a check run found and how much it looked at.
type Result struct {
	Findings []Finding `json:"findings"`
	// Scanned counts the objects read, by kind.
	Scanned map[string]int `json:"scanned"`
}

// Run feeds every object of src to every rule and returns the findings,
// merged per top-level owner and sorted most serious first.
func Run(ctx context.Context, src Source, rules []Rule) (*Result, error) {
	res := &Result{Scanned: map[string]int{}}
	byKey := map[string]int{}
	err := src.Visit(ctx, func(t *Target) error {
		res.Scanned[t.Object.Kind]++
		for _, r := range rules {
			meta := r.Meta()
			for _, h := range r.Check(t) {
				f := Finding{
					Object:    t.Owner,
					Rule:      meta.ID,
					Severity:  meta.Severity,
					Message:   h.Message,
					Remedy:    meta.Remedy,
					Container: h.Container,
					Evidence:  h.Evidence,
					Field:     h.Field,
					File:      t.File,
				}
				if h.Remedy != "" {
					f.Remedy = h.Remedy
				}
				if t.Object != t.Owner {
					via := t.Object
					f.Via = &via
				}
				if t.Line != nil {
					f.Line = t.Line(h.Field)
				}
				k := f.key()
				i, seen := byKey[k]
				if !seen {
					i = len(res.Findings)
					byKey[k] = i
					res.Findings = append(res.Findings, f)
				}
				if t.LivePod {
					res.Findings[i].Pods++
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	Sort(res.Findings)
	return res, nil
}

// Sort orders findings most serious first, then by object, rule, container and evidence.
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
