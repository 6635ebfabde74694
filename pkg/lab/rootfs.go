package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unshim/unshim/pkg/log"
)

// RootfsSpec says which Debian root file system a lab node boots.
type RootfsSpec struct {
	Suite    string
	Variant  string
	Mirror   string
	Packages []string
}

// DefaultRootfs is the lab node's root: Debian bookworm with systemd, Debian's
// docker.io (20.10), containerd (1.6) and runc, CNI plugins and busybox-static
// (the busybox image is made from it), and openssh-server and sudo for the
// SSH transport.
func DefaultRootfs() RootfsSpec {
	mirror := os.Getenv("UNSHIM_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	return RootfsSpec{
		Suite:   "bookworm",
		Variant: "minbase",
		Mirror:  mirror,
		Packages: []string{
			"systemd", "systemd-sysv", "dbus", "iproute2", "iptables", "ca-certificates",
			"docker.io", "containerd", "runc", "containernetworking-plugins",
			"busybox-static", "procps", "kmod", "openssh-server", "sudo",
		},
	}
}

// key names the cached root by everything that shapes it (the mirror does not).
func (s RootfsSpec) key() string {
	pkgs := append([]string(nil), s.Packages...)
	sort.Strings(pkgs)
	h := sha256.Sum256([]byte(s.Suite + "\n" + s.Variant + "\n" + strings.Join(pkgs, ",") + "\n" + rootfsRecipe))
	return s.Suite + "-" + hex.EncodeToString(h[:6])
}

// rootfsRecipe versions what prepareRootfs does; change it to rebuild caches.
const rootfsRecipe = "v1"

// EnsureRootfs returns a tarball of the root file system spec, made with
// debootstrap into the cache on first use (a minute or two); later calls find it.
func EnsureRootfs(ctx context.Context, logger log.Logger, spec RootfsSpec) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "rootfs", "debian-"+spec.key()+".tar")
	return cached(out, func() error {
		if _, err := exec.LookPath("debootstrap"); err != nil {
			return fmt.Errorf("debootstrap not found: install Debian's debootstrap (see hack/apt-packages.txt)")
		}
		dir := out + ".d"
		_ = os.RemoveAll(dir)
		defer os.RemoveAll(dir)
		logger.V(0).Infof("debootstrapping Debian %s for lab nodes (a minute or two, once; cached in %s)", spec.Suite, filepath.Dir(out))
		if _, err := run(ctx, "debootstrap", "--variant="+spec.Variant, "--include="+strings.Join(spec.Packages, ","),
			spec.Suite, dir, spec.Mirror); err != nil {
			return fmt.Errorf("debootstrap %s: %w", spec.Suite, err)
		}
		if err := prepareRootfs(dir); err != nil {
			return fmt.Errorf("prepare node root: %w", err)
		}
		tmp := out + ".tmp"
		if _, err := run(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir, "-cf", tmp, "."); err != nil {
			return fmt.Errorf("archive node root: %w", err)
		}
		if err := os.Rename(tmp, out); err != nil {
			return err
		}
		return nil
	})
}

// prepareRootfs makes a fresh debootstrapped root fit to boot as many nodes:
// no machine identity, no package lists, CNI plugins where kubelets look.
func prepareRootfs(dir string) error {
	// Each node gets its own machine-id at first boot.
	if err := os.WriteFile(filepath.Join(dir, "etc", "machine-id"), nil, 0o444); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "var", "lib", "dbus", "machine-id"))
	if err := os.RemoveAll(filepath.Join(dir, "var", "cache", "apt", "archives")); err != nil {
		return err
	}
	// A CNI installer (Calico, Flannel…) puts its plugins in /opt/cni/bin; Debian's
	// containernetworking-plugins puts them in /usr/lib/cni.
	plugins, err := os.ReadDir(filepath.Join(dir, "usr", "lib", "cni"))
	if err != nil {
		return fmt.Errorf("find CNI plugins: %w", err)
	}
	bin := filepath.Join(dir, "opt", "cni", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	for _, p := range plugins {
		if err := os.Symlink(filepath.Join("/usr/lib/cni", p.Name()), filepath.Join(bin, p.Name())); err != nil {
			return err
		}
	}
	return nil
}

// extractRootfs unpacks the cached root tarball into dir.
func extractRootfs(ctx context.Context, tarball, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := run(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir, "-xpf", tarball); err != nil {
		return fmt.Errorf("unpack node root: %w", err)
	}
	return nil
}

// CommandError is a command that failed, with its argument list and output.
type CommandError struct {
	Args   []string
	Output []byte
	Err    error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %v\n%s", strings.Join(e.Args, " "), e.Err, tail(string(e.Output), 30))
}

func (e *CommandError) Unwrap() error { return e.Err }

// run runs a command on this machine and returns its combined output.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	c := exec.CommandContext(ctx, name, args...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return out.Bytes(), &CommandError{Args: append([]string{name}, args...), Output: out.Bytes(), Err: err}
	}
	return out.Bytes(), nil
}
