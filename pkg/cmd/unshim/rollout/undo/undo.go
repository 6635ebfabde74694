// Package undo is `unshim rollout undo`: switch the nodes a rollout
// switched back to Docker, holding the rollout's Lease.
package undo

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/run"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/rollout/driver"
)

// Options are the flags and state of `unshim rollout undo`.
type Options struct {
	genericiooptions.IOStreams
	run.DriverFlags

	kube   *cmd.KubeFlags
	logger log.Logger
	name   string
}

// NewCommand returns `unshim rollout undo`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, DriverFlags: run.NewDriverFlags()}
	c := &cobra.Command{
		Use:   "undo NAME",
		Short: "Switch the nodes a rollout switched back to Docker, a wave at a time, last wave first",
		Long: `Switches back the nodes the RuntimeMigration NAME switched (state Done), a
wave at a time, the rollout's own waves, last wave first (every maxUnavailable
holds going back too): a wave's nodes are all cordoned and tainted
` + driver.TaintKey + ` first, then each is switched back by the switch's own
on-demand rollback from the journal on the node (as unshim node rollback does:
drained first, PDBs respected, every change undone in reverse), and uncordoned
once its kubelet reports Docker and Ready. Each ends Undone in the status, with
Events on it and on the rollout; the rollout's Undone condition says how it
went. A wave with a node that cannot be switched back stops the undo once its
other nodes end; that node stays cordoned, with the cause.

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
	o.AddFlags(c.Flags(), "an undo")
	return c
}

// Complete fills the options from the arguments.
func (o *Options) Complete(args []string) error {
	o.name = args[0]
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error { return o.DriverFlags.Validate() }

// Run takes the Lease and switches the nodes back.
func (o *Options) Run(ctx context.Context) error {
	return o.Hold(ctx, o.kube, o.name, o.Out, o.logger, 0, func(d *driver.Driver) func(context.Context) error { return d.Undo })
}
