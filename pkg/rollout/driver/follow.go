package driver

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	v1alpha1 "github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/nodeswitch"
)

// waveWatch mirrors the switch phase annotation of a wave's nodes into
// their status entries (written with the next status write, at most every
// few seconds) and prints each change. It is one WATCH of every node, from
// the revision of the LIST of every node the wave's cordon read, instead of
// a LIST and a WATCH per node, which made a wave of 250 nodes start with 500
// requests. Node objects change rarely outside a switch (a kubelet with a
// Lease reports its status every 5 minutes), so the watch carries little
// besides the wave's own changes. It keeps each node of the wave as the
// watch last saw it, for the update that releases the node (a GET fewer).
// Should the watch end for good (its revision compacted away), the phases
// are no longer mirrored in this wave: no outcome depends on them.
type waveWatch struct {
	mu   sync.Mutex
	seen map[string]*corev1.Node // the wave's nodes; nil until seen
	// changed is closed, and replaced, at every change of seen.
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// watchWave starts the wave's watch from rv, the revision of a LIST of
// every node made before the wave's nodes were cordoned.
func (d *Driver) watchWave(ctx context.Context, label string, names []string, rv string) *waveWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &waveWatch{seen: make(map[string]*corev1.Node, len(names)), changed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	for _, n := range names {
		w.seen[n] = nil
	}
	nodes := d.o.Client.CoreV1().Nodes()
	go func() {
		defer close(w.done)
		rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, &cache.ListWatch{
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return nodes.Watch(ctx, o)
			}})
		if err != nil {
			d.warn(fmt.Errorf("%s: watch its nodes' phases: %w", label, err))
			return
		}
		defer rw.Stop()
		last := map[string]string{}
		for {
			var ev watch.Event
			select {
			case <-ctx.Done():
				return
			case e, ok := <-rw.ResultChan():
				if !ok {
					return
				}
				ev = e
			}
			if ev.Type == watch.Error {
				if ctx.Err() == nil {
					d.warn(fmt.Errorf("%s: the watch of its nodes' phases ended: %w", label, apierrors.FromObject(ev.Object)))
				}
				return
			}
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			w.mu.Lock()
			_, in := w.seen[n.Name]
			if in {
				w.seen[n.Name] = n
				close(w.changed)
				w.changed = make(chan struct{})
			}
			w.mu.Unlock()
			p := n.Annotations[nodeswitch.PhaseAnnotation]
			if !in || p == "" || p == last[n.Name] {
				continue
			}
			last[n.Name] = p
			d.mu.Lock()
			ns := d.node(n.Name)
			if ns.State == v1alpha1.NodeSwitching {
				ns.Phase = p
				d.dirty = true
			}
			d.mu.Unlock()
			d.printf("%s: %s: %s", label, n.Name, p)
		}
	}()
	return w
}

// node is the wave's node as the watch last saw it (nil if never).
func (w *waveWatch) node(name string) *corev1.Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[name]
}

// ended is the node as the watch last saw it once that carries the result
// annotation, the switch's last write, or as it is after within. The
// update that releases the node starts from it: a copy older than the
// switch's last write fails that update with a conflict, and costs a GET
// and a second update (a quarter of a wave's nodes in the benchmark when
// the copy was taken as the switch returned, milliseconds before the watch
// delivered its last write).
func (w *waveWatch) ended(name string, within time.Duration) *corev1.Node {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		w.mu.Lock()
		n, changed := w.seen[name], w.changed
		w.mu.Unlock()
		if n != nil && n.Annotations[nodeswitch.ResultAnnotation] != "" {
			return n
		}
		select {
		case <-changed:
		case <-t.C:
			return n
		case <-w.done:
			return w.node(name)
		}
	}
}

func (w *waveWatch) stop() {
	w.cancel()
	<-w.done
}
