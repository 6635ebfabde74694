// Package handoff is the node side of running unshim from a pod: it copies
// the running unshim binary to the host and starts a command in a transient
// systemd unit of the host's systemd, over its private D-Bus socket. The
// unit lives in the host's own cgroup, not in the pod's, so the work goes on
// when the container runtime that ran the pod stops and takes the pod with it.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

const (
	// SelfExe is the running binary, what Run copies unless told otherwise.
	SelfExe = "/proc/self/exe"
	// SelfName is the Argv[0] that stands for the copied binary.
	SelfName = "unshim"
	// DefaultCopyTo is where the agent copies the binary on the host: under
	// /var/lib/unshim, which the agent pod shares with the host.
	DefaultCopyTo = "/var/lib/unshim/bin/unshim"
)

// Options say what to hand off.
type Options struct {
	// Unit is the transient unit's name: "NAME" or "NAME.service".
	Unit string
	// Argv is the unit's command; an Argv[0] of SelfName runs the copy.
	Argv []string
	// CopyTo is where the binary is copied; no copy when empty.
	CopyTo string
	// Self is the binary to copy; SelfExe when empty.
	Self string
	// Files are further files copied to the host before the unit starts
	// (source in the pod, destination on the host), with mode 0600: the
	// agent's kubeconfig.
	Files [][2]string
	// Delay, when positive, starts the unit that long after Run returns,
	// through a transient timer NAME.timer: time for the pod that runs Run
	// to end and be reported before the unit disturbs its container runtime.
	Delay time.Duration
}

// Result is what Run did.
type Result struct {
	// Unit is the unit's full name (NAME.service).
	Unit string
	// Started is false when the unit (or its timer) was already active and Run left it alone.
	Started bool
	// Timer is the timer that starts Unit after Options.Delay, when there is one.
	Timer string
	// Active is the unit or timer already under way when Run started nothing.
	Active string
	// State is Active's active state.
	State string
	// ExecStart is the command the unit runs (when Started).
	ExecStart []string
}

// UnitName returns unit with the .service suffix, which systemd's D-Bus API needs.
func UnitName(unit string) string {
	if strings.HasSuffix(unit, ".service") {
		return unit
	}
	return unit + ".service"
}

// ExecStart returns argv as the unit runs it: an argv[0] of SelfName becomes
// copyTo. The program must be an absolute path: systemd looks up no PATH
// for a transient unit.
func ExecStart(argv []string, copyTo string) ([]string, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command to hand off")
	}
	out := append([]string(nil), argv...)
	if out[0] == SelfName {
		if copyTo == "" {
			return nil, fmt.Errorf("command %q runs %s, but no copy of it is made", strings.Join(argv, " "), SelfName)
		}
		out[0] = copyTo
	}
	if !filepath.IsAbs(out[0]) {
		return nil, fmt.Errorf("command %q: program %q is not an absolute path", strings.Join(argv, " "), out[0])
	}
	return out, nil
}

// Properties returns the transient service's properties for execStart.
func Properties(unit string, execStart []string) []sddbus.Property {
	return []sddbus.Property{
		sddbus.PropDescription("unshim hand-off " + strings.TrimSuffix(unit, ".service") + ": " + strings.Join(execStart, " ")),
		// exec: the start job ends once the program runs, so a missing program fails it.
		sddbus.PropType("exec"),
		// The flag is systemd's ignore-failure ("-" prefix), whatever go-systemd
		// calls it: false, so a missing program or a non-zero exit fails the unit.
		sddbus.PropExecStart(execStart, false),
		// Unload the unit when it ends, failed or not: a later hand-off may reuse the name.
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
		{Name: "StandardOutput", Value: dbus.MakeVariant("journal")},
		{Name: "StandardError", Value: dbus.MakeVariant("journal")},
	}
}

