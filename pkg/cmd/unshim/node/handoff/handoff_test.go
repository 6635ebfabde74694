package handoff

import (
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/log"
)

// TestArgs checks what the command refuses before it touches the host.
func TestArgs(t *testing.T) {
	tests := []struct {
		description string
		args        []string
		wantErr     string
	}{
		{"no command", []string{"--unit", "u"}, "after --"},
		{"command without --", []string{"--unit", "u", "/bin/true"}, "after --"},
		{"arguments before --", []string{"--unit", "u", "x", "--", "/bin/true"}, "after --"},
		{"no unit", []string{"--", "/bin/true"}, "--unit is required"},
		{"relative program", []string{"--unit", "u", "--copy-to", "", "--", "true"}, "not an absolute path"},
		{"unshim without a copy", []string{"--unit", "u", "--copy-to", "", "--", "unshim", "version"}, "no copy"},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			c := NewCommand(log.NoopLogger(), streams)
			c.SetArgs(tt.args)
			c.SilenceUsage, c.SilenceErrors = true, true
			err := c.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v; want %q", err, tt.wantErr)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q", out.String())
			}
		})
	}
}
