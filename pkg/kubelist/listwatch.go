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
//
// It opts out of the streaming watch-list (client-go tries it first since
// 1.35): for a handful of objects it saves nothing, and the apiservers of
// clusters that still run Docker (1.31 and older) refuse it, which costs a
// failed request every time an informer starts.
func FieldListWatch[L runtime.Object](sel string, list func(context.Context, metav1.ListOptions) (L, error), watchf WatchFunc) cache.ListerWatcher {
	return noWatchList{&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = sel
			return list(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = sel
			return watchf(ctx, opts)
		},
	}}
}

// noWatchList is a ListWatch the reflector does not try the streaming
// watch-list with.
type noWatchList struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported tells client-go's reflector to LIST.
func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }
