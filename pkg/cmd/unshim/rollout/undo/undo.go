// Package undo is `unshim rollout undo`: switch the nodes a rollout
// switched back to Docker, holding the rollout's Lease.
package undo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/podagent"
	"github.com/unshim/unshim/pkg/rollout/driver"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// Options are the flags and state of `unshim rollout undo`.
type Options struct {
	genericiooptions.IOStreams
	Via           string
	TargetPIDs    map[string]int
	LeaseDuration time.Duration
	// AgentImage and AgentNamespace: with the pod transport.
	AgentImage, AgentNamespace string

	kube   *cmd.KubeFlags
	logger log.Logger
	name   string
}

// NewCommand returns `unshim rollout undo`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, LeaseDuration: 15 * time.Second, AgentNamespace: podagent.DefaultNamespace}
	c := &cobra.Command{
		Use:   "undo NAME",
		Short: "Switch the nodes a rollout switched back to Docker, last wave first",
		Long: `Switches back the nodes the RuntimeMigration NAME switched (state Done), last
wave first, one at a time: each is cordoned and tainted ` + driver.TaintKey + `,
switched back by the switch's own on-demand rollback from the journal on the
node (as unshim node rollback does: drained first, PDBs respected, every
change undone in reverse), and uncordoned once its kubelet reports Docker and
Ready. Each ends Undone in the status, with Events on it and on the rollout;
the rollout's Undone condition says how it went. The first node that cannot be
switched back stops the undo and stays cordoned, with the cause.

Only a rollout that ended, or that was aborted, is undone. It holds the
rollout's Lease (kube-system/` + driver.LeaseName + `), so it is refused while a driver
(rollout run or the controller) holds it. It changes nodes, so it needs the
driver role (unshim-rollout-driver), not the operator's. The nodes are reached
as spec.transport says: through an agent pod on each node (--agent-image; the
agent runs unshim node rollback there), over SSH (spec.transport.ssh), or, with
--via nsenter and --target-pid, on this machine (the lab).`,
		Example: `  unshim rollout abort to-containerd
  unshim rollout undo to-containerd
  unshim rollout undo to-containerd --via nsenter --target-pid lab-node-1=4242`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&o.Via, "via", "", "how nodes are reached, over spec.transport.via: pod (with --agent-image), ssh or nsenter (with --target-pid)")
	f.StringVar(&o.AgentImage, "agent-image", "", "with via pod: image holding the unshim binary at /unshim, present on the nodes or pullable")
	f.StringVar(&o.AgentNamespace, "agent-namespace", o.AgentNamespace, "with via pod: namespace of the agent pods and of ServiceAccount unshim-agent")
	f.StringToIntVar(&o.TargetPIDs, "target-pid", nil, "with --via nsenter: NODE=PID of each node's init process (repeatable)")
	f.DurationVar(&o.LeaseDuration, "lease-duration", o.LeaseDuration, "how long the rollout's Lease outlives an undo that stops renewing it")
	return c
}

// Complete fills the options from the arguments.
func (o *Options) Complete(args []string) error {
	o.name = args[0]
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error {
	bad := func(format string, a ...any) error {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf(format, a...)}
	}
	switch o.Via {
	case "", v1alpha1.TransportSSH, driver.TransportNsenter:
	case v1alpha1.TransportPod:
		if o.AgentImage == "" {
			return bad("--via pod needs --agent-image")
		}
	default:
		return bad("--via %q: want pod, ssh or nsenter", o.Via)
	}
	if o.Via == driver.TransportNsenter && len(o.TargetPIDs) == 0 {
		return bad("--via nsenter needs --target-pid NODE=PID for each node")
	}
	if o.Via != driver.TransportNsenter && len(o.TargetPIDs) > 0 {
		return bad("--target-pid goes with --via nsenter")
	}
	for n, pid := range o.TargetPIDs {
		if pid <= 0 {
			return bad("--target-pid %s=%d: want a PID", n, pid)
		}
	}
	if o.LeaseDuration < 3*time.Second {
		return bad("--lease-duration %s: want at least 3s", o.LeaseDuration)
	}
	return nil
}

// Run takes the Lease and switches the nodes back.
func (o *Options) Run(ctx context.Context) error {
	rc, err := cmd.RESTConfig(o.kube)
	if err != nil {
		return err
	}
	kc, err := cmd.Clientset(o.kube)
	if err != nil {
		return err
	}
	dyn, err := cmd.Dynamic(o.kube)
	if err != nil {
		return err
	}
	id := driver.Identity()
	st := &store.Store{Dynamic: dyn, Kube: kc, Actor: id}
	m, err := st.Get(ctx, o.name)
	if err != nil {
		return err
	}
	if o.Via == "" && m.Spec.Transport.Via != v1alpha1.TransportSSH && o.AgentImage == "" {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: errors.New("spec.transport.via pod needs --agent-image (or pass --via)")}
	}
	sw, cleanup, err := driver.NewSwitcher(ctx, &m.Spec, driver.SwitcherOptions{Client: kc, RESTConfig: rc, Via: o.Via, PIDs: o.TargetPIDs,
		AgentImage: o.AgentImage, AgentNamespace: o.AgentNamespace, Logger: o.logger, Out: o.Out})
	if err != nil {
		return err
	}
	defer cleanup()
	d, err := driver.New(driver.Options{Name: o.name, Store: st, Client: kc, Switcher: sw, Holder: id, Out: o.Out})
	if err != nil {
		return err
	}
	err = driver.Hold(ctx, kc, id, driver.LeaseTiming{Duration: o.LeaseDuration}, d.Undo)
	var held *driver.HeldError
	var nu *driver.NotUndoableError
	if errors.As(err, &held) || errors.As(err, &nu) || errors.Is(err, driver.ErrNoRollback) {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	return err
}
