package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/transport"
)

// toCRIDockerd is the RunIf of the phases only a switch to cri-dockerd runs.
func toCRIDockerd(d migrate.Data) bool {
	pd, err := data(d)
	return err == nil && pd.Settings().Target == nodeplan.CRIDockerd
}

var (
	criDockerdUnits = []string{nodeplan.CRIDockerdSocket, nodeplan.CRIDockerdService}
	// criDockerdBinaries are where packages and install guides put it.
	criDockerdBinaries = []string{nodeplan.CRIDockerdBinary, "/usr/local/bin/cri-dockerd"}
	// unitDirs are where systemd finds units a package or an admin installed.
	unitDirs = []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}
)

// installedCRIDockerd is the path of the node's cri-dockerd, or "".
func installedCRIDockerd(ctx context.Context, t transport.Transport) string {
	for _, b := range criDockerdBinaries {
		if _, err := t.Run(ctx, "test", "-x", b); err == nil {
			return b
		}
	}
	return ""
}

// hasUnit says whether unit's file is on the node.
func hasUnit(ctx context.Context, t transport.Transport, unit string) bool {
	for _, dir := range unitDirs {
		if _, err := t.Run(ctx, "test", "-e", path.Join(dir, unit)); err == nil {
			return true
		}
	}
	return false
}

// NewInstallCRIDockerdPhase installs cri-dockerd from the package or binary
// the operator named (or takes the one installed), writes its units where
// the package brought none, hands it the kubelet's dockershim flags in a
// drop-in, starts it on its socket and waits until its CRI is ready.
// Every file and command is recorded: rollback stops it, removes what was
// written and purges what was installed.
func NewInstallCRIDockerdPhase() migrate.Phase {
	return migrate.Phase{
		RunIf: toCRIDockerd,
		Name:  "install-cri-dockerd",
		Short: "Install cri-dockerd (--cri-dockerd-package, or the one installed), its units and flags; start it",
		Run:   run(runInstallCRIDockerd),
		Rollback: run(func(ctx context.Context, d Data) error {
			if err := migrate.Undo(ctx, d, "install-cri-dockerd"); err != nil {
				return err
			}
			if _, err := d.Transport().Run(ctx, "systemctl", "daemon-reload"); err != nil {
				return err
			}
			// A cri-dockerd that ran before goes on with its own flags again.
			if d.Journal().Values["unit."+nodeplan.CRIDockerdService+".active"] == "active" {
				_, err := d.Transport().Run(ctx, "systemctl", "restart", nodeplan.CRIDockerdService)
				return err
			}
			return nil
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			var lines []string
			src := d.Settings().CRIDockerdPackage
			switch kind, err := CRIDockerdSourceKind(src); {
			case err != nil:
				return []string{"install-cri-dockerd would fail: " + err.Error()}, nil
			case kind == nodeplan.SourceBinary:
				lines = append(lines, "install "+src+" as "+nodeplan.CRIDockerdBinary)
			case kind == nodeplan.SourceDeb:
				lines = append(lines, "copy "+src+" to the node, dpkg --install it (undo: dpkg --purge)")
			case kind == nodeplan.SourceRPM:
				lines = append(lines, "copy "+src+" to the node, rpm --install it (undo: rpm --erase)")
			default:
				if b := installedCRIDockerd(ctx, d.Transport()); b != "" {
					lines = append(lines, "use the installed "+b)
				} else {
					return []string{"install-cri-dockerd would fail: cri-dockerd is not installed; name it with --cri-dockerd-package"}, nil
				}
			}
			if !hasUnit(ctx, d.Transport(), nodeplan.CRIDockerdService) {
				lines = append(lines, "write "+nodeplan.CRIDockerdServiceFile+" and "+nodeplan.CRIDockerdSocketFile+" (the package brings none)")
			}
			flags, err := carriedFlags(d)
			if err != nil {
				return nil, err
			}
			lines = append(lines, "write "+nodeplan.CRIDockerdDropIn+" with the kubelet's flags: "+strings.Join(flags, " "),
				"systemctl enable "+strings.Join(criDockerdUnits, " ")+"; systemctl restart "+nodeplan.CRIDockerdService,
				"wait for the CRI at "+nodeplan.CRIDockerdEndpoint+": RuntimeReady and NetworkReady")
			return lines, nil
		}),
	}
}

