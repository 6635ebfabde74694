package nodefiles

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/unshim/unshim/pkg/transport"
)

// MirrorTrees are the node paths Load and the node check read, copied whole.
var MirrorTrees = []string{
	"/etc/docker", "/etc/containerd", "/etc/cni/net.d", "/etc/systemd/system", "/run/systemd/system",
	"/etc/default", "/etc/sysconfig", "/etc/hostname", "/etc/fstab",
	"/var/lib/kubelet/kubeadm-flags.env", "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/instance-config.yaml",
	"/etc/crontab", "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly",
	"/var/spool/cron", "/usr/local/lib/systemd/system", "/etc/rc.local", "/etc/rc.d/rc.local",
	"/etc/cloud/cloud.cfg", "/etc/cloud/cloud.cfg.d", "/var/lib/cloud/instance/scripts", "/var/lib/cloud/scripts",
}

// MirrorUnits are the vendor unit files (and drop-in directories) copied.
var MirrorUnits = []string{"docker.service", "docker.socket", "containerd.service", "kubelet.service"}

// MirrorDirsOnly are directories whose existence matters, not their content
// (CNI plugin binaries).
var MirrorDirsOnly = []string{"/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"}

// MirrorProcFiles are files of /proc that Load reads (the kernel release,
// the mounts): tar copies them empty (procfs reports size 0), so each is
// read on its own.
var MirrorProcFiles = []string{KernelRelease, "/proc/1/mounts"}

// mirrorLimit bounds what a mirror may copy.
const mirrorLimit = 64 << 20

// Mirror copies the node files Load reads into dir, through t (for nodes
// reached over SSH, whose files are not visible here), with one `tar` run on
// the node. It returns dir, to be used as Load's root. Symbolic links are
// kept as links; anything but files, directories and links is skipped.
func Mirror(ctx context.Context, t transport.Transport, dir string) error {
	// tar skips the names the node lacks (--ignore-failed-read and
	// --warning=none): no round trip per name to ask first.
	var trees, dirsOnly []string
	for _, p := range MirrorTrees {
		trees = append(trees, strings.TrimPrefix(p, "/"))
	}
	for _, ud := range []string{"lib/systemd/system", "usr/lib/systemd/system"} {
		for _, u := range MirrorUnits {
			trees = append(trees, ud+"/"+u, ud+"/"+u+".d")
		}
	}
	for _, p := range MirrorDirsOnly {
		dirsOnly = append(dirsOnly, strings.TrimPrefix(p, "/"))
	}
	out, err := t.Run(ctx, mirrorArgv(trees, dirsOnly)...)
	if err != nil {
		return fmt.Errorf("copy the node's configuration: %w", err)
	}
	if len(out) > mirrorLimit {
		return fmt.Errorf("copy the node's configuration: %d bytes, more than %d", len(out), mirrorLimit)
	}
	if err := extract(bytes.NewReader(out), dir); err != nil {
		return err
	}
	for _, p := range MirrorProcFiles {
		data, err := t.ReadFile(ctx, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	// Plugin directories: the names tell which CNI plugins exist; their
	// content (tens of megabytes of binaries) is not needed.
	for _, d := range dirsOnly {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			continue // not on the node
		}
		ls, err := t.Run(ctx, "ls", "-1", "--", "/"+d)
		if err != nil {
			return fmt.Errorf("list /%s: %w", d, err)
		}
		for _, name := range strings.Split(strings.TrimSpace(string(ls)), "\n") {
			if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, d, name), nil, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// mirrorArgv builds tar's arguments: trees recursively, then dirsOnly
// without their content; names missing on the node are skipped silently.
func mirrorArgv(trees, dirsOnly []string) []string {
	argv := []string{"tar", "--create", "--file=-", "--directory=/", "--ignore-failed-read", "--warning=none"}
	argv = append(argv, trees...)
	if len(dirsOnly) > 0 {
		argv = append(argv, "--no-recursion")
		argv = append(argv, dirsOnly...)
	}
	return argv
}

// extract unpacks a tar stream under dir, refusing names that leave it.
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the node's configuration: %w", err)
		}
		name := path.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(filepath.Separator)) {
			return fmt.Errorf("read the node's configuration: entry %q leaves the mirror", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm()|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(dst)
			// Links are resolved inside the mirror by Resolve, as on the node.
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		}
	}
}
