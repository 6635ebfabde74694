// Package unshim builds the root `unshim` command and wires its subcommands.
package unshim

import (
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/cmd/unshim/check"
	"github.com/unshim/unshim/pkg/cmd/unshim/completion"
	"github.com/unshim/unshim/pkg/cmd/unshim/convert"
	"github.com/unshim/unshim/pkg/cmd/unshim/labelruntime"
	"github.com/unshim/unshim/pkg/cmd/unshim/migrate"
	"github.com/unshim/unshim/pkg/cmd/unshim/node"
	"github.com/unshim/unshim/pkg/cmd/unshim/nodes"
	pincmd "github.com/unshim/unshim/pkg/cmd/unshim/pin"
	"github.com/unshim/unshim/pkg/cmd/unshim/rollout"
	versioncmd "github.com/unshim/unshim/pkg/cmd/unshim/version"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/version"
)

// NewCommand returns the root command. asPlugin names it `kubectl unshim`.
func NewCommand(streams genericiooptions.IOStreams, asPlugin bool) *cobra.Command {
	logger := log.New(streams.ErrOut, 0)
	kube := cmd.NewKubeFlags()
	var verbosity int
	var quiet bool
	root := &cobra.Command{
		Use:   "unshim",
		Short: "Take Kubernetes nodes off Docker Engine and onto containerd",
		Long: `unshim takes Kubernetes nodes off Docker Engine (dockershim or cri-dockerd) and
onto containerd, safely.

  unshim nodes    which runtime each node runs, and which still need migrating
  unshim check    what in the cluster (or in manifests) depends on Docker
  unshim migrate node NAME   switch a node to containerd, with dry-run, rollback and resume
  unshim rollout  roll a set of nodes off Docker in waves (plan, create, status, pause, resume, abort)
  unshim pin      keep the workloads that need Docker on Docker nodes (label-runtime, unpin)
  unshim lab      a real etcd + kube-apiserver on loopback to try it on

Exit codes: 0 success; 1 findings at or above --fail-on (check); 2 the command failed.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			if quiet {
				logger.SetVerbosity(-1)
			} else {
				logger.SetVerbosity(verbosity)
			}
		},
	}
	if asPlugin {
		// Run as kubectl-unshim: usage lines read `kubectl unshim ...`.
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl unshim"}
	}
	// `unshim --version` prints one line; `unshim version` the details.
	info := version.Get()
	root.Version = info.Version
	root.SetVersionTemplate("{{with .DisplayName}}{{printf \"%s \" .}}{{end}}" + strings.NewReplacer("{", "{{`{`}}", "}", "{{`}`}}").Replace(info.String()) + "\n")
	root.PersistentFlags().IntVarP(&verbosity, "v", "v", 0, "log verbosity on stderr (0: progress, 1+: detail)")
	root.PersistentFlags().BoolVarP(&quiet, "quiet", "q", false, "print only results and errors")
	kube.AddFlags(root.PersistentFlags())
	root.AddCommand(
		nodes.NewCommand(logger, streams, kube),
		check.NewCommand(logger, streams, kube),
		convert.NewCommand(logger, streams),
		migrate.NewCommand(logger, streams, kube),
		node.NewCommand(logger, streams, kube),
		rollout.NewCommand(logger, streams, kube),
		labelruntime.NewCommand(streams, kube),
		pincmd.NewCommand(streams, kube),
		pincmd.NewUnpinCommand(streams, kube),
		versioncmd.NewCommand(streams),
	)
	if c := labCommand(logger, streams); c != nil {
		root.AddCommand(c)
	}
	// cobra's `completion bash|zsh|fish|powershell` writes the scripts;
	// node names, phases and flag values complete through these functions.
	completion.Register(root, kube)
	return root
}
