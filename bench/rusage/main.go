// Command rusage runs a command and writes its wall time, peak RSS and CPU
// time (user and system) to the file named by -o, passing its output and
// exit code through.
//
// The benchmarks start programs through it because Go starts a child with
// clone(CLONE_VM|CLONE_VFORK): Linux then carries the parent's peak RSS
// into the child's at exec, so a child of a large test binary reports the
// test binary's memory, not its own. This wrapper is small, so what it
// passes on is far below what the programs it measures use.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	out := flag.String("o", "", "file to write \"<wall seconds> <peak RSS KiB> <CPU seconds>\" to")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: rusage -o FILE -- COMMAND [ARG...]")
		os.Exit(2)
	}
	c := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := c.Run()
	wall := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if err := os.WriteFile(*out, []byte(fmt.Sprintf("%f %d %f\n", wall.Seconds(), ru.Maxrss, cpu.Seconds())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(c.ProcessState.ExitCode())
}
