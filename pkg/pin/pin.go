// Package pin owns the node affinity `unshim pin` adds to workloads that
// still need Docker: a required node affinity on the label unshim.io/runtime
// (pkg/runtimelabel) In [docker, cri-dockerd], added to every node selector
// term of the pod template, with an annotation that records what was added
// so that unpin removes exactly that. Changes are JSON merge patches, shown
// before they are applied.
package pin

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

// Annotation marks a pinned workload; its value records what pin added.
const Annotation = "unshim.io/pinned"

// Workload names a workload.
type Workload struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (w Workload) String() string { return w.Kind + "/" + w.Namespace + "/" + w.Name }

// kind is how a workload kind is addressed and where its pod template is.
type kind struct {
	gvr      schema.GroupVersionResource
	template []string // path of the pod spec
	// immutable says why its template cannot be changed ("" when it can).
	immutable string
}

var kinds = map[string]kind{
	"Deployment":            {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, template: []string{"spec", "template", "spec"}},
	"StatefulSet":           {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, template: []string{"spec", "template", "spec"}},
	"DaemonSet":             {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, template: []string{"spec", "template", "spec"}},
	"ReplicaSet":            {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, template: []string{"spec", "template", "spec"}},
	"ReplicationController": {gvr: schema.GroupVersionResource{Version: "v1", Resource: "replicationcontrollers"}, template: []string{"spec", "template", "spec"}},
	"CronJob":               {gvr: schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, template: []string{"spec", "jobTemplate", "spec", "template", "spec"}},
	"Job":                   {immutable: "a Job's pod template cannot change: pin its CronJob or re-create it"},
	"Pod":                   {immutable: "a Pod's affinity cannot change: pin its controller, or re-create it"},
}

