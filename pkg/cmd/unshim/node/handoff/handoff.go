// Package handoff is the hidden `unshim node handoff` command: what the
// agent pod runs to hand a command to a transient systemd unit of the host.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/handoff"
	"github.com/unshim/unshim/pkg/log"
)

// Options are the flags and arguments of `unshim node handoff`.
type Options struct {
	genericiooptions.IOStreams
	Unit    string
	CopyTo  string
	Timeout time.Duration
	Delay   time.Duration
	Argv    []string
	// Copy are SRC=DST files copied to the host (mode 0600) before the unit starts.
	Copy []string

	logger log.Logger
}

// NewCommand returns `unshim node handoff`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, logger: logger, CopyTo: handoff.DefaultCopyTo, Timeout: time.Minute}
	c := &cobra.Command{
		Use:   "handoff --unit NAME [--copy-to PATH] [--delay DURATION] -- ARGV...",
		Short: "Copy this binary to the host and start ARGV in a transient systemd unit there",
		Long: `Run inside unshim's agent pod (privileged, hostPID, with the host's
/run/systemd and /var/lib/unshim mounted). Copies the running binary to
--copy-to, then asks the host's systemd (over /run/systemd/private) to run ARGV
as the transient unit NAME.service, so that it outlives the pod and the
container runtime. An ARGV[0] of "unshim" runs the copy. With --delay, a
transient timer NAME.timer starts the unit that much later, so that the pod
has ended (and the kubelet said so) before the unit stops the container
runtime. If NAME.service or NAME.timer is already active, nothing new is
started.`,
		Example: `  unshim node handoff --unit unshim-migrate -- unshim node migrate --to containerd`,
		Hidden:  true,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(c, args); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&o.Unit, "unit", "", "name of the transient systemd unit (NAME or NAME.service)")
	f.StringVar(&o.CopyTo, "copy-to", o.CopyTo, "where to copy this binary on the host; empty: no copy")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for systemd to start the unit")
	f.StringArrayVar(&o.Copy, "copy", nil, "SRC=DST: also copy file SRC to DST on the host (mode 0600), e.g. the agent's kubeconfig")
	f.DurationVar(&o.Delay, "delay", 0, "start the unit this long later, through a transient timer NAME.timer (time for the pod to be reported finished)")
	return c
}

// Complete takes ARGV from after "--" and checks the flags.
func (o *Options) Complete(c *cobra.Command, args []string) error {
	if c.ArgsLenAtDash() != 0 || len(args) == 0 {
		return errors.New("want the command to hand off after --: unshim node handoff --unit NAME -- ARGV")
	}
	if o.Unit == "" {
		return errors.New("--unit is required")
	}
	o.Argv = args
	return nil
}

// Run hands the command off and says what it started.
func (o *Options) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var files [][2]string
	for _, c := range o.Copy {
		src, dst, ok := strings.Cut(c, "=")
		if !ok || src == "" || dst == "" {
			return fmt.Errorf("--copy %q: want SRC=DST", c)
		}
		files = append(files, [2]string{src, dst})
	}
	res, err := handoff.Run(ctx, handoff.Options{Unit: o.Unit, Argv: o.Argv, CopyTo: o.CopyTo, Delay: o.Delay, Files: files})
	if err != nil {
		return fmt.Errorf("hand off to unit %s: %w", handoff.UnitName(o.Unit), err)
	}
	if !res.Started {
		_, err = fmt.Fprintf(o.Out, "%s is already %s on the host: not starting another\n", res.Active, res.State)
		return err
	}
	if o.CopyTo != "" {
		o.logger.V(1).Infof("copied this binary to %s", o.CopyTo)
	}
	if res.Timer != "" {
		_, err = fmt.Fprintf(o.Out, "started %s on the host: it starts %s in %s: %q\n", res.Timer, res.Unit, o.Delay, res.ExecStart)
		return err
	}
	_, err = fmt.Fprintf(o.Out, "started %s on the host: %q\n", res.Unit, res.ExecStart)
	return err
}
