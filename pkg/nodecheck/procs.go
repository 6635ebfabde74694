package nodecheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

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
			c.add(check.Finding{
				Object:   check.ObjectRef{Kind: "Process", Name: fmt.Sprintf("%s[%d]", name, pid)},
				Rule:     RuleSocketClient,
				Severity: check.SeverityHigh,
				Message:  fmt.Sprintf("process %s (pid %d) is connected to the Docker socket %s", name, pid, s.name),
				Evidence: clip(procs.cmdline[pid]),
			})
		}
	}
	return nil
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

// dumpUnixSocketsIn runs the dump inside the network namespace nsPath, on a
// locked OS thread that is thrown away afterwards.
func dumpUnixSocketsIn(nsPath string) ([]unixSocket, error) {
	type result struct {
		s   []unixSocket
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		s, err := dumpUnixSockets()
		ch <- result{s, err}
	}()
	r := <-ch
	return r.s, r.err
}

// dumpUnixSockets lists the AF_UNIX sockets of the current network
// namespace with their names and peers (sock_diag, SOCK_DIAG_BY_FAMILY).
func dumpUnixSockets() ([]unixSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	// nlmsghdr (16 bytes) + unix_diag_req (24 bytes).
	req := make([]byte, 40)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], 40)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1)
	req[16] = unix.AF_UNIX
	ne.PutUint32(req[20:], 0xffffffff) // all states
	ne.PutUint32(req[28:], udiagShowName|udiagShowPeer)
	ne.PutUint32(req[32:], 0xffffffff) // no cookie
	ne.PutUint32(req[36:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []unixSocket
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(ne.Uint32(m.Data)); code != 0 {
						return nil, unix.Errno(-code)
					}
				}
				return nil, errors.New("netlink error")
			}
			if len(m.Data) < 16 {
				continue
			}
			s := unixSocket{state: m.Data[2], inode: ne.Uint32(m.Data[4:])}
			attrs := m.Data[16:]
			for len(attrs) >= 4 {
				l := int(ne.Uint16(attrs[0:]))
				typ := ne.Uint16(attrs[2:])
				if l < 4 || l > len(attrs) {
					break
				}
				val := attrs[4:l]
				switch typ {
				case unixDiagName:
					s.name = string(val)
					if len(s.name) > 0 && s.name[0] != 0 {
						s.name = strings.TrimRight(s.name, "\x00") // paths come NUL-terminated
					}
				case unixDiagPeer:
					if len(val) >= 4 {
						s.peer = ne.Uint32(val)
					}
				}
				adv := (l + 3) &^ 3
				if adv > len(attrs) {
					break
				}
				attrs = attrs[adv:]
			}
			out = append(out, s)
		}
	}
}
