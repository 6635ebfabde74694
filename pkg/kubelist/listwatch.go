package kubelist

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// WatchFunc opens a watch.
type WatchFunc func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)

// FieldListWatch is what an informer or watchtools.UntilWithSync lists and
// watches: the objects list and watchf return that match the field
// selector sel (one object by metadata.name, the pods bound to a node by
// spec.nodeName), so neither the LIST nor the WATCH carries the others.
func FieldListWatch[L runtime.Object](sel string, list func(context.Context, metav1.ListOptions) (L, error), watchf WatchFunc) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = sel
			return list(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = sel
			return watchf(ctx, opts)
		},
	}
}