// CRIDockerdSourceKind reads the head of the operator's --cri-dockerd-package
// file and says what it is (nodeplan.SourceDeb, SourceRPM or SourceBinary);
// "" when none is named.
func CRIDockerdSourceKind(src string) (string, error) {
	if src == "" {
		return "", nil
	}
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("--cri-dockerd-package: %w", err)
	}
	defer f.Close()
	head := make([]byte, 32)
	n, _ := f.Read(head)
	return nodeplan.CRIDockerdSourceKind(src, head[:n])
}

// carriedFlags are the kubelet's flags cri-dockerd takes over.
func carriedFlags(d Data) ([]string, error) {
	node, err := nodefiles.Load(d.FilesRoot())
	if err != nil {
		return nil, fmt.Errorf("read the kubelet's flags: %w", err)
	}
	return nodeplan.CRIDockerdFlags(node.Input.KubeletFlags), nil
}

func runInstallCRIDockerd(ctx context.Context, d Data) error {
	t := d.Transport()
	src := d.Settings().CRIDockerdPackage
	kind, err := CRIDockerdSourceKind(src)
	if err != nil {
		return err
	}
	var data []byte
	if kind != "" {
		if data, err = os.ReadFile(src); err != nil {
			return fmt.Errorf("--cri-dockerd-package: %w", err)
		}
	}
	binary := ""
	switch kind {
	case nodeplan.SourceBinary:
		binary = nodeplan.CRIDockerdBinary
		d.Logger().V(0).Infof("[install-cri-dockerd] installing %s as %s", src, binary)
		if err := migrate.WriteFile(ctx, d, binary, data, 0o755); err != nil {
			return err
		}
	case nodeplan.SourceDeb, nodeplan.SourceRPM:
		staged := path.Join(journal.DefaultDir, "packages", path.Base(src))
		if err := migrate.WriteFile(ctx, d, staged, data, 0o644); err != nil {
			return err
		}
		install, query, remove := []string{"dpkg", "--install", staged}, []string{"dpkg-deb", "--field", staged, "Package"}, "dpkg --purge"
		if kind == nodeplan.SourceRPM {
			install, query, remove = []string{"rpm", "--install", staged}, []string{"rpm", "--query", "--package", "--queryformat", "%{NAME}", staged}, "rpm --erase"
		}
		name := "cri-dockerd"
		if !d.DryRun() {
			out, err := t.Run(ctx, query...)
			if err != nil {
				return fmt.Errorf("read the package name of %s: %w", src, err)
			}
			name = strings.TrimSpace(string(out))
		}
		d.Logger().V(0).Infof("[install-cri-dockerd] installing package %s from %s", name, src)
		if _, err := migrate.Exec(ctx, d, install, append(strings.Fields(remove), name)); err != nil {
			return fmt.Errorf("install %s: %w", src, err)
		}
	}
	if binary == "" {
		if binary = installedCRIDockerd(ctx, t); binary == "" {
			if !d.DryRun() || src == "" {
				return errors.New("cri-dockerd is not installed: name its package or binary with --cri-dockerd-package")
			}
			binary = nodeplan.CRIDockerdBinary
		}
	}
	if !hasUnit(ctx, t, nodeplan.CRIDockerdService) {
		// A bare binary, or a package without units: write them as
		// Mirantis's packages ship them.
		if err := migrate.WriteFile(ctx, d, nodeplan.CRIDockerdServiceFile, nodeplan.CRIDockerdServiceUnit(binary), 0o644); err != nil {
			return err
		}
	}
	if !hasUnit(ctx, t, nodeplan.CRIDockerdSocket) {
		if err := migrate.WriteFile(ctx, d, nodeplan.CRIDockerdSocketFile, nodeplan.CRIDockerdSocketUnit(), 0o644); err != nil {
			return err
		}
	}
	flags, err := carriedFlags(d)
	if err != nil {
		return err
	}
	if err := migrate.WriteFile(ctx, d, nodeplan.CRIDockerdDropIn, nodeplan.CRIDockerdDropInFile(binary, flags), 0o644); err != nil {
		return err
	}
	// Reloaded again by the rollback, once the files are back.
	if _, err := migrate.Exec(ctx, d, []string{"systemctl", "daemon-reload"}); err != nil {
		return err
	}
	if err := recordUnits(ctx, d, criDockerdUnits...); err != nil {
		return err
	}
	j := d.Journal()
	var undoEnable []string
	for _, u := range criDockerdUnits {
		if j.Values["unit."+u+".enabled"] != "enabled" {
			undoEnable = append(undoEnable, u)
		}
	}
	var undo [][]string
	if len(undoEnable) > 0 {
		undo = append(undo, append([]string{"systemctl", "disable", "--now"}, undoEnable...))
	}
	if _, err := migrate.Exec(ctx, d, append([]string{"systemctl", "enable"}, criDockerdUnits...), undo...); err != nil {
		return err
	}
	// restart: a cri-dockerd that ran already must read its new flags. If it
	// did not run, undoing stops it (and its socket); if it did, the
	// rollback restarts it once its files are back.
	var undoRestart [][]string
	if j.Values["unit."+nodeplan.CRIDockerdService+".active"] != "active" {
		undoRestart = append(undoRestart, []string{"systemctl", "stop", nodeplan.CRIDockerdService, nodeplan.CRIDockerdSocket})
	}
	if _, err := migrate.Exec(ctx, d, []string{"systemctl", "restart", nodeplan.CRIDockerdService}, undoRestart...); err != nil || d.DryRun() {
		return err
	}
	return waitReady(ctx, "cri-dockerd", time.Second, 2*time.Minute, func(ctx context.Context) error { return criDockerdReady(ctx, d) })
}

