package driver

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

// ControllerOptions are the in-cluster driver's inputs.
type ControllerOptions struct {
	// Driver is the template of each rollout's driver (Name and Switcher
	// are filled per rollout).
	Driver Options
	// Switcher builds the Switcher of a rollout from its spec.
	Switcher func(ctx context.Context, m *v1alpha1.RuntimeMigration) (Switcher, func(), error)
	Lease    LeaseTiming
	// Idle is how long to wait for a change when no rollout is left to drive
	// (default 30s; a watch event ends the wait sooner).
	Idle time.Duration
	Out  io.Writer
}

// RunController is `unshim rollout controller`: the replicas elect a leader
// through the rollout's Lease; the leader drives the RuntimeMigrations that
// have not ended, oldest first, one at a time, with the same driver as
// `unshim rollout run`. A replica that takes over settles the nodes the
// former leader left switching, then goes on.
func RunController(ctx context.Context, o ControllerOptions) error {
	if o.Idle == 0 {
		o.Idle = 30 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	fmt.Fprintf(o.Out, "%s waiting for Lease %s/%s as %s\n", time.Now().Format("15:04:05"), LeaseNamespace, LeaseName, o.Driver.Holder)
	return Elect(ctx, o.Driver.Client, o.Driver.Holder, o.Lease, func(ctx context.Context) {
		fmt.Fprintf(o.Out, "%s leading as %s\n", time.Now().Format("15:04:05"), o.Driver.Holder)
		// A rollout its driver gave up on (a transport that cannot be set
		// up, an API error) is tried again after a while; the others go on.
		later := map[string]time.Time{}
		for ctx.Err() == nil {
			m, rv, err := next(ctx, o.Driver, later)
			if err != nil {
				fmt.Fprintf(o.Out, "%s warning: %v\n", time.Now().Format("15:04:05"), err)
				sleep(ctx, 5*time.Second)
				continue
			}
			if m == nil {
				wait(ctx, o.Driver, rv, o.Idle)
				continue
			}
			if err := drive(ctx, o, m); err != nil && ctx.Err() == nil {
				fmt.Fprintf(o.Out, "%s rollout %s: %v (trying again in %s)\n", time.Now().Format("15:04:05"), m.Name, err, o.Idle)
				later[m.Name] = time.Now().Add(o.Idle)
			}
		}
	})
}

func drive(ctx context.Context, o ControllerOptions, m *v1alpha1.RuntimeMigration) error {
	sw, cleanup, err := o.Switcher(ctx, m)
	if err != nil {
		return err
	}
	defer cleanup()
	do := o.Driver
	do.Name, do.Switcher = m.Name, sw
	d, err := New(do)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// next is the oldest RuntimeMigration that has not ended and is not to be
// tried later, or nil; rv is the list's resourceVersion to watch from.
func next(ctx context.Context, o Options, later map[string]time.Time) (*v1alpha1.RuntimeMigration, string, error) {
	list, err := o.Store.Dynamic.Resource(v1alpha1.GroupVersionResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("list runtimemigrations: %w", err)
	}
	var open []*v1alpha1.RuntimeMigration
	for i := range list.Items {
		m, err := v1alpha1.FromUnstructured(&list.Items[i])
		if err != nil {
			return nil, "", err
		}
		if !ended(m) && !time.Now().Before(later[m.Name]) {
			open = append(open, m)
		}
	}
	if len(open) == 0 {
		return nil, list.GetResourceVersion(), nil
	}
	sort.Slice(open, func(i, j int) bool {
		a, b := open[i].CreationTimestamp, open[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return open[i].Name < open[j].Name
	})
	return open[0], "", nil
}

// wait returns at the first change to any RuntimeMigration after rv, or
// after idle.
func wait(ctx context.Context, o Options, rv string, idle time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, idle)
	defer cancel()
	w, err := o.Store.Dynamic.Resource(v1alpha1.GroupVersionResource).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		<-ctx.Done()
		return
	}
	defer w.Stop()
	select {
	case <-ctx.Done():
	case <-w.ResultChan():
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
