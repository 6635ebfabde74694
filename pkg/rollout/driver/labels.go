package driver

import (
	"context"
	"sync"

	"github.com/unshim/unshim/pkg/runtimelabel"
)

// labelSync is the runtime label's sync over every node (runtimelabel.Sync)
// that a rollout makes once, when its driver plans it. On a cluster
// labelled for the first time that is a PATCH per node, seconds at 1,000
// nodes: it runs once the first wave's switches wait on their kubelets
// (with the next wave's start), not before the first wave, and every node's
// release (which sets that node's label) waits until it is done, so that
// no label it worked out from its LIST lands after one set later.
type labelSync struct {
	once sync.Once
	done chan struct{}
}

// syncLabels starts the sync if it has not started (a driver that took the
// rollout over has none); with wait, it returns once the sync is done.
func (d *Driver) syncLabels(ctx context.Context, wait bool) {
	l := d.labels
	if l == nil {
		return
	}
	l.once.Do(func() {
		go func() {
			defer close(l.done)
			if _, err := runtimelabel.Sync(ctx, d.o.Client, "", d.o.PageSize, false); err != nil && ctx.Err() == nil {
				d.warn(err)
			}
		}()
	})
	if wait {
		<-l.done
	}
}
