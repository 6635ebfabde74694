// Package phases holds the node migration's phases, one concern per file,
// each a migrate.Phase value with its rollback. Every change to the node
// goes through the run's transport.
package phases

import (
	"context"
	"fmt"
	"strconv"
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
	if d.DryRun() {
		return nil
	}
	return d.Store().Save(ctx, j)
}

// undoUnits are the commands that put units back as the journal recorded
// them: enabled again, then started again, where they were.
func undoUnits(d migrate.Data, units ...string) [][]string {
	return append(undoEnable(d, units...), undoStart(d, units...)...)
}

// undoEnable enables again the units that were enabled.
func undoEnable(d migrate.Data, units ...string) [][]string {
	var out [][]string
	for _, u := range units {
		if d.Journal().Values["unit."+u+".enabled"] == "enabled" {
			out = append(out, []string{"systemctl", "enable", u})
		}
	}
	return out
}

// undoStart starts again the units that were active.
func undoStart(d migrate.Data, units ...string) [][]string {
	var out [][]string
	for _, u := range units {
		if d.Journal().Values["unit."+u+".active"] == "active" {
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
		RunIf: toContainerd,
		Name:  "stop-docker",
		Short: "Stop and disable docker.service and docker.socket",
		Run: func(ctx context.Context, d migrate.Data) error {
			if err := recordUnits(ctx, d, dockerUnits...); err != nil {
				return err
			}
			if err := stopPodContainers(ctx, d); err != nil {
				return err
			}
			_, err := migrate.Exec(ctx, d, append([]string{"systemctl", "stop"}, dockerUnits...), undoStart(d, dockerUnits...)...)
			return err
		},
		Plan: func(context.Context, migrate.Data) ([]string, error) {
			return []string{"docker stop -t GRACE the containers of the pods left on the node, each pod with its own grace period, all at once, " +
				"while systemctl disable " + strings.Join(dockerUnits, " ") + " (its reload costs no time then); then their sandboxes",
				"systemctl stop " + strings.Join(dockerUnits, " ")}, nil
		},
	}
}

// Labels dockershim and cri-dockerd put on the containers they create: the
// kind of container, and the kubelet's annotations under "annotation."
// (the kubelet sets io.kubernetes.pod.terminationGracePeriod on each
// container it creates).
const (
	dockerTypeLabel  = "io.kubernetes.docker.type"
	dockerGraceLabel = "annotation.io.kubernetes.pod.terminationGracePeriod"
)

// stopPodContainers stops the containers of the pods still on the node (the
// drain leaves DaemonSet, static and kept pods) before Docker stops: each
// with its pod's grace period, all at once, then their sandboxes. Left to
// Docker's own shutdown, each would get Docker's stop timeout (10 s by
// default) whatever its pod asked for.
func stopPodContainers(ctx context.Context, d migrate.Data) error {
	t := d.Transport()
	out, err := t.Run(ctx, "docker", "ps", "--quiet", "--no-trunc", "--filter", "label="+dockerTypeLabel+"=container",
		"--format", `{{.ID}} {{.Label "`+dockerGraceLabel+`"}}`)
	if err != nil {
		return fmt.Errorf("list the pods' containers: %w", err)
	}
	byGrace := map[string][]string{}
	var graces []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		grace := "30" // the API's default terminationGracePeriodSeconds
		if len(f) > 1 {
			if n, err := strconv.Atoi(f[1]); err == nil && n >= 0 {
				grace = strconv.Itoa(n)
			}
		}
		if _, ok := byGrace[grace]; !ok {
			graces = append(graces, grace)
		}
		byGrace[grace] = append(byGrace[grace], f[0])
	}
	// Docker's units are disabled meanwhile (a socket left enabled would
	// start Docker again on the next client): systemd's reload for it then
	// costs the switch no time.
	cmds := []migrate.Cmd{{Argv: append([]string{"systemctl", "disable"}, dockerUnits...), Undo: undoEnable(d, dockerUnits...)}}
	for _, g := range graces {
		cmds = append(cmds, migrate.Cmd{Argv: append([]string{"docker", "stop", "--time", g, "--"}, byGrace[g]...)})
	}
	if err := migrate.ExecParallel(ctx, d, cmds...); err != nil {
		return fmt.Errorf("stop the pods' containers: %w", err)
	}
	out, err = t.Run(ctx, "docker", "ps", "--quiet", "--no-trunc", "--filter", "label="+dockerTypeLabel+"=podsandbox")
	if err != nil {
		return fmt.Errorf("list the pods' sandboxes: %w", err)
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		if err := migrate.ExecParallel(ctx, d, migrate.Cmd{Argv: append([]string{"docker", "stop", "--"}, ids...)}); err != nil {
			return fmt.Errorf("stop the pods' sandboxes: %w", err)
		}
	}
	return nil
}
