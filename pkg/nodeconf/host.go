package nodeconf

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"
)

// ContainerdRootFor returns the containerd root Convert picks for a Docker
// data root on a node with the given mount points (nil: unknown), and
// whether that root differs from containerd's default.
//
//   - A data root that is its own mount point (a disk mounted at
//     /var/lib/docker or /data/docker) is where the node keeps its images:
//     containerd's root goes inside it (DATAROOT/containerd), on that disk,
//     not on the root file system that /var/lib/containerd would be on.
//   - Any other data root moved off /var/lib/docker: containerd's root goes
//     beside it (DIR/containerd), on the same file system.
//   - The default /var/lib/docker on the root file system: containerd's
//     default root.
func ContainerdRootFor(dataRoot string, mounts []string) (string, bool) {
	dataRoot = path.Clean(dataRoot)
	if dataRoot != "/" && isMountPoint(dataRoot, mounts) {
		return path.Join(dataRoot, "containerd"), true
	}
	if dataRoot == defaultDataRoot {
		return "", false
	}
	return path.Join(path.Dir(dataRoot), "containerd"), true
}

func isMountPoint(p string, mounts []string) bool {
	for _, m := range mounts {
		if path.Clean(m) == p {
			return true
		}
	}
	return false
}

// dataRoot places containerd's root on the disk that held Docker's data.
func (c *converter) dataRoot() {
	d := c.in.Daemon
	key, v := "", defaultDataRoot
	for _, k := range []string{"graph", "data-root"} { // data-root wins, as in dockerd
		if s := d.str(k); s != "" {
			key, v = k, path.Clean(s)
		}
	}
	root, set := ContainerdRootFor(v, c.in.Mounts)
	if !set {
		return
	}
	c.cfg.set(root, "root")
	reason := fmt.Sprintf("containerd's root is set to %s on the same disk, but Docker's images are not migrated: pull or import them again", root)
	if isMountPoint(v, c.in.Mounts) {
		reason = fmt.Sprintf("%s is its own file system: containerd's root is set to %s on it (not /var/lib/containerd on the root file system), and `unshim node purge-docker --remove-data` keeps it; Docker's images are not migrated. To give containerd the whole disk, mount it at /var/lib/containerd and drop `root`", v, root)
	}
	if key == "" {
		key = "data-root"
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: key, Value: v + " (dockerd's default)", Reason: reason})
		return
	}
	c.unmapped(key, v, reason)
}

// unprivileged sets enable_unprivileged_ports/icmp from the node's kernel.
//
// Docker >= 20.10 lets containers bind ports below 1024 and ping as non-root
// by setting net.ipv4.ip_unprivileged_port_start=0 and ping_group_range in
// each container, but only on kernels >= 4.11, where the first sysctl is
// namespaced (moby#41030, daemon/oci_linux.go). containerd 1.x sets them for
// every sandbox when enabled, whatever the kernel, and on a kernel before
// 4.11 every sandbox then fails to start; containerd 2.x defaults them to
// true on >= 4.11 and refuses them as a config error on older kernels
// (internal/cri/config ValidateEnableUnprivileged). So: true on >= 4.11,
// false below, and on an unknown kernel nothing for 1.x (reported) and
// containerd's own kernel-gated default for 2.x.
func (c *converter) unprivileged() {
	k := c.in.KernelVersion
	switch {
	case k == nil && c.v3:
		return
	case k == nil:
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "enable_unprivileged_ports", Value: "kernel unknown",
			Reason: "Docker lets non-root containers bind ports below 1024 and ping on kernels >= 4.11; the node's kernel is unknown, so containerd 1.x keeps them off (give --kernel-version to carry this over)"})
		return
	case k.AtLeast(version.MajorMinor(4, 11)):
		c.setAt(c.criRt(), true, "enable_unprivileged_ports")
		c.setAt(c.criRt(), true, "enable_unprivileged_icmp")
	default:
		c.setAt(c.criRt(), false, "enable_unprivileged_ports")
		c.setAt(c.criRt(), false, "enable_unprivileged_icmp")
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "enable_unprivileged_ports", Value: "kernel " + k.String(),
			Reason: "kernel before 4.11: unprivileged ports and ping stay off (Docker did not turn them on either; containerd would fail every sandbox)"})
	}
}

// ParseKernelVersion reads a kernel release ("3.10.0-1160.el7.x86_64",
// "5.15.0-1051-aws", "6.1.0-18-amd64", "4.9.0-19-amd64"): apimachinery's
// generic version, which stops at the first character after the numbers.
func ParseKernelVersion(s string) (*version.Version, error) {
	v, err := version.ParseGeneric(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("kernel release %q: want MAJOR.MINOR[.PATCH]", clip(s))
	}
	return v, nil
}