// timerProperties returns the properties of a transient timer that starts
// its service once, delay after it starts, and is unloaded after that.
func timerProperties(unit string, delay time.Duration) []sddbus.Property {
	type timer struct {
		Base string
		USec uint64
	}
	return []sddbus.Property{
		sddbus.PropDescription("unshim hand-off " + strings.TrimSuffix(unit, ".service") + ", in " + delay.String()),
		{Name: "TimersMonotonic", Value: dbus.MakeVariant([]timer{{"OnActiveSec", uint64(delay / time.Microsecond)}})},
		{Name: "RemainAfterElapse", Value: dbus.MakeVariant(false)},
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
}

// running are the active states of a unit whose work is under way.
var running = map[string]bool{"active": true, "activating": true, "reloading": true, "deactivating": true}

// Run copies the binary when o.CopyTo is set, then starts o.Argv in the
// transient unit o.Unit of the systemd listening on /run/systemd/private,
// and waits for the start job (with o.Delay, the timer's). A unit or timer
// of that name already under way is left alone (Result.Started false):
// running Run again is safe.
func Run(ctx context.Context, o Options) (Result, error) {
	res := Result{Unit: UnitName(o.Unit)}
	if o.Unit == "" {
		return res, errors.New("no unit name")
	}
	execStart, err := ExecStart(o.Argv, o.CopyTo)
	if err != nil {
		return res, err
	}
	if o.CopyTo != "" {
		self := o.Self
		if self == "" {
			self = SelfExe
		}
		if err := CopyFile(self, o.CopyTo); err != nil {
			return res, err
		}
	}
	for _, f := range o.Files {
		if err := copyFileMode(f[0], f[1], 0o600); err != nil {
			return res, err
		}
	}
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		return res, fmt.Errorf("connect to systemd's private bus (is the host's /run/systemd mounted?): %w", err)
	}
	defer conn.Close()

	timer := strings.TrimSuffix(res.Unit, ".service") + ".timer"
	units := []string{res.Unit, timer}
	if res.Active, res.State, err = anyRunning(ctx, conn, units); err != nil || res.Active != "" {
		return res, err
	}
	for _, u := range units {
		if err := resetFailed(ctx, conn, u); err != nil {
			return res, err
		}
	}
	start, props, aux := res.Unit, Properties(res.Unit, execStart), []sddbus.PropertyCollection{}
	if o.Delay > 0 {
		res.Timer = timer
		start, props = timer, timerProperties(res.Unit, o.Delay)
		aux = append(aux, sddbus.PropertyCollection{Name: res.Unit, Properties: Properties(res.Unit, execStart)})
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitAux(ctx, start, "replace", props, aux, done); err != nil {
		if dbusErrorName(err) == "org.freedesktop.systemd1.UnitExists" {
			// Another hand-off started it in the meantime.
			if active, state, serr := anyRunning(ctx, conn, units); serr == nil && active != "" {
				res.Active, res.State = active, state
				return res, nil
			}
		}
		return res, fmt.Errorf("start transient unit %s: %w", start, err)
	}
	select {
	case r := <-done:
		if r != "done" {
			return res, fmt.Errorf("start transient unit %s: job %s (see journalctl -u %s on the host)", start, r, start)
		}
	case <-ctx.Done():
		return res, fmt.Errorf("start transient unit %s: %w", start, ctx.Err())
	}
	res.Started, res.ExecStart = true, execStart
	return res, nil
}

// anyRunning returns the first of units that is under way, and its state;
// "" when none is.
func anyRunning(ctx context.Context, conn *sddbus.Conn, units []string) (string, string, error) {
	for _, u := range units {
		state, err := activeState(ctx, conn, u)
		if err != nil {
			return "", "", err
		}
		if running[state] {
			return u, state, nil
		}
	}
	return "", "", nil
}

// resetFailed forgets a failed unit that was kept (not collected): it would
// block a new unit of its name.
func resetFailed(ctx context.Context, conn *sddbus.Conn, unit string) error {
	state, err := activeState(ctx, conn, unit)
	if err != nil || state != "failed" {
		return err
	}
	if err := conn.ResetFailedUnitContext(ctx, unit); err != nil {
		return fmt.Errorf("reset failed unit %s: %w", unit, err)
	}
	return nil
}

// dbusErrorName is the D-Bus name of err, or "".
func dbusErrorName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var pde *dbus.Error
	if errors.As(err, &pde) {
		return pde.Name
	}
	return ""
}

// activeState returns the unit's ActiveState ("inactive" for an unknown unit).
func activeState(ctx context.Context, conn *sddbus.Conn, unit string) (string, error) {
	p, err := conn.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return "", fmt.Errorf("get state of unit %s: %w", unit, err)
	}
	s, ok := p.Value.Value().(string)
	if !ok {
		return "", fmt.Errorf("get state of unit %s: unexpected value %v", unit, p.Value)
	}
	return s, nil
}

// CopyFile copies src to dst with mode 0755, atomically: into a temporary
// file beside dst, synced, then renamed over dst (which a running copy of
// the old binary does not hinder).
func CopyFile(src, dst string) error { return copyFileMode(src, dst, 0o755) }

func copyFileMode(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	ok = true
	return nil
}
