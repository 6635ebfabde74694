package lab

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/log"
)

// TestCRIDockerdStandIn builds the lab's cri-dockerd from the Kubernetes
// 1.23 dockershim and checks its command line: it says what it is, refuses
// what cri-dockerd refuses, and an fd:// endpoint without the socket systemd
// passes fails with a reason instead of serving nothing. (Its CRI, v1alpha2
// and v1, is exercised on real lab nodes: pkg/nodeswitch/cridockerd_test.go.)
func TestCRIDockerdStandIn(t *testing.T) {
	testutil.RequireBinary(t, "go")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := EnsureCRIDockerd(ctx, log.New(testWriter{t}, 0))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		want     string
	}{
		{name: "version", args: []string{"--version"}, want: "cri-dockerd " + CRIDockerdVersion},
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantCode: 2, want: "flag provided but not defined"},
		{name: "stray argument", args: []string{"serve"}, wantCode: 2, want: "unexpected arguments"},
		{name: "bad endpoint", args: []string{"--container-runtime-endpoint", "tcp://127.0.0.1:1", "--docker-endpoint", "unix:///nonexistent/docker.sock"}, wantCode: 1, want: "want unix:///PATH or fd://"},
		{name: "fd without systemd", args: []string{"--container-runtime-endpoint", "fd://"}, wantCode: 1, want: "no socket passed by systemd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := exec.CommandContext(ctx, bin, tt.args...)
			c.Env = tt.env
			out, err := c.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(string(out), tt.want) {
				t.Errorf("cri-dockerd %q: exit %d, output %q; want exit %d and %q", tt.args, code, out, tt.wantCode, tt.want)
			}
		})
	}
}
