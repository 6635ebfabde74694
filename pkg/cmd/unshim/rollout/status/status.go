// Package status is `unshim rollout status`: a RuntimeMigration's state,
// read-only, once or as it changes (-w).
package status

import (
	"context"
	"fmt"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/report"
	"github.com/unshim/unshim/pkg/rollout/live"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// Options are the flags and state of `unshim rollout status`.
type Options struct {
	genericiooptions.IOStreams
	Output string
	Watch  bool

	kube   *cmd.KubeFlags
	name   string
	format report.Format
	store  *store.Store
	kc     kubernetes.Interface
}

// NewCommand returns `unshim rollout status`.
func NewCommand(streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, Output: string(report.Table)}
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a rollout's phase, why it is there, and each node's state",
		Long: `Shows a RuntimeMigration's phase and message (why it paused), its counts, and
each node's wave, state (Pending, Switching, Done, Failed, Blocked,
RolledBack), switch phase, elapsed time and cause; a blocked node names the
PDB and pods that kept its drain from finishing. Read-only (the viewer role is
enough).

With -w it follows the rollout until it ends, from watches on the
RuntimeMigration and the nodes: on a terminal, a live table (per node: wave,
state, phase from the node's own annotation, elapsed time, result; the totals
and an ETA from the waves so far), q or Ctrl-C to quit, which leaves the
rollout alone; when stdout is not a terminal, the table once, then one line
per change; with -o json|yaml, the object again on every change.`,
		Example: `  unshim rollout status to-containerd
  unshim rollout status to-containerd -w
  unshim rollout status to-containerd -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	c.Flags().StringVarP(&o.Output, "output", "o", o.Output, "output format: table|json|yaml")
	c.Flags().BoolVarP(&o.Watch, "watch", "w", false, "follow the rollout until it ends: a live view on a terminal, else one line per change")
	return c
}

// Complete fills the options from the arguments and the kubeconfig.
func (o *Options) Complete(args []string) error {
	o.name = args[0]
	var err error
	if o.format, err = report.ParseFormat(o.Output, report.Table, report.JSON, report.YAML); err != nil {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	dyn, err := cmd.Dynamic(o.kube)
	if err != nil {
		return err
	}
	o.store = &store.Store{Dynamic: dyn}
	if o.Watch && o.format == report.Table {
		if o.kc, err = cmd.Clientset(o.kube); err != nil {
			return err
		}
	}
	return nil
}

// Ended tells whether a rollout's phase is final.
func Ended(m *v1alpha1.RuntimeMigration) bool { return m.Ended() }

// Run prints the state, and with -w every change after it.
func (o *Options) Run(ctx context.Context) error {
	m, err := o.store.Get(ctx, o.name)
	if err != nil {
		return err
	}
	if o.Watch && o.format == report.Table && o.terminal() != nil {
		return o.follow(ctx)
	}
	if err := report.RolloutStatus(o.Out, m, o.format); err != nil {
		return err
	}
	if !o.Watch || Ended(m) {
		return nil
	}
	if o.format == report.Table {
		return o.follow(ctx)
	}
	rv := m.ResourceVersion
	for {
		w, err := o.store.Watch(ctx, o.name, rv)
		if err != nil {
			return err
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Deleted:
				w.Stop()
				return fmt.Errorf("runtimemigration %s was deleted", o.name)
			case watch.Error:
				// An expired resourceVersion: start again from now.
				w.Stop()
				rv = ""
				continue
			case watch.Added, watch.Modified:
			default:
				continue
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			m, err := v1alpha1.FromUnstructured(u)
			if err != nil {
				w.Stop()
				return err
			}
			rv = m.ResourceVersion
			if o.format == report.Table {
				fmt.Fprintln(o.Out, "---")
			}
			if err := report.RolloutStatus(o.Out, m, o.format); err != nil {
				w.Stop()
				return err
			}
			if Ended(m) {
				w.Stop()
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil // interrupted: watching ends quietly
		}
	}
}

// terminal is stdout when it is a terminal.
func (o *Options) terminal() *os.File {
	f, ok := o.Out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return f
}

// follow feeds the live model from the watches: a live view on a terminal,
// else one line per change.
func (o *Options) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan live.Event, 64)
	go live.Feed(ctx, o.store.Dynamic, o.kc, o.name, events)
	md := live.New()
	if f := o.terminal(); f != nil {
		t := &tui{md: md, events: events, now: time.Now}
		in, _ := o.In.(*os.File)
		_, err := tea.NewProgram(t, tea.WithContext(ctx), tea.WithOutput(f), tea.WithInput(in)).Run()
		if ctx.Err() != nil {
			return nil // interrupted: watching ends quietly
		}
		return err
	}
	return plain(ctx, o.Out, md, events, time.Now)
}
