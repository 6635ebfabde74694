package cmd

import (
	"fmt"
	"strings"

	"github.com/unshim/unshim/pkg/check"
)

// FailOnUsage is the help text of every --fail-on flag.
var FailOnUsage = "exit 1 when a finding is at or above this severity: " + strings.Join(check.SeverityNames(), "|") + "|none"

// FailOn is a parsed --fail-on: the severity from which findings fail the
// command, or none.
type FailOn struct {
	never bool
	min   check.Severity
}

// ParseFailOn parses a --fail-on value: a severity name or "none".
func ParseFailOn(v string) (FailOn, error) {
	if strings.EqualFold(v, "none") {
		return FailOn{never: true}, nil
	}
	s, err := check.ParseSeverity(v)
	if err != nil {
		return FailOn{}, fmt.Errorf("--fail-on: %w", err)
	}
	return FailOn{min: s}, nil
}

// Exit returns the ExitError for findings at or above the threshold, or nil.
func (f FailOn) Exit(findings []check.Finding) error {
	if f.never {
		return nil
	}
	n := 0
	for _, x := range findings {
		if x.Severity >= f.min {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return &ExitError{Code: ExitFindings, Err: fmt.Errorf("%d findings at or above %s", n, f.min)}
}
