// Package nodefiles reads a node's Docker and kubelet configuration files
// into a nodeconf.Input, through an fs.FS of the node's file system (Open
// gives it for any transport: the node's own root, a mount, /proc/PID/root,
// or a copy of its files). It reads files and runs nothing but `--version`
// of the node's containerd and kubelet binaries, and only when the node's
// root is a directory here.
package nodefiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/transport"
)

// Well-known node paths.
const (
	DaemonJSON    = "/etc/docker/daemon.json"
	DockerCertsD  = "/etc/docker/certs.d"
	KubeletConfig = "/var/lib/kubelet/config.yaml"
	// KernelRelease is where the node's kernel version is read.
	KernelRelease = "/proc/sys/kernel/osrelease"
)

// MountTables are the files the node's mount points are read from: the
// ones it mounts at boot, and the ones mounted now as its init sees them
// (/proc/mounts would be the mounts of whoever reads it: through nsenter's
// /proc/PID/root, those of unshim's own host).
var MountTables = []string{"/etc/fstab", "/proc/1/mounts"}

// ReadMounts returns the mount points listed in the node's /etc/fstab and
// /proc/1/mounts (nil when neither exists).
func ReadMounts(fsys fs.FS) ([]string, error) {
	var mounts []string
	found := false
	seen := map[string]bool{}
	for _, f := range MountTables {
		data, ok, err := readOptional(fsys, f)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		found = true
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			fields := strings.Fields(line)
			if len(fields) < 2 || !strings.HasPrefix(fields[1], "/") {
				continue // swap, or not a mount point
			}
			mp := path.Clean(unescapeMount(fields[1]))
			if !seen[mp] {
				seen[mp] = true
				mounts = append(mounts, mp)
			}
		}
	}
	if !found {
		return nil, nil
	}
	if mounts == nil {
		mounts = []string{}
	}
	return mounts, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of fstab(5)
// and /proc/mounts.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnitDirs are the systemd unit directories, most specific first.
var UnitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// KubeletFlagFiles are the environment files that carry kubelet flags.
var KubeletFlagFiles = []string{"/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet", "/etc/sysconfig/kubelet"}

// DockerEnvFiles are the environment files older Docker packages read DOCKER_OPTS from.
var DockerEnvFiles = []string{"/etc/default/docker", "/etc/sysconfig/docker"}

// Node is what was read from a node's files.
type Node struct {
	// FS is the node's file system the files were read from.
	FS fs.FS
	// Root is where the node's file system is visible here, for running
	// its binaries; "" when it is not (read through a transport's copy).
	Root string
	// Input is ready for nodeconf.Convert, except for the versions, which
	// Versions fills in.
	Input *nodeconf.Input
	// DaemonJSONPath is the daemon.json that was read (node path), "" if none.
	DaemonJSONPath string
	// DockerUnit is docker.service with its drop-ins, nil if absent.
	DockerUnit *nodeconf.Unit
	// DockerUnitFiles are the unit files read, node paths.
	DockerUnitFiles []string
	// KubeletBinary and ContainerdBinary are node paths of the binaries found.
	KubeletBinary, ContainerdBinary string
}

// Resolve turns a node path into a host path under root, symlinks followed
// the way the node would follow them (transport.Resolve).
func Resolve(root, nodePath string) (string, error) { return transport.Resolve(root, nodePath) }

// Path turns a node path into a path under root, symlinks resolved inside
// root (see Resolve). On an unresolvable path it falls back to the plain join.
func Path(root, nodePath string) string {
	if p, err := Resolve(root, nodePath); err == nil {
		return p
	}
	return filepath.Join(root, filepath.FromSlash(path.Clean("/"+nodePath)))
}

// Rel is the name of a node path in an fs.FS of the node's file system.
func Rel(nodePath string) string {
	if r := strings.TrimPrefix(path.Clean("/"+nodePath), "/"); r != "" {
		return r
	}
	return "."
}

