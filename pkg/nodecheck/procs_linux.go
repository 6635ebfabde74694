package nodecheck

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

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
