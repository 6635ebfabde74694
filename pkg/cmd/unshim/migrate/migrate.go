// Package migrate holds the commands that switch a node's runtime: `unshim
// migrate node NAME` (from anywhere the node can be reached), and the same
// as `unshim node migrate` and `unshim node rollback` run on the node itself.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/dockerpurge"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/nodeswitch"
	"github.com/unshim/unshim/pkg/report"
	"github.com/unshim/unshim/pkg/transport"
)

// NewCommand returns `unshim migrate`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Switch nodes from Docker to containerd (or cri-dockerd)",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(NewNodeCommand(logger, streams, kube, "node"))
	return c
}

// Options are the flags of a switch command.
type Options struct {
	genericiooptions.IOStreams
	Target             string
	DryRun             bool
	Output             string
	Allow              []string
	Force              bool
	DeleteEmptyDirData bool
	DrainTimeout       time.Duration
	VerifyTimeout      time.Duration
	NoRollback         bool
	ContainerdVersion  string
	// CRIDockerdPackage is cri-dockerd's .deb, .rpm or binary (--to cri-dockerd).
	CRIDockerdPackage string
	Via               string
	TargetPID         int
	SSH               transport.SSHConfig
	AgentImage        string
	AgentNamespace    string
	// SettingsFile holds the switch's settings as JSON (what the agent pod
	// hands to the node), in place of the flags.
	SettingsFile string
	SkipPhases   []string

	kube   *cmd.KubeFlags
	logger log.Logger
	node   string
	phase  string
}

func (o *Options) addTransportFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Via, "via", "local", "where the node steps run: local (this machine is the node; run as root), ssh, pod (migrate node only: an agent pod hands the run to a systemd unit on the node) or nsenter (a node whose init process this machine sees, with --target-pid)")
	f.IntVar(&o.TargetPID, "target-pid", 0, "with --via nsenter: the node's init process (e.g. a lab node's systemd)")
	f.StringVar(&o.SSH.Host, "ssh-host", "", "with --via ssh: HOST[:PORT] of the node (default: its InternalIP)")
	f.StringVar(&o.SSH.User, "ssh-user", "root", "with --via ssh: login user; other than root, commands run through sudo -n")
	f.StringVar(&o.SSH.KeyFile, "ssh-key", "", "with --via ssh: private key file (default: the agent at SSH_AUTH_SOCK)")
	f.StringVar(&o.SSH.KnownHostsFile, "ssh-known-hosts", "", "with --via ssh: known_hosts file the node's host key is checked against (default ~/.ssh/known_hosts)")
}

