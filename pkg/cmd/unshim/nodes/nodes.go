// Package nodes is the `unshim nodes` command: the runtime inventory.
package nodes

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/report"
)

// Options are the flags and state of `unshim nodes`.
type Options struct {
	genericiooptions.IOStreams
	Output   string
	Selector string
	PageSize int64

	kube   *cmd.KubeFlags
	names  []string
	format report.Format
	client kubernetes.Interface
}

// NewCommand returns `unshim nodes`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, Output: string(report.Table), PageSize: 500}
	c := &cobra.Command{
		Use:   "nodes [NAME...]",
		Short: "Show each node's container runtime and whether it still needs migrating",
		Long: `Lists nodes with their status, kubelet version, OS, container runtime and
version, the CRI endpoint kubeadm recorded (annotation
kubeadm.alpha.kubernetes.io/cri-socket), and whether the node still runs
Docker (through dockershim or cri-dockerd) and so needs migrating.
A summary line follows the table.`,
		Example: `  unshim nodes
  unshim nodes -o wide
  unshim nodes -l node-role.kubernetes.io/worker -o json
  kubectl unshim nodes worker-1 worker-2`,
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
	c.Flags().StringVarP(&o.Output, "output", "o", o.Output, "output format: table|wide|json|yaml")
	c.Flags().StringVarP(&o.Selector, "selector", "l", o.Selector, "label selector to filter nodes")
	c.Flags().Int64Var(&o.PageSize, "chunk-size", o.PageSize, "nodes per LIST page")
	return c
}

// Complete fills the options from the arguments and the kubeconfig.
func (o *Options) Complete(args []string) error {
	o.names = args
	var err error
	if o.format, err = report.ParseFormat(o.Output, report.Table, report.Wide, report.JSON, report.YAML); err != nil {
		return err
	}
	o.client, err = cmd.Clientset(o.kube)
	return err
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.PageSize <= 0 {
		return fmt.Errorf("--chunk-size must be positive, got %d", o.PageSize)
	}
	return nil
}

// Run lists the nodes and writes the inventory.
func (o *Options) Run(ctx context.Context) error {
	nodes, err := inventory.List(ctx, o.client, inventory.Options{Selector: o.Selector, Names: o.names, PageSize: o.PageSize})
	if err != nil {
		return err
	}
	return report.Nodes(o.Out, nodes, o.format)
}
