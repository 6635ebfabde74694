package live

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/kubelist"
)

// Feed watches RuntimeMigration name and the nodes (informers: one LIST,
// then WATCH, re-listing only when a watch expires) and sends each change
// on out until ctx ends. It only reads.
func Feed(ctx context.Context, dyn dynamic.Interface, kc kubernetes.Interface, name string, out chan<- Event) {
	send := func(ev Event) {
		select {
		case out <- ev:
		case <-ctx.Done():
		}
	}
	res := dyn.Resource(v1alpha1.GroupVersionResource)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	rolloutLW := kubelist.FieldListWatch(sel, res.List, res.Watch)
	onRollout := func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		m, err := v1alpha1.FromUnstructured(u)
		if err != nil {
			return
		}
		send(Event{Rollout: m})
	}
	rc := informer(rolloutLW, &unstructured.Unstructured{}, cache.ResourceEventHandlerFuncs{
		AddFunc:    onRollout,
		UpdateFunc: func(_, obj any) { onRollout(obj) },
		DeleteFunc: func(any) { send(Event{RolloutGone: true}) },
	})
	nodes := kc.CoreV1().Nodes()
	nodeLW := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return nodes.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return nodes.Watch(ctx, opts)
		},
	}
	onNode := func(obj any, gone bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if n, ok := obj.(*corev1.Node); ok {
			send(Event{Node: n, NodeGone: gone})
		}
	}
	nc := informer(nodeLW, &corev1.Node{}, cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onNode(obj, false) },
		UpdateFunc: func(_, obj any) { onNode(obj, false) },
		DeleteFunc: func(obj any) { onNode(obj, true) },
	})
	go nc.RunWithContext(ctx)
	rc.RunWithContext(ctx)
}

// informer is an informer of lw calling h, quiet about the watch its own
// stop cuts short (the default handler logs that as an error).
func informer(lw cache.ListerWatcher, obj runtime.Object, h cache.ResourceEventHandler) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if ctx.Err() == nil {
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}
	})
	_, _ = inf.AddEventHandler(h)
	return inf
}