// NewNodeCommand returns the switch command, named use (`node` under
// `migrate`, `migrate` under `node`).
func NewNodeCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags, use string) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, Target: nodeplan.Containerd,
		DrainTimeout: 10 * time.Minute, VerifyTimeout: 5 * time.Minute, Output: "text"}
	c := &cobra.Command{
		Use:   use + " NAME",
		Short: "Switch one node's runtime from Docker to containerd (or cri-dockerd), with rollback and resume",
		Long: `Switches one node in named phases, each recorded in a journal on the node
(/var/lib/unshim/journal/NAME.json) and in the node's annotation
` + nodeswitch.PhaseAnnotation + `. A run that is killed resumes where it stopped
when run again. When a phase fails after the first change, every finished phase
is undone in reverse (files restored byte for byte, services as they were, the
cri-socket annotation restored, the node uncordoned only if it was schedulable
before) unless --no-rollback. A Lease in kube-system keeps two runs off one node.

Phases (--to containerd):
  ` + strings.Join(nodeswitch.PhaseNames(nodeplan.Containerd), ", ") + `
Phases (--to cri-dockerd; Docker keeps running):
  ` + strings.Join(nodeswitch.PhaseNames(nodeplan.CRIDockerd), ", ") + `

--dry-run prints each phase's plan: the files with diffs, the services, the API
changes, and the steps each phase records. "phase PHASE NAME" runs one phase
only; --skip-phases leaves phases out.`,
		Example: `  unshim ` + use + ` worker-1 --dry-run
  unshim ` + use + ` worker-1 --to containerd
  unshim ` + use + ` phase preflight worker-1
  unshim ` + use + ` worker-1 --skip-phases save-images,import-images`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c)
		},
	}
	c.AddCommand(o.newPhaseCommand(use))
	f := c.PersistentFlags()
	f.StringVar(&o.Target, "to", o.Target, "target runtime: containerd or cri-dockerd")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan, change nothing")
	f.StringVarP(&o.Output, "output", "o", o.Output, "dry-run output: text|json|yaml")
	f.StringSliceVar(&o.Allow, "allow", nil, "preflight rule IDs not to treat as blockers (comma-separated)")
	f.BoolVar(&o.Force, "force", false, "also evict pods without a controller (by default they stay and restart on the new runtime)")
	f.BoolVar(&o.DeleteEmptyDirData, "delete-emptydir-data", false, "evict pods with emptyDir volumes (their data is lost)")
	f.DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "give up draining after this long (PDB-blocked evictions are retried until then)")
	f.DurationVar(&o.VerifyTimeout, "verify-timeout", o.VerifyTimeout, "how long the node may take to be healthy on the new runtime")
	f.BoolVar(&o.NoRollback, "no-rollback", false, "on failure, leave the node as it is (resumable) instead of rolling back")
	f.StringVar(&o.AgentImage, "agent-image", "", "with --via pod: image holding the unshim binary at /unshim, present on the node or pullable")
	f.StringVar(&o.AgentNamespace, "agent-namespace", "kube-system", "with --via pod: namespace of the agent pod and of ServiceAccount unshim-agent (deploy/rbac/unshim-agent.yaml)")
	f.StringVar(&o.ContainerdVersion, "containerd-version", "", "containerd version the config is written for (default: what containerd --version says on the node)")
	f.StringVar(&o.CRIDockerdPackage, "cri-dockerd-package", "", "with --to cri-dockerd: cri-dockerd's .deb, .rpm or binary to install (default: the cri-dockerd the node has)")
	f.StringVar(&o.SettingsFile, "settings", "", "read the switch's settings from this JSON file (as --via pod hands them to the node) instead of the flags")
	f.StringSliceVar(&o.SkipPhases, "skip-phases", nil, "phases not to run (comma-separated)")
	o.addTransportFlags(f)
	return c
}

// newPhaseCommand returns `... phase`, with a subcommand per phase made
// from the phase list, as kubeadm's phase runner makes them: each runs that
// phase alone, with the parent's flags.
func (o *Options) newPhaseCommand(use string) *cobra.Command {
	pc := &cobra.Command{
		Use:   "phase PHASE NAME",
		Short: "Run one phase of the switch (recorded in the journal as that phase only)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			// Only reached when PHASE names no phase.
			what := "a phase and a node"
			if len(args) > 0 {
				what = fmt.Sprintf("no phase %q", args[0])
			}
			return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("%s; phases: %s", what, strings.Join(nodeswitch.PhaseNames(nodeplan.Containerd), ", "))}
		},
	}
	for _, p := range phases.All() {
		name := p.Name
		pc.AddCommand(&cobra.Command{
			Use:     name + " NAME",
			Short:   p.Short,
			Example: "  unshim " + use + " phase " + name + " worker-1",
			Args:    cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				o.phase = name
				if err := o.Complete(args); err != nil {
					return err
				}
				if err := o.Validate(); err != nil {
					return err
				}
				return o.Run(c)
			},
		})
	}
	return pc
}

// NewRollbackCommand returns `unshim node rollback`.
func NewRollbackCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, Target: nodeplan.Containerd, DrainTimeout: 10 * time.Minute} // the journal says the real target
	c := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Undo a node's switch from its journal: back to Docker",
		Long: `Undoes the node's last switch, finished or not, from the journal on the node:
every change the switch recorded is undone in reverse (files restored byte for
byte from their backups, services as they were, the cri-socket annotation
restored, the node uncordoned only if it was schedulable before). When the
kubelet already ran on the new runtime, the node is cordoned and drained first
(PDBs respected), so its pods move instead of all stopping at once.`,
		Example: `  unshim node rollback worker-1`,
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
			if err := nodeswitch.Rollback(c.Context(), so); err != nil {
				return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&o.Force, "force", false, "also evict pods without a controller when draining first")
	c.Flags().BoolVar(&o.DeleteEmptyDirData, "delete-emptydir-data", false, "evict pods with emptyDir volumes when draining first (their data is lost)")
	c.Flags().DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "give up draining after this long (nothing is undone then)")
	o.addTransportFlags(c.Flags())
	return c
}

// Complete reads the arguments: the node's name.
func (o *Options) Complete(args []string) error {
	if len(args) != 1 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: errors.New("want NAME")}
	}
	o.node = args[0]
	return nil
}

