// Package run is `unshim rollout run`: drive one RuntimeMigration from
// this machine, holding the rollout's Lease.
package run

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/rollout/driver"
)

// Options are the flags and state of `unshim rollout run`.
type Options struct {
	genericiooptions.IOStreams
	DriverFlags
	PageSize int64

	kube   *cmd.KubeFlags
	logger log.Logger
	name   string
}

// NewCommand returns `unshim rollout run`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, DriverFlags: NewDriverFlags(), PageSize: 500}
	c := &cobra.Command{
		Use:   "run NAME",
		Short: "Drive a rollout from this machine: waves, gates, failure budget, until it ends",
		Long: `Drives the RuntimeMigration NAME wave by wave, holding the Lease
kube-system/` + driver.LeaseName + ` (one driver per cluster: a second run, or the
controller, is refused while this one holds it; a driver on this machine that
was killed is taken over at once, one elsewhere once its Lease expires).

On its first run it plans the waves and writes them into the status; after
that the status is the plan. Each wave: wait while spec.paused is set,
outside spec.windows, or when it would switch the last Docker nodes that
pinned workloads need (unless spec.allowLastDockerNodes); cordon and taint
` + driver.TaintKey + `:NoSchedule every node of the wave; switch them concurrently
(unshim migrate node's switch, with its rollback and resume); uncordon them.
Over ssh or nsenter, once a wave's switches (not the canary's) wait on their
kubelets, the next wave's switches run ahead up to their first change (checks, backups, image
archive) and wait, their nodes still Pending and serving; a wave that does not
start holds them back, and they undo what they did. A drain a PDB still blocks at spec.drainTimeout leaves the node Blocked, with
the pods and PDB named; the rollout goes on. After the wave: a failed canary,
more failures than spec.failureBudget, a node elsewhere gone NotReady, a
DaemonSet not Ready or a failing gate pauses the rollout with the reason
(unshim rollout status says it) until ` + "`unshim rollout resume`" + `; then the soak
time and the gates. A driver started after one was killed first settles the
nodes that were switching, from their annotations and journals, then goes on.

Prints one line per event (-v 1 adds each switch's own lines). Waits while the
rollout is paused; returns when it ends (exit 0 whether it Succeeded, Failed or
was Aborted: rollout status says which). Ctrl-C interrupts the switches under
way, which roll back: their nodes go back to Pending for the next driver (to
stop starting nodes but let those under way finish, pause the rollout instead). The nodes are reached as spec.transport says (pod: an agent pod on
each node, --agent-image; ssh: the keys in spec.transport.ssh's Secrets), or
with --via nsenter and --target-pid for nodes this machine sees (the lab).`,
		Example: `  unshim rollout create -f rollout.yaml
  unshim rollout run to-containerd --agent-image registry.example/unshim:v1
  unshim rollout run to-containerd --via nsenter --target-pid lab-node-1=4242 --target-pid lab-node-2=4343`,
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
	o.AddFlags(f, "a driver")
	f.Int64Var(&o.PageSize, "chunk-size", o.PageSize, "objects per LIST page")
	return c
}

// Complete fills the options from the arguments.
func (o *Options) Complete(args []string) error {
	o.name = args[0]
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if err := o.DriverFlags.Validate(); err != nil {
		return err
	}
	if o.PageSize < 0 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--chunk-size %d: want 0 or more", o.PageSize)}
	}
	return nil
}

// Run takes the Lease and drives the rollout.
func (o *Options) Run(ctx context.Context) error {
	return o.Hold(ctx, o.kube, o.name, o.Out, o.logger, o.PageSize, func(d *driver.Driver) func(context.Context) error { return d.Run })
}
