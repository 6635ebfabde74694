// Package labelruntime is `unshim label-runtime`: keeps the node label
// unshim.io/runtime true on every node.
package labelruntime

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

// Options are the flags and state of `unshim label-runtime`.
type Options struct {
	genericiooptions.IOStreams
	Selector string
	DryRun   bool
	PageSize int64

	kube   *cmd.KubeFlags
	client kubernetes.Interface
}

// NewCommand returns `unshim label-runtime`.
func NewCommand(streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, PageSize: 500}
	c := &cobra.Command{
		Use:   "label-runtime",
		Short: "Label every node unshim.io/runtime=docker|cri-dockerd|containerd",
		Long: `Sets the label unshim.io/runtime on every node to the runtime its kubelet
reports (docker for Docker through dockershim, cri-dockerd, containerd), and
removes it from nodes whose runtime is another or not reported. Only nodes
whose label is wrong are patched, and each change is printed. Run it after
every switch (the rollout driver does), or on a schedule: workloads pinned
with ` + "`unshim pin`" + ` schedule by this label.`,
		Example: `  unshim label-runtime --dry-run
  unshim label-runtime -l node-role.kubernetes.io/worker`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	c.Flags().StringVarP(&o.Selector, "selector", "l", "", "label selector to limit the nodes")
	c.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the changes, make none")
	c.Flags().Int64Var(&o.PageSize, "chunk-size", o.PageSize, "nodes per LIST page")
	return c
}

// Complete builds the client.
func (o *Options) Complete() error {
	if o.PageSize <= 0 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--chunk-size must be positive, got %d", o.PageSize)}
	}
	var err error
	o.client, err = cmd.Clientset(o.kube)
	return err
}

// Run syncs the label and prints each change.
func (o *Options) Run(ctx context.Context) error {
	changes, err := runtimelabel.Sync(ctx, o.client, o.Selector, o.PageSize, o.DryRun)
	for _, ch := range changes {
		verb := "labelled"
		if o.DryRun {
			verb = "would label"
		}
		to := runtimelabel.Key + "=" + ch.To
		if ch.To == "" {
			to = runtimelabel.Key + "-"
		}
		fmt.Fprintf(o.Out, "node/%s %s %s (was %q)\n", ch.Node, verb, to, ch.From)
	}
	return err
}
