//go:build !linux

package unshim

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/log"
)

// labCommand is nil off Linux: the lab needs Linux (etcd, nspawn nodes), the
// rest of unshim (and the node agent, for Windows nodes) does not.
func labCommand(log.Logger, genericiooptions.IOStreams) *cobra.Command { return nil }
