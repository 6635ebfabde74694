// Package pin is `unshim pin` and `unshim unpin`: a required node affinity
// on unshim.io/runtime for the workloads that still need Docker.
package pin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/live"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/pin"
)

// Options are the flags and state of `unshim pin` and `unshim unpin`.
type Options struct {
	genericiooptions.IOStreams
	Apply     bool
	Severity  string
	Namespace string
	PageSize  int64

	unpin    bool
	kube     *cmd.KubeFlags
	severity check.Severity
	client   kubernetes.Interface
	dyn      dynamic.Interface
}

// NewCommand returns `unshim pin`.
func NewCommand(streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, Severity: "high", PageSize: 500}
	c := &cobra.Command{
		Use:   "pin",
		Short: "Keep the workloads that need Docker on Docker nodes (node affinity on unshim.io/runtime)",
		Long: `Finds the workloads that depend on Docker, as unshim check does, and shows
for each the JSON merge patch that adds a required node affinity
unshim.io/runtime In [docker, cri-dockerd] to its pod template (to every node
selector term it has, or as a new term), with the annotation unshim.io/pinned
recording what was added. With --apply the patches are applied: the
workload's pods restart onto nodes labelled by ` + "`unshim label-runtime`" + `.
Jobs and bare Pods cannot change their template and are listed as skipped.
` + "`unshim unpin`" + ` removes exactly what pin added.`,
		Example: `  unshim label-runtime
  unshim pin
  unshim pin --apply --severity medium`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	c.Flags().BoolVar(&o.Apply, "apply", false, "apply the patches (default: only show them)")
	c.Flags().StringVar(&o.Severity, "severity", o.Severity, "pin workloads with findings at or above: info|low|medium|high|critical")
	o.flags(c)
	return c
}

// NewUnpinCommand returns `unshim unpin`.
func NewUnpinCommand(streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, PageSize: 500, unpin: true}
	c := &cobra.Command{
		Use:   "unpin",
		Short: "Remove the node affinity unshim pin added",
		Long: `Finds the workloads carrying the annotation unshim.io/pinned and shows, for
each, the JSON merge patch that removes exactly what unshim pin added (its
expression, and the term, nodeAffinity or affinity it created) and the
annotation. With --apply the patches are applied.`,
		Example: `  unshim unpin
  unshim unpin --apply --only-namespace ci`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	c.Flags().BoolVar(&o.Apply, "apply", false, "apply the patches (default: only show them)")
	o.flags(c)
	return c
}

func (o *Options) flags(c *cobra.Command) {
	c.Flags().StringVar(&o.Namespace, "only-namespace", "", "only workloads in this namespace (default: all)")
	c.Flags().Int64Var(&o.PageSize, "chunk-size", o.PageSize, "objects per LIST page")
}

// Complete checks the flags and builds the clients.
func (o *Options) Complete() error {
	if o.PageSize <= 0 {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--chunk-size must be positive, got %d", o.PageSize)}
	}
	if !o.unpin {
		s, err := check.ParseSeverity(o.Severity)
		if err != nil {
			return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("--severity: %w", err)}
		}
		o.severity = s
	}
	var err error
	if o.client, err = cmd.Clientset(o.kube); err != nil {
		return err
	}
	o.dyn, err = cmd.Dynamic(o.kube)
	return err
}

// Run finds the workloads, prints the patches and applies them with --apply.
func (o *Options) Run(ctx context.Context) error {
	var changes []pin.Change
	var err error
	if o.unpin {
		changes, err = pin.Unplan(ctx, o.dyn, o.Namespace, o.PageSize)
	} else {
		changes, err = o.pinChanges(ctx)
	}
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		fmt.Fprintln(o.ErrOut, "nothing to change")
		return nil
	}
	for _, ch := range changes {
		if ch.Skip != "" {
			fmt.Fprintf(o.Out, "# %s: skipped: %s\n", ch.Workload, ch.Skip)
			continue
		}
		fmt.Fprintf(o.Out, "# %s\n%s\n", ch.Workload, ch.Patch)
	}
	if !o.Apply {
		fmt.Fprintln(o.ErrOut, "shown only: run again with --apply to patch")
		return nil
	}
	if err := pin.Apply(ctx, o.dyn, changes); err != nil {
		return err
	}
	fmt.Fprintln(o.ErrOut, "applied")
	return nil
}

// pinChanges runs the check over the cluster and plans a pin for every
// owner with a finding at or above the severity.
func (o *Options) pinChanges(ctx context.Context) ([]pin.Change, error) {
	rs, err := rules.All(rules.Options{})
	if err != nil {
		return nil, err
	}
	res, err := check.Run(ctx, &live.Source{Client: o.client, Namespace: o.Namespace, PageSize: o.PageSize, SkipConfigMaps: true}, rs)
	if err != nil {
		return nil, err
	}
	seen := map[pin.Workload]bool{}
	var ws []pin.Workload
	for _, f := range res.Findings {
		if f.Severity < o.severity || f.Object.Namespace == "" {
			continue
		}
		w := pin.Workload{Kind: f.Object.Kind, Namespace: f.Object.Namespace, Name: f.Object.Name}
		if !seen[w] {
			seen[w] = true
			ws = append(ws, w)
		}
	}
	return pin.Plan(ctx, o.dyn, ws, o.PageSize)
}