func readOptional(fsys fs.FS, nodePath string) ([]byte, bool, error) {
	data, err := fs.ReadFile(fsys, Rel(nodePath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", nodePath, err)
	}
	return data, true, nil
}

// readEnvFile reads an EnvironmentFile of the node the way systemd does
// (lines that are not assignments are skipped, and noted in in.Notes); a
// missing file has no variables.
func readEnvFile(fsys fs.FS, nodePath string, in *nodeconf.Input) ([]nodeconf.EnvVar, error) {
	data, ok, err := readOptional(fsys, nodePath)
	if err != nil || !ok {
		return nil, err
	}
	vars, skipped, err := nodeconf.ReadEnvFile(nodePath, data)
	for _, sk := range skipped {
		in.Notes = append(in.Notes, nodeconf.Unmapped{Key: fmt.Sprintf("%s line %d", sk.File, sk.Line), Value: sk.Text, Source: sk.File,
			Reason: "not a NAME=VALUE assignment: systemd skips such lines of an EnvironmentFile, so dockerd never saw it"})
	}
	return vars, err
}

// UnitFiles returns a service's unit file and drop-ins (node paths), in the
// order systemd applies them.
func UnitFiles(fsys fs.FS, service string) ([]nodeconf.UnitFile, error) {
	var files []nodeconf.UnitFile
	for _, d := range UnitDirs {
		p := path.Join(d, service)
		if data, ok, err := readOptional(fsys, p); err != nil {
			return nil, err
		} else if ok {
			files = append(files, nodeconf.UnitFile{Path: p, Data: data})
			break
		}
	}
	dropIns := map[string]string{} // name -> node path; earlier dirs win
	for _, d := range UnitDirs {
		dir := path.Join(d, service+".d")
		entries, err := fs.ReadDir(fsys, Rel(dir))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".conf") || e.IsDir() {
				continue
			}
			if _, ok := dropIns[e.Name()]; !ok {
				dropIns[e.Name()] = path.Join(dir, e.Name())
			}
		}
	}
	names := make([]string, 0, len(dropIns))
	for n := range dropIns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, ok, err := readOptional(fsys, dropIns[n])
		if err != nil {
			return nil, err
		}
		if ok {
			files = append(files, nodeconf.UnitFile{Path: dropIns[n], Data: data})
		}
	}
	return files, nil
}

// Load reads the node whose file system is visible here under root. Bad
// content is a *nodeconf.InputError naming the file and the key.
func Load(root string) (*Node, error) {
	n, err := LoadFS(transport.DirFS(root))
	if err != nil {
		return nil, err
	}
	n.Root = root
	return n, nil
}