// Validate checks the flags before anything is read or changed.
func (o *Options) Validate() error {
	fail := func(err error) error { return &cmd.ExitError{Code: cmd.ExitFailure, Err: err} }
	if o.Target != nodeplan.Containerd && o.Target != nodeplan.CRIDockerd {
		return fail(fmt.Errorf("--to %q: want containerd or cri-dockerd", o.Target))
	}
	if o.CRIDockerdPackage != "" {
		if o.Target != nodeplan.CRIDockerd {
			return fail(fmt.Errorf("--cri-dockerd-package goes with --to %s, not --to %s", nodeplan.CRIDockerd, o.Target))
		}
		// A .deb, an .rpm or an executable, before anything is changed.
		if _, err := phases.CRIDockerdSourceKind(o.CRIDockerdPackage); err != nil {
			return fail(err)
		}
	}
	if o.DrainTimeout < 0 || o.VerifyTimeout < 0 {
		return fail(fmt.Errorf("--drain-timeout %s, --verify-timeout %s: a timeout cannot be negative", o.DrainTimeout, o.VerifyTimeout))
	}
	if _, err := report.ParseFormat(string(o.format()), report.Text, report.JSON, report.YAML); err != nil {
		return fail(fmt.Errorf("-o: %w", err))
	}
	names := nodeswitch.PhaseNames(o.Target)
	for _, p := range append(append([]string{}, o.SkipPhases...), o.phase) {
		if p != "" && !slices.Contains(names, p) {
			return fail(fmt.Errorf("no phase %q for --to %s; phases: %s", p, o.Target, strings.Join(names, ", ")))
		}
	}
	return nil
}

func (o *Options) transport(ctx context.Context, client kubernetes.Interface) (transport.Transport, error) {
	spec := transport.Spec{Via: o.Via, TargetPID: o.TargetPID, SSH: o.SSH}
	if spec.SSH.KeyFile == "" {
		spec.SSH.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
	}
	return transport.Open(ctx, spec, func(ctx context.Context) (string, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, o.node, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("node %s: %w", o.node, err)
		}
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address, nil
			}
		}
		return "", fmt.Errorf("node %s has no InternalIP: give --ssh-host", o.node)
	})
}

