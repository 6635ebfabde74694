// Package completion owns unshim's dynamic shell completion: node names read
// from the cluster, and the values of --via and --to (phase names complete
// as the phase subcommands they are). cobra's
// own `completion` command writes the bash, zsh, fish and PowerShell scripts;
// those scripts call `unshim __complete ...`, which ends in the functions
// registered here.
package completion

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/nodeplan"
)

// nodeCommands are the commands (paths under the root) whose first argument
// is a node name. "nodes" takes any number of them. Each phase subcommand
// of phaseCommands (`migrate node phase drain NAME`) takes one too.
var nodeCommands = []string{"nodes", "migrate node", "node migrate", "node rollback", "node purge-docker"}

// phaseCommands are the switch commands, with --to and a `phase`
// subcommand holding a subcommand per phase (whose names cobra completes).
var phaseCommands = []string{"migrate node", "node migrate"}

// via holds the values of --via per command path; "pod" is for `migrate node` only.
var via = map[string][]string{
	"migrate node":      {"local", "ssh", "pod", "nsenter"},
	"node migrate":      {"local", "ssh", "nsenter"},
	"node rollback":     {"local", "ssh", "nsenter"},
	"node purge-docker": {"local", "ssh", "nsenter"},
	"rollout run":       {"pod", "ssh", "nsenter"},
}

// targets are the values of --to.
var targets = []string{nodeplan.Containerd, nodeplan.CRIDockerd}

// Timeout bounds the node LIST one completion makes: a shell waits for it.
const Timeout = 5 * time.Second

// Register adds the completion functions to the commands under root. The
// node names are listed with kube's connection flags, as the command would
// use them (--kubeconfig, --context, ... on the command line being completed).
func Register(root *cobra.Command, kube *cmd.KubeFlags) {
	var withNode []*cobra.Command
	for _, path := range nodeCommands {
		withNode = append(withNode, find(root, path))
	}
	for _, path := range phaseCommands {
		if pc := find(root, path+" phase"); pc != nil {
			withNode = append(withNode, pc.Commands()...)
		}
	}
	for _, c := range withNode {
		if c == nil || c.ValidArgsFunction != nil {
			continue
		}
		many := c.Name() == "nodes"
		c.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 || many {
				return nodeNames(c.Context(), kube, args, toComplete)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
	}
	for path, values := range via {
		flag(find(root, path), "via", values)
	}
	for _, path := range phaseCommands {
		flag(find(root, path), "to", targets)
	}
}

// flag registers fixed values for c's flag name, if c has that flag.
func flag(c *cobra.Command, name string, values []string) {
	if c == nil || c.Flag(name) == nil { // its own flag or one it inherits
		return
	}
	if _, ok := c.GetFlagCompletionFunc(name); ok {
		return
	}
	_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
}

// nodeNames lists the cluster's nodes whose names start with prefix, but
// those already given. Errors go to cobra's completion log, not the shell.
func nodeNames(ctx context.Context, kube *cmd.KubeFlags, given []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	client, err := cmd.Clientset(kube)
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	list := func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return client.CoreV1().Nodes().List(ctx, opts)
	}
	err = kubelist.Each(ctx, "nodes", kubelist.DefaultPageSize, metav1.ListOptions{}, list, func(o runtime.Object) error {
		n := o.(*corev1.Node)
		if strings.HasPrefix(n.Name, prefix) && !contains(given, n.Name) {
			names = append(names, n.Name)
		}
		return nil
	})
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// find returns the command at path (names separated by spaces) under root, or nil.
func find(root *cobra.Command, path string) *cobra.Command {
	c := root
	for _, name := range strings.Fields(path) {
		var next *cobra.Command
		for _, sub := range c.Commands() {
			if sub.Name() == name {
				next = sub
			}
		}
		if next == nil {
			return nil
		}
		c = next
	}
	return c
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
