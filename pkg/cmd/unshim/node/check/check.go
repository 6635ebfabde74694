// Package check is the `unshim node check` command: the host-side impact check.
package check

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodecheck"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/report"
)

// Options are the flags and state of `unshim node check`.
type Options struct {
	genericiooptions.IOStreams
	Root           string
	Proc           string
	DockerHost     string
	DockerSockets  []string
	KubeletVersion string
	Output         string
	FailOn         string

	logger log.Logger
	format report.Format
	failOn cmd.FailOn
	opts   nodecheck.Options
}

// NewCommand returns `unshim node check`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, logger: logger, Root: "/", Output: string(report.Table), FailOn: "high"}
	c := &cobra.Command{
		Use:   "check",
		Short: "Find what on a node's host depends on Docker",
		Long: `Run on a node (as root), or on a copy of its file system with --root. Reports:

  Docker's daemon.json and dockerd flags (unit, drop-ins): what containerd must
    carry over (mirrors, insecure registries, certs.d, data root, cgroup driver,
    runtimes, logging, proxies) and keys with no containerd equivalent;
  scripts, cron entries, systemd units and cloud-init that call docker (file:line);
  processes connected to the Docker socket right now (from /proc, by name and pid);
  images in Docker with no repo digest (no registry can give them back), and the
    pods that use them;
  what containerd needs that Docker did not: CNI config and plugins, a cgroup driver
    matching the kubelet's, kubelet flags the kubelet no longer accepts.

Processes are checked when --root is / (or --proc is given); images when Docker
answers at --docker-host (default unix:///var/run/docker.sock when --root is /).

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it;
2 the check itself failed (unreadable or malformed configuration).`,
		Example: `  unshim node check
  unshim node check -o json --fail-on medium
  unshim node check --root /mnt/node-root`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(); err != nil {
				return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
			}
			return o.Run(c.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&o.Root, "root", o.Root, "the node's file system")
	f.StringVar(&o.Proc, "proc", "", "proc file system of the node's processes (default /proc when --root is /)")
	f.StringVar(&o.DockerHost, "docker-host", "", "Docker API address (default unix:///var/run/docker.sock when --root is /)")
	f.StringSliceVar(&o.DockerSockets, "docker-socket", nil, "further Docker socket paths to look for in /proc (repeatable)")
	f.StringVar(&o.KubeletVersion, "kubelet-version", "", "the node's kubelet version (default: `kubelet --version` on the node)")
	f.StringVarP(&o.Output, "output", "o", o.Output, "output format: table|json|yaml|sarif")
	f.StringVar(&o.FailOn, "fail-on", o.FailOn, cmd.FailOnUsage)
	return c
}

// Complete parses the flags and fills in the defaults that depend on --root.
func (o *Options) Complete() error {
	var err error
	if o.format, err = report.ParseFormat(o.Output, report.Table, report.JSON, report.YAML, report.SARIF); err != nil {
		return err
	}
	if o.failOn, err = cmd.ParseFailOn(o.FailOn); err != nil {
		return err
	}
	if o.Root == "" {
		return fmt.Errorf("--root must not be empty")
	}
	onNode := o.Root == "/"
	if o.Proc == "" && onNode {
		o.Proc = "/proc"
	}
	if o.DockerHost == "" && onNode {
		if env := os.Getenv("DOCKER_HOST"); env != "" {
			o.DockerHost = env
		} else {
			o.DockerHost = "unix:///var/run/docker.sock"
		}
	}
	o.opts = nodecheck.Options{Root: o.Root, Proc: o.Proc, DockerHost: o.DockerHost, DockerSockets: o.DockerSockets}
	if o.KubeletVersion != "" {
		v, err := version.ParseGeneric(o.KubeletVersion)
		if err != nil {
			return fmt.Errorf("--kubelet-version: %w", err)
		}
		o.opts.KubeletVersion = v
	}
	return nil
}

// Run checks the node, writes the findings and turns them into the exit code.
func (o *Options) Run(ctx context.Context) error {
	if o.opts.KubeletVersion == nil {
		if n, err := nodefiles.Load(o.Root); err == nil {
			if v, err := n.KubeletVersion(ctx); err == nil {
				o.opts.KubeletVersion = v
			}
		}
	}
	res, err := nodecheck.Run(ctx, o.logger, o.opts)
	if err != nil {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("node check: %w", err)}
	}
	if err := report.Findings(o.Out, res, nodecheck.Rules(), o.format); err != nil {
		return fmt.Errorf("write findings: %w", err)
	}
	return o.failOn.Exit(res.Findings)
}
