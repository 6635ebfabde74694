package live

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/manifest"
	"github.com/unshim/unshim/pkg/owner"
)

// crdResource is where the cluster says which custom resources it serves,
// with their schemas.
var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// knownContainerKinds are custom resources known to run containers: they
// are read whatever their CRD's schema says (Tekton and Argo Workflows
// install CRDs whose schema leaves spec open).
var knownContainerKinds = map[string]bool{
	"tekton.dev/Task": true, "tekton.dev/ClusterTask": true, "tekton.dev/Pipeline": true,
	"tekton.dev/TaskRun": true, "tekton.dev/PipelineRun": true,
	"argoproj.io/Workflow": true, "argoproj.io/WorkflowTemplate": true,
	"argoproj.io/ClusterWorkflowTemplate": true, "argoproj.io/CronWorkflow": true,
}

// customKind is a custom resource to read.
type customKind struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}

func (k customKind) apiVersion() string { return k.gvr.GroupVersion().String() }

// customKinds lists the CRDs served and returns the kinds whose objects may
// hold containers: the known ones, those whose schema has a container-shaped
// entry, and those whose schema leaves the object or its spec open. A
// cluster where CRDs cannot be listed yields a skip for them all.
func (s *Source) customKinds(ctx context.Context) ([]customKind, *check.Target, error) {
	var kinds []customKind
	err := kubelist.Each(ctx, "customresourcedefinitions", s.PageSize, metav1.ListOptions{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return s.Dynamic.Resource(crdResource).List(ctx, o)
		},
		func(obj runtime.Object) error {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return nil
			}
			if k, ok := readCRD(u.Object); ok {
				kinds = append(kinds, k)
			}
			return nil
		})
	if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
		return nil, &check.Target{
			Object:     check.ObjectRef{Kind: "CustomResourceDefinition", Name: "*"},
			APIVersion: crdResource.GroupVersion().String(),
			Skip: fmt.Sprintf("custom resources not checked: %v; grant list on customresourcedefinitions.apiextensions.k8s.io "+
				"(deploy/rbac/unshim-readonly.yaml) to check Tekton, Argo and other custom resources that run containers", unwrapStatus(err)),
		}, nil
	}
	return kinds, nil, err
}

// readCRD returns the kind a CRD serves (its storage version when served,
// else its first served one) and whether objects of it may hold containers.
func readCRD(crd map[string]any) (customKind, bool) {
	group, _, _ := unstructured.NestedString(crd, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd, "spec", "names", "kind")
	plural, _, _ := unstructured.NestedString(crd, "spec", "names", "plural")
	scope, _, _ := unstructured.NestedString(crd, "spec", "scope")
	versions, _, _ := unstructured.NestedSlice(crd, "spec", "versions")
	var version string
	var schemaOf map[string]any
	for _, v := range versions {
		vm, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if served, _, _ := unstructured.NestedBool(vm, "served"); !served {
			continue
		}
		name, _, _ := unstructured.NestedString(vm, "name")
		sch, _, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema")
		storage, _, _ := unstructured.NestedBool(vm, "storage")
		if version == "" || storage {
			version, schemaOf = name, sch
		}
	}
	if group == "" || kind == "" || plural == "" || version == "" {
		return customKind{}, false
	}
	k := customKind{gvr: schema.GroupVersionResource{Group: group, Version: version, Resource: plural}, kind: kind, namespaced: scope != "Cluster"}
	return k, knownContainerKinds[group+"/"+kind] || mayHoldContainers(schemaOf)
}

// mayHoldContainers reports whether objects of a CRD's schema may hold
// container-shaped entries (the ones the generic walk of -f finds): the
// schema is missing, the object or its spec is left open
// (x-kubernetes-preserve-unknown-fields without properties), or some
// object in it has an image property beside a command, args, env,
// volumeMounts, script or source, or sits in a list of containers.
func mayHoldContainers(sch map[string]any) bool {
	if sch == nil || openSchema(sch) {
		return true
	}
	if spec, ok, _ := unstructured.NestedMap(sch, "properties", "spec"); ok && openSchema(spec) {
		return true
	}
	return containerShaped(sch, "", 0)
}

// openSchema reports whether a schema node accepts any fields and names none.
func openSchema(sch map[string]any) bool {
	preserve, _, _ := unstructured.NestedBool(sch, "x-kubernetes-preserve-unknown-fields")
	props, _, _ := unstructured.NestedMap(sch, "properties")
	return preserve && len(props) == 0
}

func containerShaped(sch map[string]any, key string, depth int) bool {
	if depth > 32 {
		return false
	}
	props, _, _ := unstructured.NestedMap(sch, "properties")
	if _, ok := props["image"]; ok {
		if manifest.IsContainerList(key) {
			return true
		}
		for _, k := range manifest.ContainerKeys() {
			if _, ok := props[k]; ok {
				return true
			}
		}
	}
	for k, p := range props {
		if pm, ok := p.(map[string]any); ok && containerShaped(pm, k, depth+1) {
			return true
		}
	}
	if items, ok, _ := unstructured.NestedMap(sch, "items"); ok && containerShaped(items, key, depth+1) {
		return true
	}
	if extra, ok, _ := unstructured.NestedMap(sch, "additionalProperties"); ok && containerShaped(extra, key, depth+1) {
		return true
	}
	return false
}

// visitCustom lists the objects of kind and hands fn a target per scope of
// containers found in each (manifest.CustomResourceTargets), or the object
// with Skip set when it holds none. A kind that cannot be listed (RBAC) is
// handed over as one skipped target naming the permission it needs.
func (s *Source) visitCustom(ctx context.Context, k customKind, ix *owner.Index, fn func(*check.Target) error) error {
	if !k.namespaced && s.Namespace != "" {
		return nil // cluster-scoped: not part of one namespace's check
	}
	res := s.Dynamic.Resource(k.gvr)
	list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		if k.namespaced {
			return res.Namespace(s.Namespace).List(ctx, o)
		}
		return res.List(ctx, o)
	}
	what := k.gvr.Resource + "." + k.gvr.Group
	err := kubelist.Each(ctx, what, s.PageSize, metav1.ListOptions{}, list, func(obj runtime.Object) error {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil
		}
		base := &check.Target{
			Object:     check.ObjectRef{Kind: k.kind, Namespace: u.GetNamespace(), Name: u.GetName()},
			APIVersion: k.apiVersion(),
		}
		base.Owner = ix.Top(k.kind, base.Object.Namespace, base.Object.Name, u.GetOwnerReferences())
		targets, err := manifest.CustomResourceTargets(u.Object, base)
		if err != nil {
			return fmt.Errorf("read %s %s: %w", what, base.Object, err)
		}
		if len(targets) == 0 {
			base.Skip = fmt.Sprintf("%s (%s) holds no container-shaped entry (image with command, args, env, volumeMounts or script); "+
				"what it runs is checked where that is defined", k.kind, k.apiVersion())
			return fn(base)
		}
		for _, t := range targets {
			if err := fn(t); err != nil {
				return err
			}
		}
		return nil
	})
	if apierrors.IsForbidden(err) {
		return fn(&check.Target{
			Object:     check.ObjectRef{Kind: k.kind, Namespace: s.Namespace, Name: "*"},
			APIVersion: k.apiVersion(),
			Skip:       fmt.Sprintf("cannot list %s: %v; grant list on it to check the containers it runs", what, unwrapStatus(err)),
		})
	}
	return err
}

// unwrapStatus returns the apiserver's message of a status error, else err.
func unwrapStatus(err error) error {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return errors.New(st.Status().Message)
	}
	return err
}
