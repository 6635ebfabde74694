// Package rollout is the `unshim rollout` command group: the preview of a
// cluster rollout (plan), its RuntimeMigration object (create, status) and
// the operator's controls (pause, resume, abort).
package rollout

import (
	"context"
	"fmt"
	"os"
	"os/user"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/controller"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/plan"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/report"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/run"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/specfile"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/status"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/undo"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// NewCommand returns `unshim rollout`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Roll a set of nodes off Docker in waves: plan, create, run, status, report, pause, resume, abort, undo",
		Long: `A cluster rollout is a RuntimeMigration object (unshim.io/v1alpha1, cluster
scoped; the CRD is deploy/crd/unshim.io_runtimemigrations.yaml): its spec says
which nodes, to what runtime, how many at once overall, per zone and per pool,
the canary, the failure budget, windows, gates and timeouts; its status is the
waves and each node's state, written by the rollout driver.

  unshim rollout plan -f rollout.yaml    the preview: waves, ETA, PDBs, Docker dependencies, risks
  unshim rollout create -f rollout.yaml  create the RuntimeMigration (or kubectl apply -f)
  unshim rollout status NAME [-w]        where it is, node by node
  unshim rollout report NAME [-o html]   the report: timeline, failures, before and after
  unshim rollout run NAME                drive it from here, holding the rollout's Lease
  unshim rollout controller              drive rollouts from inside the cluster (deploy/controller.yaml)
  unshim rollout pause|resume|abort NAME
  unshim rollout undo NAME               switch the nodes it switched back to Docker, last wave first

Pause, resume and abort change only the spec (the operator role,
deploy/rbac/unshim-rollout.yaml, is enough) and record an Event on the object.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(
		plan.NewCommand(logger, streams, kube),
		newCreateCommand(streams, kube),
		status.NewCommand(streams, kube),
		report.NewCommand(streams, kube),
		run.NewCommand(logger, streams, kube),
		controller.NewCommand(logger, streams, kube),
		undo.NewCommand(logger, streams, kube),
		newChangeCommand(streams, kube, store.Pause, "Stop starting nodes; nodes under way finish",
			"Sets spec.paused: the driver starts no more nodes and sets phase Paused once\nthe nodes under way have finished."),
		newChangeCommand(streams, kube, store.Resume, "Let a paused rollout go on",
			"Clears spec.paused. A rollout the driver paused itself (a gate, the failure\nbudget) goes on from where it stopped."),
		newChangeCommand(streams, kube, store.Abort, "End a rollout for good",
			"Sets spec.abort: the driver starts no more nodes, lets the nodes under way\nfinish or roll back, and sets phase Aborted. Nodes already switched stay switched."),
	)
	return c
}

// newStore builds a Store from the connection flags; the actor in Events
// is the local user and host.
func newStore(kube *cmd.KubeFlags) (*store.Store, error) {
	dyn, err := cmd.Dynamic(kube)
	if err != nil {
		return nil, err
	}
	kc, err := cmd.Clientset(kube)
	if err != nil {
		return nil, err
	}
	return &store.Store{Dynamic: dyn, Kube: kc, Actor: actor()}, nil
}

func actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		name += "@" + h
	}
	return name
}

// changeOptions are the state of pause, resume and abort.
type changeOptions struct {
	genericiooptions.IOStreams
	change store.Change
	kube   *cmd.KubeFlags
	name   string
	store  *store.Store
}

func newChangeCommand(streams genericiooptions.IOStreams, kube *cmd.KubeFlags, ch store.Change, short, long string) *cobra.Command {
	o := &changeOptions{IOStreams: streams, change: ch, kube: kube}
	return &cobra.Command{
		Use:     ch.Verb + " NAME",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  unshim rollout %s to-containerd", ch.Verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
}

// Complete fills the options from the arguments and the kubeconfig.
func (o *changeOptions) Complete(args []string) error {
	o.name = args[0]
	var err error
	o.store, err = newStore(o.kube)
	return err
}

// Run patches the spec and records the Event.
func (o *changeOptions) Run(ctx context.Context) error {
	m, err := o.store.Apply(ctx, o.name, o.change)
	if m != nil {
		fmt.Fprintf(o.Out, "runtimemigration.%s/%s %s\n", v1alpha1.Group, o.name, pastTense(o.change.Verb))
	}
	return err
}

func pastTense(verb string) string {
	switch verb {
	case "pause":
		return "paused"
	case "resume":
		return "resumed"
	case "abort":
		return "aborted"
	}
	return verb + "ed"
}

// createOptions are the flags and state of `unshim rollout create`.
type createOptions struct {
	genericiooptions.IOStreams
	Filename string

	kube  *cmd.KubeFlags
	obj   *v1alpha1.RuntimeMigration
	store *store.Store
}

func newCreateCommand(streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &createOptions{IOStreams: streams, kube: kube}
	c := &cobra.Command{
		Use:   "create -f FILE",
		Short: "Create a RuntimeMigration from a file",
		Long: `Creates the RuntimeMigration in FILE (YAML or JSON) after checking it as the
driver will: unknown fields, enums, limits, gates and windows. The same file
can be previewed first with ` + "`unshim rollout plan -f FILE`" + `, or applied with
kubectl apply -f FILE. Nothing happens to the nodes until a driver runs it.`,
		Example: `  unshim rollout plan -f rollout.yaml
  unshim rollout create -f rollout.yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	c.Flags().StringVarP(&o.Filename, "filename", "f", "", "the RuntimeMigration to create (- for stdin)")
	return c
}

// Complete reads and checks the file, then builds the client.
func (o *createOptions) Complete() error {
	m, err := specfile.ReadFile(o.Filename, o.In)
	if err != nil {
		return err
	}
	o.obj = m
	o.store, err = newStore(o.kube)
	return err
}

// Run creates the object.
func (o *createOptions) Run(ctx context.Context) error {
	m, err := o.store.Create(ctx, o.obj)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "runtimemigration.%s/%s created\n", v1alpha1.Group, m.Name)
	return nil
}
