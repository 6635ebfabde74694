package migrate

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/nodeswitch"
)

// NewRehearseCommand returns `unshim node rehearse`: the switch's rehearse
// phase alone.
func NewRehearseCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, Target: nodeplan.Containerd}
	c := &cobra.Command{
		Use:   "rehearse NAME",
		Short: "Rehearse a node's switch to containerd without changing it",
		Long: `Rehearses the switch to containerd, as its rehearse phase does before the node
is cordoned, and changes nothing the node runs: a private containerd (the node's
own binary) starts with the converted configuration on a root, state directory,
socket and systemd unit of its own, beside Docker's; its CRI plugin must load;
and every image of the node's pods and the sandbox image that Docker resolves
today must resolve through it too (a manifest fetch through containerd's
resolver with the converted certs.d, not a pull). A reference that Docker
resolves and the rehearsal cannot fails the rehearsal, naming the registry, the
hosts tried and the Docker settings that were not carried over. The private
containerd and its files are removed afterwards; the node shows no switch in
progress.`,
		Example: `  unshim node rehearse worker-1
  unshim node rehearse worker-1 --via ssh --ssh-host 10.0.0.11`,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			so, err := o.switchOptions(c.Context())
			if err != nil {
				return err
			}
			defer closeTransport(so.Transport)
			if err := nodeswitch.Rehearse(c.Context(), so); err != nil {
				return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
			}
			o.logger.V(0).Infof("node %s: the switch to containerd rehearsed cleanly", o.node)
			return nil
		},
	}
	o.addTransportFlags(c.Flags())
	return c
}
