// Package run is `unshim rollout run`: drive one RuntimeMigration from
// this machine, holding the rollout's Lease.
package run

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
	"github.com/unshim/unshim/pkg/rollout/driver"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// Options are the flags and state of `unshim rollout run`.
type Options struct {
	genericiooptions.IOStreams
	Via            string
	TargetPIDs     map[string]int
	AgentImage     string
	AgentNamespace string
	LeaseDuration  time.Duration
	PageSize       int64

	kube   *cmd.KubeFlags
	logger log.Logger
	name   string
}

// NewCommand returns `unshim rollout run`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, AgentNamespace: "kube-system", LeaseDuration: 15 * time.Second, PageSize: 500}
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
A drain a PDB still blocks at spec.drainTimeout leaves the node Blocked, with
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
	f.StringVar(&o.Via, "via", "", "how nodes are reached, over spec.transport.via: pod, ssh or nsenter (with --target-pid)")
	f.StringToIntVar(&o.TargetPIDs, "target-pid", nil, "with --via nsenter: NODE=PID of each node's init process (repeatable)")
	f.StringVar(&o.AgentImage, "agent-image", "", "with via pod: image holding the unshim binary at /unshim, present on the nodes or pullable")
	f.StringVar(&o.AgentNamespace, "agent-namespace", o.AgentNamespace, "with via pod: namespace of the agent pods and of ServiceAccount unshim-agent")
	f.DurationVar(&o.LeaseDuration, "lease-duration", o.LeaseDuration, "how long the rollout's Lease outlives a driver that stops renewing it")
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
	bad := func(format string, a ...any) error {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf(format, a...)}
	}
	switch o.Via {
	case "", v1alpha1.TransportPod, v1alpha1.TransportSSH, driver.TransportNsenter:
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
	if o.PageSize < 0 {
		return bad("--chunk-size %d: want 0 or more", o.PageSize)
	}
	return nil
}

// Run takes the Lease and drives the rollout.
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
	d, err := driver.New(driver.Options{Name: o.name, Store: st, Client: kc, Switcher: sw, Holder: id, Out: o.Out, PageSize: o.PageSize})
	if err != nil {
		return err
	}
	err = driver.Hold(ctx, kc, id, driver.LeaseTiming{Duration: o.LeaseDuration}, d.Run)
	var held *driver.HeldError
	if errors.As(err, &held) {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	return err
}
