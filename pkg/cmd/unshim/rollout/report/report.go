// Package report is `unshim rollout report`: a rollout's report as Markdown
// or as one self-contained HTML page.
package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/report/rolloutreport"
	"github.com/unshim/unshim/pkg/rollout/record"
	"github.com/unshim/unshim/pkg/rollout/store"
)

// Output formats.
const (
	Markdown = "markdown"
	HTML     = "html"
)

// Options are the flags and state of `unshim rollout report`.
type Options struct {
	genericiooptions.IOStreams
	Output   string
	File     string
	PageSize int64

	kube *cmd.KubeFlags
	name string
}

// NewCommand returns `unshim rollout report`.
func NewCommand(streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, Output: Markdown, PageSize: 500}
	c := &cobra.Command{
		Use:   "report NAME",
		Short: "Write a rollout's report: Markdown, or a self-contained HTML page",
		Long: `Writes the report of a RuntimeMigration, ended or under way: the spec in
short, the result and conditions, the counts, the waves, each node's timeline
(one row per node, from its switch's start to its end, coloured by how it
ended, and its undo if any), the failed, rolled back, blocked and skipped
nodes with the phase they stopped in, the cause, and the PDB and pods that
blocked a drain, and the inventory before and after (the runtime each node
ran when planned, and its unshim.io/runtime label and containerRuntimeVersion
now).

-o html writes one page with inline CSS and an inline SVG timeline, no
script, font or image: it opens offline. Read-only: it reads the
RuntimeMigration and LISTs the nodes (the viewer role is enough). The
timeline shows each node's switch as a whole (started, ended); the phases
inside a switch are in the node's journal, not in the cluster.`,
		Example: `  unshim rollout report to-containerd > report.md
  unshim rollout report to-containerd -o html --output report.html`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	c.Flags().StringVarP(&o.Output, "output", "o", o.Output, "format: markdown|html")
	c.Flags().StringVar(&o.File, "output-file", "", "write the report to this file (default: stdout)")
	c.Flags().Int64Var(&o.PageSize, "chunk-size", o.PageSize, "nodes per LIST page")
	return c
}

// Complete reads the arguments.
func (o *Options) Complete(args []string) error {
	o.name = args[0]
	return nil
}

// Validate checks the flags before anything is read or written.
func (o *Options) Validate() error {
	bad := func(format string, a ...any) error {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf(format, a...)}
	}
	if o.Output != Markdown && o.Output != HTML {
		return bad("-o %q: want markdown or html", o.Output)
	}
	if o.PageSize < 0 {
		return bad("--chunk-size %d: want 0 or more", o.PageSize)
	}
	if o.File != "" {
		if st, err := os.Stat(filepath.Dir(o.File)); err != nil || !st.IsDir() {
			return bad("--output-file %s: its directory does not exist", o.File)
		}
	}
	return nil
}

// Run reads the rollout and the nodes, renders, and writes the report (a
// file only once the whole report rendered).
func (o *Options) Run(ctx context.Context) error {
	cs, err := cmd.NewClients(o.kube)
	if err != nil {
		return err
	}
	dyn, kc := cs.Dynamic, cs.Kube
	st := &store.Store{Dynamic: dyn}
	r, err := record.Read(ctx, record.Source{Get: st.Get, Client: kc, PageSize: o.PageSize}, o.name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if o.Output == HTML {
		err = rolloutreport.HTML(&buf, r)
	} else {
		err = rolloutreport.Markdown(&buf, r)
	}
	if err != nil {
		return fmt.Errorf("render the report of runtimemigration %s: %w", o.name, err)
	}
	if o.File == "" {
		_, err = o.Out.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(o.File, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the report of runtimemigration %s: %w", o.name, err)
	}
	fmt.Fprintf(o.ErrOut, "wrote %s\n", o.File)
	return nil
}
