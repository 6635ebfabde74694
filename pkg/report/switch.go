package report

import (
	"fmt"
	"io"

	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodeplan"
)

// SwitchDryRun writes a switch's dry run in format f: text for people (a
// Linux node's phases with their plans and steps, or a Windows node's
// PowerShell script, ready to save and run), json or yaml (the DryRun value).
func SwitchDryRun(w io.Writer, d *nodeplan.DryRun, f Format) error {
	switch f {
	case JSON:
		return writeJSON(w, d)
	case YAML:
		return writeYAML(w, d)
	case Text:
	default:
		return fmt.Errorf("a dry run cannot be written as %s", f)
	}
	if d.Windows != nil {
		_, err := io.WriteString(w, d.Windows.Script)
		return err
	}
	ew := &errWriter{w: w}
	ew.printf("Switch of node %s to %s (endpoint %s", d.Node, d.Target, d.Endpoint)
	if d.SandboxImage != "" && d.Target == nodeplan.Containerd {
		ew.printf(", sandbox image %s, config.toml version %d", d.SandboxImage, d.ConfigVersion)
	}
	ew.printf(")\n")
	for i, s := range d.Phases {
		mark := ""
		if s.Done {
			mark = " (done: skipped on resume)"
		}
		ew.printf("\n[%d/%d] %s: %s%s\n", i+1, len(d.Phases), s.Phase, s.Short, mark)
		for _, l := range s.Lines {
			ew.printf("    %s\n", l)
		}
		for _, st := range s.Steps {
			ew.printf("    step: %s\n", migrate.DescribeStep(st))
		}
	}
	if len(d.Unmapped) > 0 {
		ew.printf("\nNot carried over to containerd:\n")
		for _, u := range d.Unmapped {
			ew.printf("    %s=%s: %s\n", u.Key, u.Value, u.Reason)
		}
	}
	for _, n := range d.Notes {
		ew.printf("\nNote: %s\n", n)
	}
	return ew.err
}

// errWriter keeps the first write error, so a long text is written without
// checking each line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
