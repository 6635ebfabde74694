// Package plan is `unshim rollout plan`: the preview of a rollout.
package plan

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout/specfile"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/report"
	"github.com/unshim/unshim/pkg/rollout/preview"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// Options are the flags and state of `unshim rollout plan`.
type Options struct {
	genericiooptions.IOStreams
	Filename string
	Output   string
	NodeTime time.Duration
	PageSize int64

	kube   *cmd.KubeFlags
	name   string
	format report.Format
	client kubernetes.Interface
	dyn    dynamic.Interface
	obj    *v1alpha1.RuntimeMigration
}

// NewCommand returns `unshim rollout plan`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, Output: string(report.Table), NodeTime: 5 * time.Minute, PageSize: 500}
	c := &cobra.Command{
		Use:   "plan (NAME | -f FILE)",
		Short: "Preview a rollout: waves, ETA, PDBs that block drains, Docker dependencies, risks",
		Long: `Shows what a rollout would do, from a RuntimeMigration in a file (-f) or one
already in the cluster (NAME), and changes nothing:

  the waves in order: canary first, then waves within every maxUnavailable
  (overall, per zone, per pool), Windows nodes in waves of their own, and
  control-plane nodes last, one at a time; nodes already on the target are
  listed as skipped;
  the ETA: waves x --node-time, plus the soak time between waves;
  PodDisruptionBudgets that allow no disruption now, with the pods they
  cover on the selected nodes (their drains will end blocked);
  the Docker dependencies (unshim check's findings) of the pods on the
  selected nodes;
  the risks: the last Docker nodes that pinned workloads need, blocking PDBs,
  nodes not Ready, and a rollout too large for one object (its status holds
  every node's entry; etcd stores 1.5 MiB in one object by default: the
  driver refuses such a rollout before any change, split it by selector).

Reads nodes, pods, PDBs and workloads with paged LISTs.`,
		Example: `  unshim rollout plan -f rollout.yaml
  unshim rollout plan to-containerd -o yaml
  unshim rollout plan -f rollout.yaml --node-time 8m`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(c.Context(), args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	c.Flags().StringVarP(&o.Filename, "filename", "f", "", "a RuntimeMigration file to preview (- for stdin)")
	c.Flags().StringVarP(&o.Output, "output", "o", o.Output, "output format: table|json|yaml")
	c.Flags().DurationVar(&o.NodeTime, "node-time", o.NodeTime, "how long one wave's switch takes, for the ETA")
	c.Flags().Int64Var(&o.PageSize, "chunk-size", o.PageSize, "objects per LIST page")
	return c
}

// Complete reads the RuntimeMigration and builds the clients.
func (o *Options) Complete(ctx context.Context, args []string) error {
	var err error
	if o.format, err = report.ParseFormat(o.Output, report.Table, report.JSON, report.YAML); err != nil {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	switch {
	case len(args) == 1 && o.Filename != "":
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: errors.New("give NAME or -f FILE, not both")}
	case len(args) == 0 && o.Filename == "":
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: errors.New("give NAME (a RuntimeMigration in the cluster) or -f FILE")}
	case o.Filename != "":
		if o.obj, err = specfile.ReadFile(o.Filename, o.In); err != nil {
			return err
		}
	default:
		o.name = args[0]
	}
	if o.client, err = cmd.Clientset(o.kube); err != nil {
		return err
	}
	if o.dyn, err = cmd.Dynamic(o.kube); err != nil {
		return err
	}
	if o.obj == nil {
		st := &store.Store{Dynamic: o.dyn}
		if o.obj, err = st.Get(ctx, o.name); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.NodeTime <= 0 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--node-time must be positive, got %s", o.NodeTime)}
	}
	if o.PageSize <= 0 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--chunk-size must be positive, got %d", o.PageSize)}
	}
	return nil
}

// Run builds and writes the preview.
func (o *Options) Run(ctx context.Context) error {
	p, err := preview.Make(ctx, o.client, o.dyn, o.obj.Name, &o.obj.Spec, preview.Options{NodeTime: o.NodeTime, PageSize: o.PageSize})
	if err != nil {
		return fmt.Errorf("plan rollout %s: %w", o.obj.Name, err)
	}
	return report.RolloutPreview(o.Out, p, o.format)
}
