package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/podagent"
	"github.com/unshim/unshim/pkg/rollout/driver"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// DriverFlags are the flags of a command that works a rollout's nodes from
// this machine holding the rollout's Lease (rollout run, rollout undo): how
// the nodes are reached, and the Lease.
type DriverFlags struct {
	Via            string
	TargetPIDs     map[string]int
	AgentImage     string
	AgentNamespace string
	LeaseDuration  time.Duration
}

// NewDriverFlags returns the flags' defaults.
func NewDriverFlags() DriverFlags {
	return DriverFlags{AgentNamespace: podagent.DefaultNamespace, LeaseDuration: 15 * time.Second}
}

// AddFlags adds the flags; holder names who holds the Lease ("a driver").
func (f *DriverFlags) AddFlags(fs *pflag.FlagSet, holder string) {
	fs.StringVar(&f.Via, "via", "", "how nodes are reached, over spec.transport.via: pod (with --agent-image), ssh or nsenter (with --target-pid)")
	fs.StringToIntVar(&f.TargetPIDs, "target-pid", nil, "with --via nsenter: NODE=PID of each node's init process (repeatable)")
	fs.StringVar(&f.AgentImage, "agent-image", "", "with via pod: image holding the unshim binary at /unshim, present on the nodes or pullable")
	fs.StringVar(&f.AgentNamespace, "agent-namespace", f.AgentNamespace, "with via pod: namespace of the agent pods and of ServiceAccount unshim-agent")
	fs.DurationVar(&f.LeaseDuration, "lease-duration", f.LeaseDuration, "how long the rollout's Lease outlives "+holder+" that stops renewing it")
}

// Validate checks the flags; a bad one exits 2.
func (f *DriverFlags) Validate() error {
	bad := func(format string, a ...any) error {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf(format, a...)}
	}
	switch f.Via {
	case "", v1alpha1.TransportSSH, driver.TransportNsenter:
	case v1alpha1.TransportPod:
		if f.AgentImage == "" {
			return bad("--via pod needs --agent-image")
		}
	default:
		return bad("--via %q: want pod, ssh or nsenter", f.Via)
	}
	if f.Via == driver.TransportNsenter && len(f.TargetPIDs) == 0 {
		return bad("--via nsenter needs --target-pid NODE=PID for each node")
	}
	if f.Via != driver.TransportNsenter && len(f.TargetPIDs) > 0 {
		return bad("--target-pid goes with --via nsenter")
	}
	for n, pid := range f.TargetPIDs {
		if pid <= 0 {
			return bad("--target-pid %s=%d: want a PID", n, pid)
		}
	}
	if f.LeaseDuration < 3*time.Second {
		return bad("--lease-duration %s: want at least 3s", f.LeaseDuration)
	}
	return nil
}

// Hold builds the driver of rollout name, reaching its nodes as the flags
// and spec.transport say, and runs work(d) holding the rollout's Lease. A
// Lease held by another driver, a rollout that cannot be undone and a
// transport that cannot do the work exit 2.
func (f *DriverFlags) Hold(ctx context.Context, kube *cmd.KubeFlags, name string, out io.Writer, logger log.Logger, pageSize int64,
	work func(d *driver.Driver) func(context.Context) error) error {
	cs, err := cmd.NewClientsWithLimit(kube, driver.ClientQPS, driver.ClientBurst)
	if err != nil {
		return err
	}
	id := driver.Identity()
	st := &store.Store{Dynamic: cs.Dynamic, Kube: cs.Kube, Actor: id}
	m, err := st.Get(ctx, name)
	if err != nil {
		return err
	}
	sw, cleanup, err := driver.NewSwitcher(ctx, &m.Spec, driver.SwitcherOptions{Client: cs.Kube, RESTConfig: cs.REST, Via: f.Via, PIDs: f.TargetPIDs,
		AgentImage: f.AgentImage, AgentNamespace: f.AgentNamespace, Logger: logger, Out: out})
	if errors.Is(err, driver.ErrNeedAgentImage) {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	if err != nil {
		return err
	}
	defer cleanup()
	d, err := driver.New(driver.Options{Name: name, Store: st, Client: cs.Kube, Switcher: sw, Holder: id, Out: out, PageSize: pageSize})
	if err != nil {
		return err
	}
	err = driver.Hold(ctx, cs.Kube, id, driver.LeaseTiming{Duration: f.LeaseDuration}, work(d))
	var held *driver.HeldError
	var nu *driver.NotUndoableError
	if errors.As(err, &held) || errors.As(err, &nu) || errors.Is(err, driver.ErrNoRollback) {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	return err
}