// LoadFS reads the node's files from fsys (its file system, as Open gives
// it). Bad content is a *nodeconf.InputError naming the file and the key.
func LoadFS(fsys fs.FS) (*Node, error) {
	n := &Node{FS: fsys, Input: &nodeconf.Input{
		DockerEnvironment:       map[string]string{},
		DockerEnvironmentSource: map[string]string{},
		Certs:                   map[string][]nodeconf.CertFile{},
		ExistingDirs:            map[string]bool{},
	}}
	in := n.Input

	// dockerd flags: docker.service and drop-ins, with their environment files.
	unitFiles, err := UnitFiles(fsys, "docker.service")
	if err != nil {
		return nil, err
	}
	var flagCfgs []*nodeconf.DaemonConfig
	configFile := DaemonJSON
	if len(unitFiles) > 0 {
		for _, f := range unitFiles {
			n.DockerUnitFiles = append(n.DockerUnitFiles, f.Path)
		}
		u, err := nodeconf.ParseUnit(unitFiles)
		if err != nil {
			return nil, err
		}
		n.DockerUnit = u
		// Environment= first, then the EnvironmentFile=s in order: "settings
		// from these files override settings made with Environment=" (systemd.exec(5)).
		env, envSrc := map[string]string{}, map[string]string{}
		for k, v := range u.Environment {
			env[k], envSrc[k] = v, u.EnvironmentSource[k]
			in.DockerEnvironment[k] = v
			in.DockerEnvironmentSource[k] = u.EnvironmentSource[k]
		}
		for _, ef := range u.EnvironmentFiles {
			vars, err := readEnvFile(fsys, ef, in)
			if err != nil {
				return nil, err
			}
			for _, v := range vars {
				env[v.Name], envSrc[v.Name] = v.Value, ef
				in.DockerEnvironment[v.Name] = v.Value
				in.DockerEnvironmentSource[v.Name] = ef
			}
		}
		// Each word keeps the file that wrote it, so a flag set through
		// $OPTIONS is reported as set in /etc/sysconfig/docker, not in the unit.
		args, err := u.ExpandArgsFrom(env, envSrc)
		if err != nil {
			return nil, err
		}
		if len(u.ExecStart) > 0 {
			df, err := nodeconf.ParseDockerdArgs(args)
			if err != nil {
				return nil, err
			}
			flagCfgs = append(flagCfgs, df.Config)
			if df.ConfigFile != "" {
				configFile = df.ConfigFile
			}
		}
	} else {
		// No unit (sysvinit, or a copied tree without one): DOCKER_OPTS as the init script reads it.
		for _, ef := range DockerEnvFiles {
			vars, err := readEnvFile(fsys, ef, in)
			if err != nil {
				return nil, err
			}
			for _, v := range vars {
				if v.Name != "DOCKER_OPTS" {
					continue
				}
				words := strings.Fields(v.Value)
				df, err := nodeconf.ParseDockerdFlags(ef, words)
				if err != nil {
					return nil, err
				}
				flagCfgs = append(flagCfgs, df.Config)
				if df.ConfigFile != "" {
					configFile = df.ConfigFile
				}
			}
		}
	}
	var fileCfg *nodeconf.DaemonConfig
	if data, ok, err := readOptional(fsys, configFile); err != nil {
		return nil, err
	} else if ok {
		if fileCfg, err = nodeconf.ParseDaemonJSON(configFile, data); err != nil {
			return nil, err
		}
		n.DaemonJSONPath = configFile
	}
	if in.Daemon, err = nodeconf.MergeDaemon(fileCfg, flagCfgs...); err != nil {
		return nil, err
	}

	// /etc/docker/certs.d/HOST/*
	hosts, _ := fs.ReadDir(fsys, Rel(DockerCertsD))
	for _, h := range hosts {
		if !h.IsDir() {
			continue
		}
		files, err := fs.ReadDir(fsys, Rel(path.Join(DockerCertsD, h.Name())))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path.Join(DockerCertsD, h.Name()), err)
		}
		for _, f := range files {
			if f.IsDir() {
				continue
			}
			p := path.Join(DockerCertsD, h.Name(), f.Name())
			data, _, err := readOptional(fsys, p)
			if err != nil {
				return nil, err
			}
			in.Certs[h.Name()] = append(in.Certs[h.Name()], nodeconf.CertFile{Name: f.Name(), Data: data})
		}
	}

	// kubelet flags: the unit's literal arguments and the flag env files.
	kubeletUnit, err := UnitFiles(fsys, "kubelet.service")
	if err != nil {
		return nil, err
	}
	if len(kubeletUnit) > 0 {
		u, err := nodeconf.ParseUnit(kubeletUnit)
		if err != nil {
			return nil, err
		}
		if len(u.ExecStart) > 0 {
			n.KubeletBinary = u.ExecStart[0]
			var literal []string
			for _, w := range u.ExecStart[1:] {
				if !strings.HasPrefix(w, "$") {
					literal = append(literal, w)
				}
			}
			fl, err := nodeconf.ParseKubeletArgs(u.ExecStartFile, literal)
			if err != nil {
				return nil, err
			}
			in.KubeletFlags = append(in.KubeletFlags, fl...)
		}
	}
	for _, ef := range KubeletFlagFiles {
		data, ok, err := readOptional(fsys, ef)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		fl, err := nodeconf.ParseKubeletFlags(ef, data)
		if err != nil {
			return nil, err
		}
		in.KubeletFlags = append(in.KubeletFlags, fl...)
	}
	kcPath := KubeletConfig
	for _, f := range in.KubeletFlags {
		if f.Name == "config" && f.Value != "" {
			kcPath = f.Value
		}
	}
	if data, ok, err := readOptional(fsys, kcPath); err != nil {
		return nil, err
	} else if ok {
		if in.KubeletConfig, err = nodeconf.ParseKubeletConfig(kcPath, data); err != nil {
			return nil, err
		}
	}

	if in.Mounts, err = ReadMounts(fsys); err != nil {
		return nil, err
	}
	if data, ok, err := readOptional(fsys, KernelRelease); err != nil {
		return nil, err
	} else if ok {
		if kv, err := nodeconf.ParseKernelVersion(string(data)); err == nil {
			in.KernelVersion = kv
		}
	}

	dirs := append([]string(nil), nodeconf.CNIDirCandidates...)
	for _, f := range in.KubeletFlags {
		if f.Name == "cni-conf-dir" || f.Name == "cni-bin-dir" {
			dirs = append(dirs, strings.Split(f.Value, ",")...)
		}
	}
	for _, d := range dirs {
		if st, err := fs.Stat(fsys, Rel(strings.TrimSpace(d))); err == nil && st.IsDir() {
			in.ExistingDirs[strings.TrimSpace(d)] = true
		}
	}
	return n, nil
}

