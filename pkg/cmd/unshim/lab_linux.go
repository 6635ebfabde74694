package unshim

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd/unshim/lab"
	"github.com/unshim/unshim/pkg/log"
)

// labCommand returns `unshim lab`: the lab runs on Linux only.
func labCommand(logger log.Logger, streams genericiooptions.IOStreams) *cobra.Command {
	return lab.NewCommand(logger, streams)
}