// criDockerdDial is where the switch dials cri-dockerd's socket: /var/run
// is a symlink to /run, whose absolute target a transport reaching the node
// through /proc/PID/root would resolve on this machine, not on the node.
const criDockerdDial = "unix:///run/cri-dockerd.sock"

// criDockerdReady asks cri-dockerd's CRI for RuntimeReady and NetworkReady;
// without a way to the node's socket it checks the socket is there.
func criDockerdReady(ctx context.Context, d Data) error {
	conn, err := criConnAt(d, criDockerdDial)
	if err != nil {
		return err
	}
	if conn == nil {
		_, err := d.Transport().Run(ctx, "test", "-S", strings.TrimPrefix(criDockerdDial, "unix://"))
		return err
	}
	defer conn.Close()
	conds, err := criConditions(ctx, conn, nodeplan.CRIDockerdEndpoint)
	if err != nil {
		return err
	}
	for _, c := range conds {
		if (c.Type == runtimeapi.RuntimeReady || c.Type == runtimeapi.NetworkReady) && !c.Status {
			return fmt.Errorf("cri-dockerd: %s is false: %s %s", c.Type, c.Reason, c.Message)
		}
	}
	return nil
}

// NewStopCRIDockerdPhase stops and disables cri-dockerd, where the node has
// it, before Docker stops: left running, it would restart again and again
// without Docker. Rollback enables and starts it as it was.
func NewStopCRIDockerdPhase() migrate.Phase {
	return migrate.Phase{
		RunIf: toContainerd,
		Name:  "stop-cri-dockerd",
		Short: "Stop and disable cri-dockerd, if the node has it",
		Run: func(ctx context.Context, d migrate.Data) error {
			if !hasUnit(ctx, d.Transport(), nodeplan.CRIDockerdService) {
				return nil
			}
			if err := recordUnits(ctx, d, criDockerdUnits...); err != nil {
				return err
			}
			_, err := migrate.Exec(ctx, d, append([]string{"systemctl", "disable", "--now"}, criDockerdUnits...), undoUnits(d, criDockerdUnits...)...)
			return err
		},
		Plan: func(ctx context.Context, d migrate.Data) ([]string, error) {
			if !hasUnit(ctx, d.Transport(), nodeplan.CRIDockerdService) {
				return []string{"no cri-dockerd on the node: nothing to do"}, nil
			}
			return []string{"systemctl disable --now " + strings.Join(criDockerdUnits, " ")}, nil
		},
	}
}