// findBinary returns the first of names the node has (node path).
func findBinary(fsys fs.FS, names ...string) string {
	for _, p := range names {
		if p == "" {
			continue
		}
		if st, err := fs.Stat(fsys, Rel(p)); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// BinaryVersion runs `BINARY --version` (a node path under root) and parses
// its answer.
func BinaryVersion(ctx context.Context, root, nodePath string) (*version.Version, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, Path(root, nodePath), "--version").CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("%s --version: %w: %s", nodePath, err, strings.TrimSpace(string(out)))
	}
	line := strings.TrimSpace(string(out))
	v, err := ParseVersionOutput(line)
	if err != nil {
		return nil, line, fmt.Errorf("%s --version: %w", nodePath, err)
	}
	return v, line, nil
}

// ParseVersionOutput reads the version from what `BINARY --version` printed
// (`containerd github.com/containerd/containerd v1.7.0 SHA`, `containerd
// github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3`,
// `Kubernetes v1.23.17`): the first word apimachinery's generic version
// reads, skipping module paths.
func ParseVersionOutput(out string) (*version.Version, error) {
	for _, f := range strings.Fields(out) {
		if strings.Contains(f, "/") {
			continue
		}
		if v, err := version.ParseGeneric(f); err == nil {
			return v, nil
		}
	}
	if len(out) > 80 {
		out = out[:80] + "..."
	}
	return nil, fmt.Errorf("no version in %q", out)
}

// ContainerdVersion runs the node's containerd --version.
func (n *Node) ContainerdVersion(ctx context.Context) (*version.Version, error) {
	bin := findBinary(n.FS, "/usr/bin/containerd", "/usr/local/bin/containerd", "/usr/sbin/containerd", "/bin/containerd")
	if n.Root == "" {
		return nil, errors.New("the node's binaries cannot be run from here (give --containerd-version)")
	}
	if bin == "" {
		return nil, fmt.Errorf("no containerd binary under %s (give --containerd-version)", n.Root)
	}
	n.ContainerdBinary = bin
	v, _, err := BinaryVersion(ctx, n.Root, bin)
	return v, err
}

// KubeletVersion runs the node's kubelet --version.
func (n *Node) KubeletVersion(ctx context.Context) (*version.Version, error) {
	bin := findBinary(n.FS, n.KubeletBinary, "/usr/bin/kubelet", "/usr/local/bin/kubelet")
	if n.Root == "" {
		return nil, errors.New("the node's binaries cannot be run from here")
	}
	if bin == "" {
		return nil, fmt.Errorf("no kubelet binary under %s", n.Root)
	}
	v, _, err := BinaryVersion(ctx, n.Root, bin)
	return v, err
}
