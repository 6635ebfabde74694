// Package lab is the `unshim lab up|down|status` command: a real etcd and
// kube-apiserver on loopback to try unshim on and to test it against.
package lab

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/seed"
	"github.com/unshim/unshim/pkg/log"
)

// Options are the flags of every lab subcommand.
type Options struct {
	genericiooptions.IOStreams
	Dir         string
	KubeVersion string
	Nodes       int
	Output      string
	Controllers bool
	// NodeShape and KubeletVersion shape the nodes `lab up` starts.
	NodeShape      string
	KubeletVersion string
}

// NewCommand returns `unshim lab` with its up, down and status subcommands.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, Dir: lab.DefaultDir(), KubeVersion: lab.DefaultKubeVersion}
	c := &cobra.Command{
		Use:   "lab",
		Short: "Run a real etcd and kube-apiserver on loopback to try unshim on",
		Long: `The lab is a real etcd (Debian's etcd-server) and a real kube-apiserver built
from pinned Go modules, on 127.0.0.1 with free ports and a PKI of its own.
The first start builds kube-apiserver (a few minutes) into the cache
($UNSHIM_CACHE, default ~/.cache/unshim); later starts take seconds.

With --nodes N (root only) the lab also runs N Docker nodes: Debian bookworm
machines booted with systemd-nspawn on the host's network, with Debian's
docker.io, containerd and runc and a kubelet set up as kubeadm does. The first
such start builds the kubelet and debootstraps the root into the cache too;
later ones take well under a minute. --node-shape says how the kubelet reaches
Docker:
  dockershim   kubelet ` + lab.NodeKubeletVersion + ` with its built-in dockershim (the default)
  cri-dockerd  the lab's cri-dockerd on /var/run/cri-dockerd.sock: kubelet 1.23
               with --container-runtime=remote, or a later one (--kubelet-version
               ` + lab.NewestKubeletVersion + `) through CRI v1. The lab's cri-dockerd is a stand-in
               built from the Kubernetes 1.23 dockershim, not Mirantis's binary.
Running up again with more --nodes adds nodes of the shape given; the nodes
the lab has keep theirs.

Use it with: export KUBECONFIG=$(unshim lab status -o kubeconfig)`,
		Args: cobra.NoArgs,
	}
	c.PersistentFlags().StringVar(&o.Dir, "dir", o.Dir, "lab state directory (env UNSHIM_LAB)")
	up := &cobra.Command{
		Use:   "up",
		Short: "Start the lab (or report the one already running)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Nodes < 0 {
				return fmt.Errorf("--nodes %d: want 0 or more", o.Nodes)
			}
			shape := lab.NodeShape{Shape: o.NodeShape, KubeletVersion: o.KubeletVersion}
			if err := shape.Validate(); err != nil {
				return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
			}
			l, err := lab.Up(c.Context(), lab.Options{Dir: o.Dir, KubeVersion: o.KubeVersion, Nodes: o.Nodes, Logger: logger, Controllers: o.Controllers, NodeShape: shape})
			if err != nil {
				return fmt.Errorf("start lab: %w", err)
			}
			fmt.Fprintf(o.Out, "lab up: kube-apiserver %s at %s\nkubeconfig: %s\n", l.KubeVersion, l.APIServerURL, l.Kubeconfig)
			for _, n := range l.Nodes {
				fmt.Fprintf(o.Out, "node %s: Docker through %s, kubelet %s, root %s\n", n.Name, n.ShapeName(), n.Kubelet(), n.Root)
			}
			return nil
		},
	}
	up.Flags().StringVar(&o.KubeVersion, "kube-version", o.KubeVersion, "Kubernetes version of the control plane")
	up.Flags().BoolVar(&o.Controllers, "controllers", false, "also run kube-controller-manager and kube-scheduler (built on first use)")
	up.Flags().IntVar(&o.Nodes, "nodes", 0, "number of Docker nodes (systemd-nspawn machines; needs root)")
	up.Flags().StringVar(&o.NodeShape, "node-shape", lab.ShapeDockershim, "how the new nodes' kubelet reaches Docker: dockershim or cri-dockerd")
	up.Flags().StringVar(&o.KubeletVersion, "kubelet-version", lab.NodeKubeletVersion, "the new nodes' kubelet (dockershim needs 1.23 or older)")
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop every lab process and remove the lab directory",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := lab.Load(o.Dir)
			if err != nil {
				logger.V(0).Infof("no lab to stop in %s", o.Dir)
				return nil
			}
			if err := l.Down(); err != nil {
				return fmt.Errorf("stop lab: %w", err)
			}
			fmt.Fprintf(o.Out, "lab down: stopped %d processes and %d nodes\n", len(l.Processes), len(l.Nodes))
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show whether the lab runs; exit 2 when it does not",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return o.status()
		},
	}
	status.Flags().StringVarP(&o.Output, "output", "o", "text", "text|json|kubeconfig (the kubeconfig path only)")
	var so seed.Options
	seedCmd := &cobra.Command{
		Use:   "seed",
		Short: "Fill the lab with nodes and workloads, about 1% of them depending on Docker",
		Long: `Creates nodes (about 70% on Docker, through dockershim or cri-dockerd, the
rest on containerd) and namespaces of Deployments with their ReplicaSets,
DaemonSets, StatefulSets, CronJobs with their Jobs, and bare Pods, linked by
owner references as the controllers would link them. Only the lab is seeded:
the kubeconfig comes from the lab directory, never from --kubeconfig.
Namespaces that already exist are left alone, so seeding twice is safe.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := lab.Load(o.Dir)
			if err != nil {
				return err
			}
			client, err := l.Client()
			if err != nil {
				return err
			}
			st, err := seed.Run(c.Context(), client, so)
			if err != nil {
				return fmt.Errorf("seed lab: %w", err)
			}
			fmt.Fprintf(o.Out, "seeded %d nodes, %d namespaces, %d workloads with %d pods (%d workloads, %d pods depend on Docker)\n",
				st.Nodes, st.Namespaces, st.Workloads, st.Pods, st.DockerWorkloads, st.DockerPods)
			return nil
		},
	}
	seedCmd.Flags().IntVar(&so.Pods, "pods", 300, "number of pods to create")
	seedCmd.Flags().IntVar(&so.Nodes, "nodes", 7, "number of nodes to create")
	seedCmd.Flags().Float64Var(&so.DockerPercent, "docker-percent", 1, "share of pods (percent) whose workload depends on Docker")
	seedCmd.Flags().StringVar(&so.Prefix, "prefix", "seed", "name prefix of the namespaces and nodes")
	prepare := &cobra.Command{
		Use:   "prepare",
		Short: "Build and cache everything the lab can run, without starting anything",
		Long: `Builds kube-apiserver, kube-controller-manager and kube-scheduler, kubelet ` + lab.NodeKubeletVersion + `
and containerd ` + lab.DefaultContainerdVersion + ` from Go modules, debootstraps the nodes' Debian root
and builds the helper programs (pause image, runtime wrapper) into the cache, so that
a later ` + "`unshim lab up [--controllers] [--nodes N]`" + ` starts in seconds. Needs root
and hack/apt-packages.txt.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := lab.Prepare(c.Context(), logger, o.KubeVersion); err != nil {
				return fmt.Errorf("prepare lab: %w", err)
			}
			fmt.Fprintln(o.Out, "lab prepared")
			return nil
		},
	}
	c.AddCommand(up, down, status, seedCmd, prepare)
	return c
}

