// Package cmd holds what every unshim command shares: exit codes and the
// error type that carries one.
package cmd

import "fmt"

// Exit codes of every unshim command.
const (
	// ExitOK: the command did its job and found nothing at or above --fail-on.
	ExitOK = 0
	// ExitFindings: the check found dependencies at or above --fail-on.
	ExitFindings = 1
	// ExitFailure: the command itself failed (bad input, unreachable cluster, ...).
	ExitFailure = 2
)

// ExitError ends a command with a specific exit code; Err, if set, is printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }
