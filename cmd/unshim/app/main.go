// Package app runs the unshim command line; Main is the only place that exits the process.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/cmd/unshim"
)

// Main runs unshim with the process's arguments and streams and exits with its code.
//
// The first SIGINT or SIGTERM cancels the command's context: a node switch
// stops at the next step boundary and rolls back on a context of its own.
// A second one exits at once, leaving the switch's journal to resume from.
func Main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(streams.ErrOut, "\n%v: stopping at the next step (a node switch then rolls back); %v again stops at once\n", sig, sig)
		cancel(fmt.Errorf("%v received", sig))
		sig = <-sigs
		fmt.Fprintf(streams.ErrOut, "\n%v again: stopping now; a node switch's journal keeps where it stopped: run it again to resume, or roll it back\n", sig)
		os.Exit(130)
	}()
	code := Run(ctx, streams, filepath.Base(os.Args[0]), os.Args[1:])
	signal.Stop(sigs)
	cancel(nil)
	os.Exit(code)
}

// CompletionHelper is the name kubectl (1.26+) runs to complete the
// arguments of `kubectl unshim`: a copy of (or link to) this binary by that
// name answers as `kubectl unshim __complete ARGS...`.
const CompletionHelper = "kubectl_complete-unshim"

// Run runs unshim as program name (kubectl-unshim makes it a kubectl plugin,
// kubectl_complete-unshim its completion helper) and returns the exit code:
// 0 success, 1 findings at or above --fail-on, 2 the command itself failed.
func Run(ctx context.Context, streams genericiooptions.IOStreams, name string, args []string) int {
	name = strings.TrimSuffix(name, ".exe")
	if name == CompletionHelper {
		args = append([]string{cobra.ShellCompRequestCmd}, args...)
	}
	root := unshim.NewCommand(streams, strings.HasPrefix(name, "kubectl-") || name == CompletionHelper)
	root.SetArgs(args)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *cmd.ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintf(streams.ErrOut, "%v\n", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
	return cmd.ExitFailure
}
