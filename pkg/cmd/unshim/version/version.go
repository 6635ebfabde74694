// Package version is the `unshim version` command.
package version

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/report"
	"github.com/unshim/unshim/pkg/version"
)

// Options are the flags of `unshim version`.
type Options struct {
	genericiooptions.IOStreams
	Output string

	format report.Format
}

// NewCommand returns `unshim version`.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, Output: string(report.Text)}
	c := &cobra.Command{
		Use:   "version",
		Short: "Print unshim's version, git commit, build date, Go version and platform",
		Long: `Prints the version of this unshim binary: the release version, git commit and
tree state, and build date a release build stamps into it (an unstamped build
shows what the Go toolchain recorded: the module version, VCS revision and
commit time), and the Go version and platform it was built with.`,
		Example: `  unshim version
  kubectl unshim version -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	c.Flags().StringVarP(&o.Output, "output", "o", o.Output, "output format: text|json|yaml")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// Validate checks the output format.
func (o *Options) Validate() error {
	if o.Output == "" {
		o.Output = string(report.Text)
	}
	f, err := report.ParseFormat(o.Output, report.Text, report.JSON, report.YAML)
	if err != nil {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	o.format = f
	return nil
}

// Run prints the version.
func (o *Options) Run() error {
	return report.Version(o.Out, version.Get(), o.format)
}
