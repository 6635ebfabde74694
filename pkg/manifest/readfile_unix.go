//go:build unix

package manifest

import (
	"io/fs"
	"syscall"
)

// readInto reads file f into buf's space when it fits: open, fstat, one
// read of the size fstat gave, close. It calls the system directly, as
// os.Open would add a second fstat (to decide whether the file can be
// polled) and an *os.File with a cleanup for each of thousands of files.
func readInto(f string, buf []byte) ([]byte, error) {
	fd, err := retry(func() (int, error) { return syscall.Open(f, syscall.O_RDONLY|syscall.O_CLOEXEC, 0) })
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: f, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if _, err := retry(func() (int, error) { return 0, syscall.Fstat(fd, &st) }); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: f, Err: err}
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil, &fs.PathError{Op: "read", Path: f, Err: syscall.EISDIR}
	}
	size := int(st.Size)
	if cap(buf) < size+1 {
		buf = make([]byte, 0, max(size+1, 2*cap(buf), 16<<10))
	}
	buf = buf[:0]
	for {
		n, err := retry(func() (int, error) { return syscall.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: f, Err: err}
		}
		buf = buf[:len(buf)+n]
		if n == 0 || len(buf) == size {
			return buf, nil // the end, or the size fstat gave: no read to confirm it
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // the file grew: make room
		}
	}
}

// retry calls fn again while it is interrupted by a signal.
func retry(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if err != syscall.EINTR {
			return n, err
		}
	}
}