func (o *Options) status() error {
	switch o.Output {
	case "text", "json", "kubeconfig":
	default:
		return fmt.Errorf("unknown output %q: want text, json or kubeconfig", o.Output)
	}
	l, err := lab.Load(o.Dir)
	if err != nil {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("lab not running: %w", err)}
	}
	alive, dead := l.Running()
	switch o.Output {
	case "json":
		out := struct {
			*lab.Lab
			Running bool     `json:"running"`
			Stopped []string `json:"stopped,omitempty"`
		}{l, len(dead) == 0, dead}
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	case "kubeconfig":
		fmt.Fprintln(o.Out, l.Kubeconfig)
	default:
		fmt.Fprintf(o.Out, "lab in %s: kube-apiserver %s at %s\nkubeconfig: %s\nrunning: %s\n",
			l.Dir, l.KubeVersion, l.APIServerURL, l.Kubeconfig, strings.Join(alive, ", "))
		for _, n := range l.Nodes {
			fmt.Fprintf(o.Out, "node %s: %s, kubelet %s, machine %s, pid %d, kubelet port %d, root %s\n", n.Name, n.ShapeName(), n.Kubelet(), n.Machine, n.LeaderPID, n.KubeletPort, n.Root)
		}
		if len(dead) > 0 {
			fmt.Fprintf(o.Out, "stopped: %s\n", strings.Join(dead, ", "))
		}
	}
	if len(dead) > 0 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("lab in %s is not running: %s stopped", l.Dir, strings.Join(dead, ", "))}
	}
	return nil
}
