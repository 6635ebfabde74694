package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodelock"
	"github.com/unshim/unshim/pkg/nodeswitch"
	"github.com/unshim/unshim/pkg/transport"
)

// Switcher switches one node; the driver calls it for every node of a wave,
// concurrently. It is the node switch of pkg/nodeswitch, reached one way or
// another: the driver never runs node steps itself.
type Switcher interface {
	Switch(ctx context.Context, node string, s phases.Settings) error
}

// Hooks reach into one switch (nodeswitch.Options.Hold and OnState).
type Hooks struct {
	// Hold is waited on before the switch's first change.
	Hold func(ctx context.Context) error
	// OnState is told each phase state the switch records.
	OnState func(phase, state string)
}

// HookedSwitcher is a Switcher that takes Hooks: one that runs the switch
// in this process (Direct). Only through one does the driver run a wave's
// switches ahead, up to their first change, during the wave before.
type HookedSwitcher interface {
	Switcher
	SwitchWith(ctx context.Context, node string, s phases.Settings, h Hooks) error
}

var _ HookedSwitcher = (*Direct)(nil)

// Connect reaches a node's machine for the switch.
type Connect func(ctx context.Context, node string) (transport.Transport, error)

// Direct runs each switch in this process (nodeswitch.Run), reaching the
// node through Connect: over SSH, or nsenter into a machine this host sees.
type Direct struct {
	Connect Connect
	// Client is the switches' client when RESTConfig is nil.
	Client kubernetes.Interface
	// RESTConfig reaches the cluster for exec; each switch also builds its
	// own client from it, with its own rate limit (client-go's QPS and
	// burst), as a switch through an agent pod has in its own process: one
	// client shared by a wave of switches makes them queue on its limiter,
	// and a wave take as many times longer as it has nodes.
	RESTConfig *rest.Config
	Logger     log.Logger
	// LockTTL is the node lock's TTL (nodeswitch's default when 0).
	LockTTL time.Duration
	// LockWait is how long a node lock held by another run is waited for
	// (a switch of a driver that died holds it until it expires). Default 3m.
	LockWait time.Duration
}

// Switch runs nodeswitch.Run (which resumes an unfinished switch from the
// node's journal).
func (d *Direct) Switch(ctx context.Context, node string, s phases.Settings) error {
	return d.SwitchWith(ctx, node, s, Hooks{})
}

// SwitchWith is Switch with hooks into the switch.
func (d *Direct) SwitchWith(ctx context.Context, node string, s phases.Settings, h Hooks) error {
	tr, err := d.Connect(ctx, node)
	if err != nil {
		return fmt.Errorf("reach node %s: %w", node, err)
	}
	if c, ok := tr.(io.Closer); ok {
		defer c.Close()
	}
	wait := d.LockWait
	if wait == 0 {
		wait = 3 * time.Minute
	}
	logger := d.Logger
	if logger == nil {
		logger = log.NoopLogger()
	}
	client := d.Client
	if d.RESTConfig != nil {
		if client, err = kubernetes.NewForConfig(d.RESTConfig); err != nil {
			return fmt.Errorf("client for the switch of %s: %w", node, err)
		}
	}
	deadline := time.Now().Add(wait)
	for {
		err = nodeswitch.Run(ctx, nodeswitch.Options{Node: node, Client: client, RESTConfig: d.RESTConfig, Transport: tr,
			Settings: s, Logger: nodeLogger{node: node, l: logger}, LockTTL: d.LockTTL, Hold: h.Hold, OnState: h.OnState}, "")
		var held *nodelock.HeldError
		if !errors.As(err, &held) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Second):
		}
	}
}

// ViaPod runs each switch from an agent pod on the node
// (nodeswitch.RunViaPod), which hands it to a systemd unit there.
type ViaPod struct {
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	Image      string
	Namespace  string
	Out        io.Writer
}

// Switch runs the switch through the agent pod; a failed switch is
// reported as the *ResultError its result annotation says.
func (p *ViaPod) Switch(ctx context.Context, node string, s phases.Settings) error {
	err := nodeswitch.RunViaPod(ctx, nodeswitch.PodOptions{
		Options: nodeswitch.Options{Node: node, Client: p.Client, RESTConfig: p.RESTConfig, Settings: s},
		Image:   p.Image, Namespace: p.Namespace, Out: p.Out,
	})
	if err == nil {
		return nil
	}
	n, gerr := p.Client.CoreV1().Nodes().Get(context.WithoutCancel(ctx), node, metav1.GetOptions{})
	if gerr == nil {
		if r := n.Annotations[nodeswitch.ResultAnnotation]; r != "" && r != "succeeded" {
			return &ResultError{Node: node, Result: r}
		}
	}
	return err
}

// nodeLogger prefixes a switch's lines with its node (a wave's switches
// run at once) and shows its detail one verbosity level down: by default
// the driver's own lines, one per node event, are the progress; -v 1 adds
// the switch's.
type nodeLogger struct {
	node string
	l    log.Logger
}

func (n nodeLogger) Warnf(format string, args ...any) {
	n.l.Warnf("%s: %s", n.node, fmt.Sprintf(format, args...))
}

func (n nodeLogger) Errorf(format string, args ...any) {
	n.l.Errorf("%s: %s", n.node, fmt.Sprintf(format, args...))
}

func (n nodeLogger) V(level int) log.InfoLogger {
	return nodeInfo{node: n.node, l: n.l.V(level + 1)}
}

type nodeInfo struct {
	node string
	l    log.InfoLogger
}

func (n nodeInfo) Infof(format string, args ...any) {
	n.l.Infof("%s: %s", n.node, fmt.Sprintf(format, args...))
}

func (n nodeInfo) Enabled() bool { return n.l.Enabled() }

// Rollbacker switches a node back to Docker from its switch's journal
// (`unshim rollout undo`).
type Rollbacker interface {
	Rollback(ctx context.Context, node string, s phases.Settings) error
}

var (
	_ Rollbacker = (*Direct)(nil)
	_ Rollbacker = (*ViaPod)(nil)
)

// Rollback runs the on-demand rollback through an agent pod on the node
// (nodeswitch.RollbackViaPod).
func (p *ViaPod) Rollback(ctx context.Context, node string, s phases.Settings) error {
	err := nodeswitch.RollbackViaPod(ctx, nodeswitch.PodOptions{
		Options: nodeswitch.Options{Node: node, Client: p.Client, RESTConfig: p.RESTConfig, Settings: s},
		Image:   p.Image, Namespace: p.Namespace, Out: p.Out,
	})
	if err != nil {
		return fmt.Errorf("roll %s back through an agent pod: %w", node, err)
	}
	return nil
}

// Rollback runs nodeswitch.Rollback, the on-demand rollback of `unshim node
// rollback`, on the node reached through Connect.
func (d *Direct) Rollback(ctx context.Context, node string, s phases.Settings) error {
	tr, err := d.Connect(ctx, node)
	if err != nil {
		return fmt.Errorf("reach node %s: %w", node, err)
	}
	if c, ok := tr.(io.Closer); ok {
		defer c.Close()
	}
	logger := d.Logger
	if logger == nil {
		logger = log.NoopLogger()
	}
	return nodeswitch.Rollback(ctx, nodeswitch.Options{Node: node, Client: d.Client, RESTConfig: d.RESTConfig, Transport: tr,
		Settings: s, Logger: nodeLogger{node: node, l: logger}, LockTTL: d.LockTTL})
}