// clusterOptions are the switch's options without a transport: the
// cluster's clients and the operator's settings.
func (o *Options) clusterOptions() (nodeswitch.Options, error) {
	client, err := cmd.Clientset(o.kube)
	if err != nil {
		return nodeswitch.Options{}, &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	rc, err := o.kube.ToRESTConfig()
	if err != nil {
		return nodeswitch.Options{}, &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	rs := nodeswitch.RunSettings{NoRollback: o.NoRollback, ContainerdVersion: o.ContainerdVersion, SkipPhases: o.SkipPhases,
		Settings: phases.Settings{Target: o.Target, Allow: o.Allow, Force: o.Force, DeleteEmptyDirData: o.DeleteEmptyDirData,
			DrainTimeout: o.DrainTimeout, VerifyTimeout: o.VerifyTimeout, CRIDockerdPackage: o.CRIDockerdPackage}}
	if o.SettingsFile != "" {
		data, err := os.ReadFile(o.SettingsFile)
		if err != nil {
			return nodeswitch.Options{}, &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--settings: %w", err)}
		}
		if rs, err = nodeswitch.DecodeRunSettings(data, o.SettingsFile); err != nil {
			return nodeswitch.Options{}, &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
		}
	}
	rs.Progress = o.ErrOut
	return nodeswitch.Options{
		Node: o.node, Client: client, RESTConfig: rc, Logger: o.logger, SkipPhases: rs.SkipPhases,
		NoRollback: rs.NoRollback, ContainerdVersion: rs.ContainerdVersion, Settings: rs.Settings,
	}, nil
}

// switchOptions are clusterOptions with the transport --via names.
func (o *Options) switchOptions(ctx context.Context) (nodeswitch.Options, error) {
	so, err := o.clusterOptions()
	if err != nil {
		return so, err
	}
	if so.Transport, err = o.transport(ctx, so.Client); err != nil {
		return nodeswitch.Options{}, &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	return so, nil
}

// runViaPod runs the switch from an agent pod on the node.
func (o *Options) runViaPod(ctx context.Context) error {
	fail := func(err error) error { return &cmd.ExitError{Code: cmd.ExitFailure, Err: err} }
	if o.phase != "" {
		return fail(errors.New("--via pod runs the whole switch; run single phases on the node"))
	}
	if o.AgentImage == "" {
		return fail(errors.New("--via pod needs --agent-image"))
	}
	so, err := o.clusterOptions()
	if err != nil {
		return err
	}
	if err := nodeswitch.RunViaPod(ctx, nodeswitch.PodOptions{Options: so, Image: o.AgentImage, Namespace: o.AgentNamespace, Out: o.ErrOut}); err != nil {
		return fail(err)
	}
	return nil
}

func closeTransport(t transport.Transport) {
	if c, ok := t.(io.Closer); ok {
		c.Close()
	}
}

// dryRun prints the plan: a Windows node's PowerShell script, or a Linux
// node's phases read through the transport --via names.
func (o *Options) dryRun(ctx context.Context) error {
	fail := func(err error) error { return &cmd.ExitError{Code: cmd.ExitFailure, Err: err} }
	so, err := o.clusterOptions()
	if err != nil {
		return err
	}
	res, err := nodeswitch.Preview(ctx, so, func(ctx context.Context) (transport.Transport, error) {
		if o.Via == "pod" {
			return nil, errors.New("--dry-run reads the node's files: use --via ssh or run `unshim node migrate --dry-run` on the node")
		}
		return o.transport(ctx, so.Client)
	})
	if err != nil {
		return fail(err)
	}
	if res.Windows != nil {
		fmt.Fprintf(o.ErrOut, "node %s runs Windows: this is the PowerShell plan to run on it (unshim drains, annotates and uncordons from the API)\n", o.node)
	}
	return report.SwitchDryRun(o.Out, res, o.format())
}

// format is the report format -o names ("" is text).
func (o *Options) format() report.Format {
	if o.Output == "" {
		return report.Text
	}
	return report.Format(o.Output)
}

// Run plans or runs the switch.
func (o *Options) Run(c *cobra.Command) error {
	ctx := c.Context()
	if o.DryRun {
		return o.dryRun(ctx)
	}
	if o.Via == "pod" {
		return o.runViaPod(ctx)
	}
	so, err := o.switchOptions(ctx)
	if err != nil {
		return err
	}
	defer closeTransport(so.Transport)
	err = nodeswitch.Run(ctx, so, o.phase)
	var nd *nodeswitch.NotDockerError
	if errors.As(err, &nd) {
		o.logger.V(0).Infof("%v", err)
		return nil
	}
	var pe *migrate.PhaseError
	if errors.As(err, &pe) {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("switch of %s: %w", o.node, err)}
	}
	if err != nil {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	return nil
}

// NewPurgeDockerCommand returns `unshim node purge-docker`.
func NewPurgeDockerCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, Target: nodeplan.Containerd}
	var removeData bool
	c := &cobra.Command{
		Use:   "purge-docker NAME",
		Short: "Remove Docker Engine from a node that runs on containerd (never containerd itself)",
		Long: `Removes Docker's packages from a node whose switch to containerd finished and
which is Ready on containerd: containerd, containerd.io and runc are kept (and
marked manually installed, so apt-get autoremove does not take them). With
--remove-data, /var/lib/docker and /etc/docker go too (/etc/docker is backed up
under /var/lib/unshim/backup/NAME/purge-docker first). After the purge there is
no rollback to Docker: purge once the node has proven itself.`,
		Example: `  unshim node purge-docker worker-1 --dry-run
  unshim node purge-docker worker-1 --remove-data`,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			so, err := o.switchOptions(c.Context())
			if err != nil {
				return err
			}
			defer closeTransport(so.Transport)
			po := dockerpurge.Options{Node: o.node, Client: so.Client, Transport: so.Transport, Logger: logger, RemoveData: removeData}
			if o.DryRun {
				steps, err := dockerpurge.Plan(c.Context(), po)
				if err != nil {
					return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
				}
				for _, s := range steps {
					fmt.Fprintf(o.Out, "%s: %s\n", s.What, strings.Join(s.Argv, " "))
				}
				return nil
			}
			if err := dockerpurge.Run(c.Context(), po); err != nil {
				return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what would be removed, change nothing")
	c.Flags().BoolVar(&removeData, "remove-data", false, "also delete /var/lib/docker and /etc/docker (backed up first)")
	o.addTransportFlags(c.Flags())
	return c
}
