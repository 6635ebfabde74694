// Package controller is `unshim rollout controller`: the rollout driver as
// an in-cluster Deployment (deploy/controller.yaml), leader-elected.
package controller

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/rollout/driver"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// Options are the flags of `unshim rollout controller`.
type Options struct {
	genericiooptions.IOStreams
	ID             string
	AgentImage     string
	AgentNamespace string
	LeaseDuration  time.Duration
	PageSize       int64

	kube   *cmd.KubeFlags
	logger log.Logger
}

// NewCommand returns `unshim rollout controller`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, AgentNamespace: "kube-system", LeaseDuration: 15 * time.Second, PageSize: 500}
	c := &cobra.Command{
		Use:   "controller",
		Short: "Drive rollouts from inside the cluster (leader-elected replicas)",
		Long: `Runs the rollout driver of ` + "`unshim rollout run`" + ` as a controller: its replicas
(deploy/controller.yaml: a Deployment of two, ServiceAccount bound to the
unshim-rollout-driver role) elect a leader through the Lease
kube-system/` + driver.LeaseName + `, which also keeps ` + "`rollout run`" + ` out. The leader drives
the RuntimeMigrations that have not ended, oldest first, one at a time,
watching for new ones. When the leader dies (its node drained, say), another
replica takes the Lease, settles the nodes that were switching and goes on.
Nodes are reached as each rollout's spec.transport says: pod (an agent pod
from --agent-image) or ssh.`,
		Example: `  unshim rollout controller --agent-image registry.example/unshim:v1`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&o.ID, "id", "", "this replica's name in the Lease (default $POD_NAME, else unshim-rollout@HOST/PID)")
	f.StringVar(&o.AgentImage, "agent-image", "", "image holding the unshim binary at /unshim, for rollouts with spec.transport.via pod")
	f.StringVar(&o.AgentNamespace, "agent-namespace", o.AgentNamespace, "namespace of the agent pods and of ServiceAccount unshim-agent")
	f.DurationVar(&o.LeaseDuration, "lease-duration", o.LeaseDuration, "how long the Lease outlives a leader that stops renewing it")
	f.Int64Var(&o.PageSize, "chunk-size", o.PageSize, "objects per LIST page")
	return c
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if o.LeaseDuration < 3*time.Second {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--lease-duration %s: want at least 3s", o.LeaseDuration)}
	}
	if o.PageSize < 0 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--chunk-size %d: want 0 or more", o.PageSize)}
	}
	return nil
}

// Run elects and drives until the context ends.
func (o *Options) Run(ctx context.Context) error {
	cs, err := cmd.NewClientsWithLimit(o.kube, driver.ClientQPS, driver.ClientBurst)
	if err != nil {
		return err
	}
	rc, kc, dyn := cs.REST, cs.Kube, cs.Dynamic
	id := o.ID
	if id == "" {
		id = os.Getenv("POD_NAME")
	}
	if id == "" {
		id = driver.Identity()
	}
	return driver.RunController(ctx, driver.ControllerOptions{
		Driver: driver.Options{Store: &store.Store{Dynamic: dyn, Kube: kc, Actor: id}, Client: kc, Holder: id, Out: o.Out, PageSize: o.PageSize},
		Switcher: func(ctx context.Context, m *v1alpha1.RuntimeMigration) (driver.Switcher, func(), error) {
			sw, cleanup, err := driver.NewSwitcher(ctx, &m.Spec, driver.SwitcherOptions{Client: kc, RESTConfig: rc, AgentImage: o.AgentImage,
				AgentNamespace: o.AgentNamespace, Logger: o.logger, Out: o.Out})
			if err != nil {
				return nil, nil, fmt.Errorf("runtimemigration %s: %w", m.Name, err)
			}
			return sw, cleanup, nil
		},
		Lease: driver.LeaseTiming{Duration: o.LeaseDuration},
		Out:   o.Out,
	})
}