// kindNames lists the kinds that can be pinned, sorted, for a stable order.
func kindNames() []string {
	var out []string
	for k, v := range kinds {
		if v.immutable == "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Change is one workload's patch, or why it is left alone.
type Change struct {
	Workload Workload `json:"workload"`
	// Patch is a JSON merge patch; empty when Skip is set.
	Patch json.RawMessage `json:"patch,omitempty"`
	Skip  string          `json:"skip,omitempty"`
}

// record is the annotation's value.
type record struct {
	// AddedTerm is true when the workload had no node selector terms and
	// pin added one; otherwise pin added its expression to every term.
	AddedTerm bool `json:"addedTerm"`
	// AddedAffinity and AddedNodeAffinity are true when the pod spec had
	// no affinity (no nodeAffinity) before pin.
	AddedAffinity     bool `json:"addedAffinity,omitempty"`
	AddedNodeAffinity bool `json:"addedNodeAffinity,omitempty"`
}

// expression is the requirement pin adds.
func expression() map[string]any {
	vals := make([]any, len(runtimelabel.DockerValues))
	for i, v := range runtimelabel.DockerValues {
		vals[i] = v
	}
	return map[string]any{"key": runtimelabel.Key, "operator": "In", "values": vals}
}

// Plan lists the kinds of the given workloads (paged LISTs through the
// dynamic client, never one GET per workload) and returns the patch that
// pins each. Workloads not found are reported as skipped.
func Plan(ctx context.Context, dyn dynamic.Interface, workloads []Workload, pageSize int64) ([]Change, error) {
	want := map[Workload]bool{}
	byKind := map[string]bool{}
	var out []Change
	for _, w := range workloads {
		k, ok := kinds[w.Kind]
		switch {
		case !ok:
			out = append(out, Change{Workload: w, Skip: "unshim cannot pin a " + w.Kind})
		case k.immutable != "":
			out = append(out, Change{Workload: w, Skip: k.immutable})
		default:
			want[w] = false
			byKind[w.Kind] = true
		}
	}
	for _, kn := range kindNames() {
		if !byKind[kn] {
			continue
		}
		err := each(ctx, dyn, kn, pageSize, func(u *unstructured.Unstructured) error {
			w := Workload{Kind: kn, Namespace: u.GetNamespace(), Name: u.GetName()}
			if _, ok := want[w]; !ok {
				return nil
			}
			want[w] = true
			ch, err := pinPatch(u, kinds[kn].template)
			if err != nil {
				return fmt.Errorf("pin %s: %w", w, err)
			}
			ch.Workload = w
			out = append(out, ch)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for w, found := range want {
		if !found {
			out = append(out, Change{Workload: w, Skip: "not found"})
		}
	}
	sortChanges(out)
	return out, nil
}

// Unplan lists every workload kind (paged) and returns the patch that
// unpins each workload carrying the annotation.
func Unplan(ctx context.Context, dyn dynamic.Interface, namespace string, pageSize int64) ([]Change, error) {
	var out []Change
	for _, kn := range kindNames() {
		err := each(ctx, dyn, kn, pageSize, func(u *unstructured.Unstructured) error {
			if namespace != "" && u.GetNamespace() != namespace {
				return nil
			}
			if _, ok := u.GetAnnotations()[Annotation]; !ok {
				return nil
			}
			w := Workload{Kind: kn, Namespace: u.GetNamespace(), Name: u.GetName()}
			ch, err := unpinPatch(u, kinds[kn].template)
			if err != nil {
				return fmt.Errorf("unpin %s: %w", w, err)
			}
			ch.Workload = w
			out = append(out, ch)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sortChanges(out)
	return out, nil
}

// Pinned lists the workloads that carry the annotation, with paged LISTs.
func Pinned(ctx context.Context, dyn dynamic.Interface, pageSize int64) ([]Workload, error) {
	var out []Workload
	for _, kn := range kindNames() {
		err := each(ctx, dyn, kn, pageSize, func(u *unstructured.Unstructured) error {
			if _, ok := u.GetAnnotations()[Annotation]; ok {
				out = append(out, Workload{Kind: kn, Namespace: u.GetNamespace(), Name: u.GetName()})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Apply sends each change's patch; skipped changes are left alone.
func Apply(ctx context.Context, dyn dynamic.Interface, changes []Change) error {
	for _, ch := range changes {
		if ch.Skip != "" || len(ch.Patch) == 0 {
			continue
		}
		k := kinds[ch.Workload.Kind]
		if _, err := dyn.Resource(k.gvr).Namespace(ch.Workload.Namespace).Patch(ctx, ch.Workload.Name, types.MergePatchType, ch.Patch, metav1.PatchOptions{FieldManager: "unshim"}); err != nil {
			return fmt.Errorf("patch %s: %w", ch.Workload, err)
		}
	}
	return nil
}

func each(ctx context.Context, dyn dynamic.Interface, kn string, pageSize int64, fn func(*unstructured.Unstructured) error) error {
	res := dyn.Resource(kinds[kn].gvr)
	return kubelist.Each(ctx, kinds[kn].gvr.Resource, pageSize, metav1.ListOptions{},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, opts)
		},
		func(obj runtime.Object) error { return fn(obj.(*unstructured.Unstructured)) })
}

func sortChanges(cs []Change) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Workload.String() < cs[j].Workload.String() })
}

// termsPath is where the required node selector terms sit under a pod spec.
var termsPath = []string{"affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"}

// pinPatch adds the expression to every node selector term of u's pod
// template (or adds a term holding only it) and marks u.
func pinPatch(u *unstructured.Unstructured, template []string) (Change, error) {
	if _, ok := u.GetAnnotations()[Annotation]; ok {
		return Change{Skip: "already pinned"}, nil
	}
	terms, _, err := unstructured.NestedSlice(u.Object, append(append([]string{}, template...), termsPath...)...)
	if err != nil {
		return Change{}, err
	}
	rec := record{}
	if _, ok, _ := unstructured.NestedMap(u.Object, append(append([]string{}, template...), "affinity")...); !ok {
		rec.AddedAffinity = true
	}
	if _, ok, _ := unstructured.NestedMap(u.Object, append(append([]string{}, template...), "affinity", "nodeAffinity")...); !ok {
		rec.AddedNodeAffinity = true
	}
	if len(terms) == 0 {
		terms = []any{map[string]any{"matchExpressions": []any{expression()}}}
		rec.AddedTerm = true
	} else {
		for i, t := range terms {
			term, ok := t.(map[string]any)
			if !ok {
				return Change{}, fmt.Errorf("node selector term %d is not an object", i)
			}
			exprs, _ := term["matchExpressions"].([]any)
			term["matchExpressions"] = append(exprs, expression())
		}
	}
	return patch(template, terms, &rec)
}

// unpinPatch removes what pinPatch added, as its record says.
func unpinPatch(u *unstructured.Unstructured, template []string) (Change, error) {
	var rec record
	if err := json.Unmarshal([]byte(u.GetAnnotations()[Annotation]), &rec); err != nil {
		return Change{}, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	terms, _, err := unstructured.NestedSlice(u.Object, append(append([]string{}, template...), termsPath...)...)
	if err != nil {
		return Change{}, err
	}
	var kept []any
	for _, t := range terms {
		term, ok := t.(map[string]any)
		if !ok {
			kept = append(kept, t)
			continue
		}
		exprs, _ := term["matchExpressions"].([]any)
		var keep []any
		for _, e := range exprs {
			if !reflect.DeepEqual(e, expression()) {
				keep = append(keep, e)
			}
		}
		switch {
		case len(keep) == 0 && len(term) == 1 && rec.AddedTerm:
			continue // the term pin added
		case len(keep) == 0:
			delete(term, "matchExpressions")
		default:
			term["matchExpressions"] = keep
		}
		kept = append(kept, term)
	}
	if len(kept) == 0 && rec.AddedAffinity {
		return patchAt(append(append([]string{}, template...), "affinity"), nil, nil)
	}
	if len(kept) == 0 && rec.AddedNodeAffinity {
		return patchAt(append(append([]string{}, template...), "affinity", "nodeAffinity"), nil, nil)
	}
	return patch(template, kept, nil)
}

// patch is the merge patch that sets the terms (or deletes the required
// node affinity when there are none) and sets (rec) or removes the annotation.
func patch(template []string, terms []any, rec *record) (Change, error) {
	var required any
	if len(terms) > 0 {
		required = map[string]any{"nodeSelectorTerms": terms}
	}
	return patchAt(append(append([]string{}, template...), termsPath[:3]...), required, rec)
}

// patchAt is the merge patch that sets path to value (deletes it when nil)
// and sets (rec) or removes the annotation.
func patchAt(path []string, value any, rec *record) (Change, error) {
	p := map[string]any{}
	var ann any
	if rec != nil {
		b, err := json.Marshal(rec)
		if err != nil {
			return Change{}, err
		}
		ann = string(b)
	}
	if err := unstructured.SetNestedField(p, ann, "metadata", "annotations", Annotation); err != nil {
		return Change{}, err
	}
	if err := unstructured.SetNestedField(p, value, path...); err != nil {
		return Change{}, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Change{}, err
	}
	return Change{Patch: b}, nil
}
