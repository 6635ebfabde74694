// Package node is the `unshim node` command group: what runs on a node itself.
package node

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/cmd/unshim/migrate"
	"github.com/unshim/unshim/pkg/cmd/unshim/node/check"
	"github.com/unshim/unshim/pkg/cmd/unshim/node/handoff"
	"github.com/unshim/unshim/pkg/log"
)

// NewCommand returns `unshim node`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "node",
		Short: "Commands that run on a node (or on a copy of its file system)",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(
		check.NewCommand(logger, streams),
		migrate.NewNodeCommand(logger, streams, kube, "migrate"),
		migrate.NewRollbackCommand(logger, streams, kube),
		migrate.NewRehearseCommand(logger, streams, kube),
		migrate.NewPurgeDockerCommand(logger, streams, kube),
		handoff.NewCommand(logger, streams),
	)
	return c
}
