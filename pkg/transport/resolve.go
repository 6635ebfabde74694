package transport

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Resolve turns a node path into a host path under root, following symlinks
// the way the node would: an absolute link target is taken from the node's
// root, and ".." never climbs above it. A mounted or copied node file system
// often holds links such as /var/run -> /run or /etc/alternatives/*, and
// following them on the host would read (or, with --write, change) the
// host's own files. Components that do not exist are kept as they are.
func Resolve(root, nodePath string) (string, error) {
	if root == "/" || root == "" {
		return path.Clean("/" + nodePath), nil
	}
	const maxLinks = 40
	links := 0
	resolved := "/"
	rest := strings.Split(path.Clean("/"+nodePath), "/")
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, part)
		host := filepath.Join(root, filepath.FromSlash(next))
		st, err := os.Lstat(host)
		if errors.Is(err, fs.ErrNotExist) {
			resolved = path.Join(append([]string{next}, rest...)...)
			break
		}
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: nodePath, Err: errors.New("too many levels of symbolic links")}
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(target, "/") {
			target = path.Join(resolved, target)
		}
		rest = append(strings.Split(path.Clean(target), "/"), rest...)
		resolved = "/"
	}
	return filepath.Join(root, filepath.FromSlash(path.Clean("/"+resolved))), nil
}
