package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/unshim/unshim/pkg/log"
)

// capSysResource is CAP_SYS_RESOURCE's bit in the capability sets.
const capSysResource = 24

// HasCapSysResource reports whether this machine's processes may hold
// CAP_SYS_RESOURCE (bit 24 of CapBnd in /proc/self/status). Without it no
// process may lower oom_score_adj, and lab nodes need the runtime wrapper.
func HasCapSysResource() (bool, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, fmt.Errorf("read capabilities: %w", err)
	}
	return capBit(string(status), "CapBnd", capSysResource)
}

// capBit reports whether bit is set in the capability set field of a /proc/PID/status text.
func capBit(status, field string, bit uint) (bool, error) {
	for _, line := range strings.Split(status, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			return false, fmt.Errorf("parse %s %q: %w", field, strings.TrimSpace(value), err)
		}
		return v&(1<<bit) != 0, nil
	}
	return false, fmt.Errorf("no %s in process status", field)
}

// hostSysctls are the values a lab node needs from the host: the kubelet
// sets the first three and cannot inside a container (/proc/sys is read-only
// there); Docker and the CNI plugin need forwarding. The inotify limits are
// minimums (atLeast: a higher value is left alone): every node's systemd,
// journald, dockerd, containerd and kubelet take inotify instances of the
// host's root user, and at the kernel's default of 128 a few labs at once
// leave a kubelet failing with "inotify_init: too many open files" (kind
// asks for the same on its hosts).
var hostSysctls = []struct {
	key, value string
	atLeast    bool
}{
	{"vm.overcommit_memory", "1", false},
	{"kernel.panic", "10", false},
	{"kernel.panic_on_oops", "1", false},
	{"net.ipv4.ip_forward", "1", false},
	{"fs.inotify.max_user_instances", "8192", true},
	{"fs.inotify.max_user_watches", "1048576", true},
}

// setHostSysctls sets hostSysctls on this machine where they differ. They
// are machine-wide and stay set after the lab stops.
func setHostSysctls(logger log.Logger) error {
	for _, s := range hostSysctls {
		path := filepath.Join("/proc/sys", strings.ReplaceAll(s.key, ".", "/"))
		cur, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", s.key, err)
		}
		if strings.TrimSpace(string(cur)) == s.value {
			continue
		}
		if s.atLeast {
			have, err1 := strconv.Atoi(strings.TrimSpace(string(cur)))
			want, err2 := strconv.Atoi(s.value)
			if err1 == nil && err2 == nil && have >= want {
				continue
			}
		}
		logger.V(1).Infof("setting sysctl %s=%s on this machine (was %s)", s.key, s.value, strings.TrimSpace(string(cur)))
		if err := os.WriteFile(path, []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", s.key, s.value, err)
		}
	}
	return nil
}

// nspawnRunDir is where systemd-nspawn keeps per-machine state; without
// systemd as PID 1 it must be a tmpfs, or nspawn cannot clean up after a machine.
const nspawnRunDir = "/run/systemd/nspawn"

// nspawnRunMarker, inside the tmpfs, says that a lab mounted it, so whichever
// lab is the last to stop its machines unmounts it, not only the one that
// mounted it (labs of concurrent test packages share it).
const nspawnRunMarker = nspawnRunDir + "/.unshim-lab"

// ensureNspawnRun mounts a tmpfs on nspawnRunDir unless one is there, and
// reports whether a lab owns it (mounted now, or earlier by another lab).
func ensureNspawnRun() (bool, error) {
	mounts, err := mountPoints()
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if m == nspawnRunDir {
			_, err := os.Stat(nspawnRunMarker)
			return err == nil, nil
		}
	}
	if err := os.MkdirAll(nspawnRunDir, 0o755); err != nil {
		return false, err
	}
	if err := syscall.Mount("tmpfs", nspawnRunDir, "tmpfs", 0, "mode=0755"); err != nil {
		return false, fmt.Errorf("mount tmpfs on %s: %w", nspawnRunDir, err)
	}
	if err := os.WriteFile(nspawnRunMarker, nil, 0o644); err != nil {
		return true, fmt.Errorf("mark %s as the lab's: %w", nspawnRunDir, err)
	}
	return true, nil
}

// nspawnRunInUse reports whether a machine (of this lab or another) still
// has state in nspawnRunDir.
func nspawnRunInUse() bool {
	for _, sub := range []string{"propagate", "unix-export"} {
		if entries, err := os.ReadDir(filepath.Join(nspawnRunDir, sub)); err == nil && len(entries) > 0 {
			return true
		}
	}
	return false
}

// releaseNspawnRun unmounts the lab's tmpfs on nspawnRunDir unless a machine
// still uses it; the last lab to stop its machines unmounts it.
func releaseNspawnRun() error {
	if nspawnRunInUse() {
		return nil
	}
	if _, err := os.Stat(nspawnRunMarker); err != nil {
		return nil // not a lab's (or already gone)
	}
	if err := syscall.Unmount(nspawnRunDir, 0); err != nil && err != syscall.EINVAL {
		return fmt.Errorf("unmount %s: %w", nspawnRunDir, err)
	}
	return nil
}

// mountPoints lists this mount namespace's mount points, in mount order.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, unescapeMount(fields[4]))
		}
	}
	return out, sc.Err()
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountsUnder lists the mount points at or below dir, deepest last.
func MountsUnder(dir string) ([]string, error) {
	all, err := mountPoints()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	var out []string
	for _, m := range all {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	return out, nil
}

// hostIPv4 returns the address lab nodes use as their node IP: the IPv4
// address of the interface of this machine's default route, else of another
// up, non-loopback interface. The nodes share the host's network; the kubelet
// refuses a loopback node IP, and without a node address the apiserver cannot
// reach a kubelet for logs and exec.
func hostIPv4() (string, error) {
	var preferred string
	if routes, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(routes), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 2 && f[1] == "00000000" {
				preferred = f[0]
				break
			}
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list network interfaces: %w", err)
	}
	sort.SliceStable(ifaces, func(i, j int) bool { return ifaces[i].Name == preferred && ifaces[j].Name != preferred })
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 || strings.HasPrefix(iface.Name, "veth") {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("lab nodes need a non-loopback IPv4 address on this machine for the kubelet")
}
