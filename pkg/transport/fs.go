package transport

import (
	"io/fs"
	"os"
)

// FileSystem is a transport whose node file system can be read from here as
// an fs.FS (Local, Nsenter). A transport without it (SSH) is read through a
// copy of the node's files (nodefiles.Open).
type FileSystem interface {
	FS() fs.FS
}

// DirFS is the file system of a node visible at root on this machine (the
// node's own /, a mount, /proc/PID/root, a copy), as an fs.FS of the node's
// paths without their leading slash. Symlinks are followed inside root the way
// the node follows them (Resolve): unlike os.DirFS, an absolute link such as
// /var/run -> /run never leads out to this machine's own files.
func DirFS(root string) fs.FS { return rootFS(root) }

type rootFS string

var (
	_ fs.ReadFileFS = rootFS("")
	_ fs.ReadDirFS  = rootFS("")
	_ fs.StatFS     = rootFS("")
)

// host is the path on this machine of the node path name.
func (r rootFS) host(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p, err := Resolve(string(r), "/"+name)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	return p, nil
}

func (r rootFS) Open(name string) (fs.File, error) {
	p, err := r.host("open", name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

func (r rootFS) ReadFile(name string) ([]byte, error) {
	p, err := r.host("read", name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

func (r rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := r.host("readdir", name)
	if err != nil {
		return nil, err
	}
	return os.ReadDir(p)
}

func (r rootFS) Stat(name string) (fs.FileInfo, error) {
	p, err := r.host("stat", name)
	if err != nil {
		return nil, err
	}
	return os.Stat(p)
}

// FS is the node's file system under Root (or this machine's /).
func (l *Local) FS() fs.FS { return DirFS(l.LocalRoot()) }

// FS is the target's file system, through /proc/PID/root.
func (n *Nsenter) FS() fs.FS { return DirFS(n.root()) }
