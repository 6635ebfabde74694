// Package phases holds the node migration's phases, one concern per file,
// each a migrate.Phase value with its rollback. Every change to the node
// goes through the run's transport.
package phases

import (
	"context"
	"fmt"
	"strings"

	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/transport"
)

// unitState asks systemd whether a unit is enabled and active. `systemctl
// is-enabled|is-active` exit non-zero for "disabled"/"inactive", so the
// answer is read from the output, and only an empty answer is an error.
func unitState(ctx context.Context, t transport.Transport, unit string) (enabled, active string, err error) {
	ask := func(verb string) (string, error) {
		out, err := t.Run(ctx, "systemctl", verb, unit)
		ans := strings.TrimSpace(string(out))
		if ans == "" {
			return "", fmt.Errorf("systemctl %s %s: %w", verb, unit, err)
		}
		return ans, nil
	}
	if enabled, err = ask("is-enabled"); err != nil {
		return "", "", err
	}
	if active, err = ask("is-active"); err != nil {
		return "", "", err
	}
	return enabled, active, nil
}

// recordUnits keeps each unit's state in the journal the first time only, so
// a resumed run never records the state it created itself.
func recordUnits(ctx context.Context, d migrate.Data, units ...string) error {
	j := d.Journal()
	for _, u := range units {
		if _, ok := j.Values["unit."+u+".enabled"]; ok {
			continue
		}
		enabled, active, err := unitState(ctx, d.Transport(), u)
		if err != nil {
			return err
		}
		j.Values["unit."+u+".enabled"] = enabled
		j.Values["unit."+u+".active"] = active
	}
	return d.Store().Save(ctx, j)
}

// undoUnits are the commands that put units back as the journal recorded
// them: enabled again, then started again, where they were.
func undoUnits(d migrate.Data, units ...string) [][]string {
	j := d.Journal()
	var out [][]string
	for _, u := range units {
		if j.Values["unit."+u+".enabled"] == "enabled" {
			out = append(out, []string{"systemctl", "enable", u})
		}
	}
	for _, u := range units {
		if j.Values["unit."+u+".active"] == "active" {
			out = append(out, []string{"systemctl", "start", u})
		}
	}
	return out
}

var dockerUnits = []string{"docker.socket", "docker.service"}

// NewStopKubeletPhase stops the kubelet; rollback starts it again if it ran.
func NewStopKubeletPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "stop-kubelet",
		Short: "Stop the kubelet",
		Run: func(ctx context.Context, d migrate.Data) error {
			if err := recordUnits(ctx, d, "kubelet.service"); err != nil {
				return err
			}
			_, err := migrate.Exec(ctx, d, []string{"systemctl", "stop", "kubelet.service"}, undoUnits(d, "kubelet.service")...)
			return err
		},
		Plan: func(context.Context, migrate.Data) ([]string, error) {
			return []string{"systemctl stop kubelet.service"}, nil
		},
	}
}

// NewStopDockerPhase stops and disables docker.service and docker.socket (a
// socket left enabled would start Docker again on the next client).
// Rollback enables and starts what was enabled and running before.
func NewStopDockerPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "stop-docker",
		Short: "Stop and disable docker.service and docker.socket",
		Run: func(ctx context.Context, d migrate.Data) error {
			if err := recordUnits(ctx, d, dockerUnits...); err != nil {
				return err
			}
			_, err := migrate.Exec(ctx, d, append([]string{"systemctl", "disable", "--now"}, dockerUnits...), undoUnits(d, dockerUnits...)...)
			return err
		},
		Plan: func(context.Context, migrate.Data) ([]string, error) {
			return []string{"systemctl disable --now " + strings.Join(dockerUnits, " ")}, nil
		},
	}
}
