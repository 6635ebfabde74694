// Package nodepkg owns the packages on a node: which package manager the node
// has (through its transport), which packages are installed, and the argument
// lists that install, purge or keep packages. It returns argv, never shell
// strings, and changes nothing itself: callers run the argv as steps.
package nodepkg

import (
	"context"
	"errors"
	"strings"

	"github.com/unshim/unshim/pkg/transport"
)

// Family is how a node's packages are recorded: dpkg (Debian, Ubuntu) or rpm
// (RHEL, Fedora, SUSE-likes with dnf or yum).
type Family string

// The package families a node may have.
const (
	Deb Family = "deb"
	RPM Family = "rpm"
)

// Manager is a node's package manager.
type Manager struct {
	// Name is the front end that installs and removes: apt-get, dnf or yum.
	Name   string
	Family Family
}

// ErrNoManager is returned by Detect on a node with neither dpkg nor rpm.
var ErrNoManager = errors.New("no apt-get, dnf or yum on the node")

// managers are probed in order; the first whose binaries are all present
// wins. dnf before yum: on RHEL 8 and later yum is a link to dnf.
var managers = []struct {
	m     Manager
	probe []string
}{
	{Manager{"apt-get", Deb}, []string{"/usr/bin/apt-get", "/usr/bin/dpkg-query"}},
	{Manager{"dnf", RPM}, []string{"/usr/bin/dnf", "/usr/bin/rpm"}},
	{Manager{"yum", RPM}, []string{"/usr/bin/yum", "/usr/bin/rpm"}},
}

// Detect finds the node's package manager by the binaries present on it.
func Detect(ctx context.Context, t transport.Transport) (Manager, error) {
next:
	for _, c := range managers {
		for _, p := range c.probe {
			if _, err := t.Run(ctx, "test", "-x", p); err != nil {
				if ctx.Err() != nil {
					return Manager{}, ctx.Err()
				}
				continue next
			}
		}
		return c.m, nil
	}
	return Manager{}, ErrNoManager
}

// Install returns the argv that installs pkgs without asking.
func (m Manager) Install(pkgs ...string) []string {
	return append([]string{m.Name, "install", "-y"}, pkgs...)
}

// Purge returns the argv that removes pkgs (with their configuration on
// dpkg) without asking, and without removing what they pulled in: dnf's and
// yum's remove would otherwise take containerd with Docker
// (clean_requirements_on_remove).
func (m Manager) Purge(pkgs ...string) []string {
	if m.Family == Deb {
		return append([]string{"apt-get", "purge", "-y"}, pkgs...)
	}
	return append([]string{m.Name, "remove", "-y", "--noautoremove"}, pkgs...)
}

// MarkManual returns the argv that marks pkgs manually installed, so that
// removing what depended on them does not remove them with it (apt-get
// autoremove; kubernetes-sigs/kubespray#8431). It is nil for rpm, whose
// Purge already keeps dependencies.
func (m Manager) MarkManual(pkgs ...string) []string {
	if m.Family != Deb || len(pkgs) == 0 {
		return nil
	}
	return append([]string{"apt-mark", "manual"}, pkgs...)
}

// QueryArgv returns the argv that lists which of pkgs are installed; its
// output is read by ParseInstalled. It exits non-zero when some of pkgs are
// not installed (or unknown), and still prints the others.
func (m Manager) QueryArgv(pkgs ...string) []string {
	if m.Family == Deb {
		return append([]string{"dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", "--"}, pkgs...)
	}
	// No "--": popt's end of options is not documented for rpm; the names
	// are unshim's own, never options.
	return append([]string{"rpm", "-q", "--qf", "%{NAME} ii\n"}, pkgs...)
}

// ParseInstalled reads QueryArgv's output: the packages installed. dpkg
// prints "NAME ii " for an installed package ("rc" once removed with its
// configuration left, "un" when only known); the rpm query format above
// prints "NAME ii" for each installed one and "package NAME is not
// installed" for the others.
func ParseInstalled(out []byte) map[string]bool {
	got := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && strings.HasPrefix(f[1], "ii") {
			got[f[0]] = true
		}
	}
	return got
}

// Installed asks the node which of pkgs are installed.
func (m Manager) Installed(ctx context.Context, t transport.Transport, pkgs ...string) (map[string]bool, error) {
	if len(pkgs) == 0 {
		return map[string]bool{}, nil
	}
	out, err := t.Run(ctx, m.QueryArgv(pkgs...)...)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// A non-zero exit only says some of pkgs are not installed.
	return ParseInstalled(out), nil
}
