// Package live is the check.Source of a running cluster: it reads Pods,
// workload controllers, ConfigMaps and the custom resources that run
// containers with paged LISTs (never one GET per object) and resolves each
// Pod's top-level owner from the ReplicaSets and Jobs it listed first.
package live

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/owner"
)

// Source reads the objects to check from a cluster.
type Source struct {
	Client kubernetes.Interface
	// Dynamic, when set, reads custom resources too: the CRDs served are
	// listed, and the kinds whose objects may hold containers (Tekton,
	// Argo Workflows, any whose schema has container-shaped entries or
	// leaves its spec open) are walked as -f walks kinds it does not know.
	// Objects with no container, and kinds that cannot be listed, are
	// handed over with Skip set.
	Dynamic dynamic.Interface
	// Namespace limits the check to one namespace; "" means all.
	Namespace string
	// PageSize is the LIST page size; 0 means kubelist.DefaultPageSize.
	PageSize int64
	// SkipConfigMaps leaves ConfigMaps (log-collector configuration) unread.
	SkipConfigMaps bool
}

var _ check.Source = (*Source)(nil)

// list is one resource to read and how.
type list struct {
	what string
	page kubelist.PageFunc
}

// Visit lists ReplicaSets and Jobs (indexing their owners), the workload
// controllers, the custom resources (with Dynamic set), then Pods and
// ConfigMaps, and hands each to fn.
func (s *Source) Visit(ctx context.Context, fn func(*check.Target) error) error {
	ix := owner.NewIndex()
	ns := s.Namespace
	apps, batch, core := s.Client.AppsV1(), s.Client.BatchV1(), s.Client.CoreV1()
	lists := []list{
		{"replicasets", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return apps.ReplicaSets(ns).List(ctx, o)
		}},
		{"jobs", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return batch.Jobs(ns).List(ctx, o)
		}},
		{"deployments", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return apps.Deployments(ns).List(ctx, o)
		}},
		{"daemonsets", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return apps.DaemonSets(ns).List(ctx, o)
		}},
		{"statefulsets", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return apps.StatefulSets(ns).List(ctx, o)
		}},
		{"replicationcontrollers", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.ReplicationControllers(ns).List(ctx, o)
		}},
		{"cronjobs", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return batch.CronJobs(ns).List(ctx, o)
		}},
		{"pods", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.Pods(ns).List(ctx, o)
		}},
	}
	if !s.SkipConfigMaps {
		lists = append(lists, list{"configmaps", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.ConfigMaps(ns).List(ctx, o)
		}})
	}
	for _, l := range lists {
		if l.what == "pods" && s.Dynamic != nil {
			if err := s.visitCustomKinds(ctx, ix, fn); err != nil {
				return err
			}
		}
		err := kubelist.Each(ctx, l.what, s.PageSize, metav1.ListOptions{}, l.page, func(obj runtime.Object) error {
			t, ok := check.NewTarget(obj)
			if !ok {
				return nil
			}
			m, ok := obj.(metav1.Object)
			if !ok {
				return nil
			}
			refs := m.GetOwnerReferences()
			ix.Add(t.Object.Kind, t.Object.Namespace, t.Object.Name, refs)
			// A ReplicaSet owned by a Deployment repeats (an old version of) the
			// Deployment's template: the Deployment and the live Pods are checked instead.
			if t.Object.Kind == "ReplicaSet" && len(refs) > 0 {
				return nil
			}
			t.Owner = ix.Top(t.Object.Kind, t.Object.Namespace, t.Object.Name, refs)
			t.LivePod = t.Object.Kind == "Pod"
			return fn(t)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// visitCustomKinds reads every custom resource kind that may hold containers.
func (s *Source) visitCustomKinds(ctx context.Context, ix *owner.Index, fn func(*check.Target) error) error {
	kinds, skipped, err := s.customKinds(ctx)
	if err != nil {
		return err
	}
	if skipped != nil {
		return fn(skipped)
	}
	for _, k := range kinds {
		if err := s.visitCustom(ctx, k, ix, fn); err != nil {
			return err
		}
	}
	return nil
}
