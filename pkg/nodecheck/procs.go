package nodecheck

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/unshim/unshim/pkg/check"
)

// DefaultDockerSockets are where dockerd listens on most nodes.
var DefaultDockerSockets = []string{"/var/run/docker.sock", "/run/docker.sock"}

// unix_diag (linux/unix_diag.h).
const (
	udiagShowName = 0x1
	udiagShowPeer = 0x4
	unixDiagName  = 0
	unixDiagPeer  = 2
)

// unixSocket is one AF_UNIX socket as sock_diag reports it.
type unixSocket struct {
	inode uint32
	name  string
	peer  uint32
	state uint8
}

// socketClients finds processes connected to a Docker socket. /proc/net/unix
// names the server ends but not who is on the other side, so the peers come
// from the kernel's sock_diag netlink interface (what `ss -xp` uses), asked
// in every network namespace a process runs in; /proc/PID/fd maps the
// client sockets' inodes to processes.
func (c *checker) socketClients() error {
	paths := map[string]bool{}
	add := func(p string) {
		if p == "" {
			return
		}
		paths[p] = true
		if dir, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			paths[filepath.Join(dir, filepath.Base(p))] = true
		}
	}
	if c.o.Root == "/" {
		for _, p := range DefaultDockerSockets {
			add(p)
		}
		for _, h := range c.node.Input.Daemon.Strings("hosts") {
			if strings.HasPrefix(h, "unix://") {
				add(strings.TrimPrefix(h, "unix://"))
			}
		}
	}
	if strings.HasPrefix(c.o.DockerHost, "unix://") {
		add(strings.TrimPrefix(c.o.DockerHost, "unix://"))
	}
	for _, p := range c.o.DockerSockets {
		add(p)
	}

	procs, err := scanProcs(c.o.Proc)
	if err != nil {
		return err
	}
	c.res.Scanned["Process"] = len(procs.pids)
	// One sock_diag dump per network namespace.
	var sockets []unixSocket
	self, _ := os.Readlink(filepath.Join(c.o.Proc, "self/ns/net"))
	done := map[string]bool{}
	for _, pid := range procs.pids {
		ns := procs.netns[pid]
		if ns == "" || done[ns] {
			continue
		}
		done[ns] = true
		var s []unixSocket
		var err error
		if ns == self {
			s, err = dumpUnixSockets()
		} else {
			s, err = dumpUnixSocketsIn(filepath.Join(c.o.Proc, strconv.Itoa(pid), "ns/net"))
		}
		if err != nil {
			if ns == self {
				return fmt.Errorf("sock_diag: %w", err)
			}
			continue
		}
		sockets = append(sockets, s...)
	}
	seen := map[int]bool{os.Getpid(): true} // our own Docker client is not a finding
	for _, s := range sockets {
		if s.peer == 0 || !matchSocket(paths, s.name) {
			continue
		}
		// s is dockerd's end of an accepted connection; its peer is the client.
		for _, pid := range procs.byInode[uint64(s.peer)] {
			if seen[pid] {
				continue
			}
			seen[pid] = true
			name := procs.comm[pid]
			f := check.Finding{
				Object:   check.ObjectRef{Kind: "Process", Name: fmt.Sprintf("%s[%d]", name, pid)},
				Rule:     RuleSocketClient,
				Severity: check.SeverityHigh,
				Message:  fmt.Sprintf("process %s (pid %d) is connected to the Docker socket %s", name, pid, s.name),
				Evidence: clip(procs.cmdline[pid]),
			}
			if runtimePath(name) {
				f.Severity = check.SeverityInfo
				f.Message = fmt.Sprintf("%s (pid %d) is connected to the Docker socket %s: expected, it is the kubelet's way to Docker, which a switch to containerd replaces", name, pid, s.name)
			}
			c.add(f)
		}
	}
	return nil
}

// runtimePath says whether a process called comm is the kubelet's own way to
// Docker: cri-dockerd (Mirantis's, or the lab's stand-in, both named so).
// Its connection to docker.sock is what it is for, not a dependency on Docker
// that a switch would break. (A dockershim kubelet's connection is left a
// finding: the kubelet does more than reach Docker, and the switch's
// preflight treats it apart.)
func runtimePath(comm string) bool {
	return comm == "cri-dockerd"
}

func matchSocket(paths map[string]bool, name string) bool {
	if name == "" || name[0] == 0 {
		return false
	}
	if paths[name] {
		return true
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(name)); err == nil {
		return paths[filepath.Join(dir, filepath.Base(name))]
	}
	return false
}

type procTable struct {
	pids    []int
	comm    map[int]string
	cmdline map[int]string
	netns   map[int]string
	byInode map[uint64][]int
}

func scanProcs(proc string) (*procTable, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", proc, err)
	}
	t := &procTable{comm: map[int]string{}, cmdline: map[int]string{}, netns: map[int]string{}, byInode: map[uint64][]int{}}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue // gone, or not ours to read
		}
		t.pids = append(t.pids, pid)
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		t.comm[pid] = strings.TrimSpace(string(comm))
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		t.cmdline[pid] = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		t.netns[pid], _ = os.Readlink(filepath.Join(dir, "ns/net"))
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err == nil {
				t.byInode[ino] = append(t.byInode[ino], pid)
			}
		}
	}
	sort.Ints(t.pids)
	return t, nil
}
