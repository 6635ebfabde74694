package release

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ArchiveFile is a regular file in an archive.
type ArchiveFile struct {
	Name string
	Mode os.FileMode
	Data []byte
}

// Archive is a release archive's content. Entries are written in name
// order, owned by root, all with Time, and the gzip header carries no name
// or time: the same content always gives the same bytes.
type Archive struct {
	Time  time.Time
	Files []ArchiveFile
}

// WriteFile writes the archive to path, as a zip when path ends in .zip and
// a gzip tar otherwise, and returns its hex sha256.
func (a Archive) WriteFile(path string) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(path, ".zip") {
		err = a.writeZip(f)
	} else {
		err = a.writeTarGz(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return fileSHA256(path)
}

func (a Archive) sorted() []ArchiveFile {
	files := append([]ArchiveFile(nil), a.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files
}

func (a Archive) writeTarGz(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	mtime := a.Time.UTC().Truncate(time.Second)
	for _, f := range a.sorted() {
		hdr := &tar.Header{Name: f.Name, Typeflag: tar.TypeReg, Mode: int64(f.Mode.Perm()), Size: int64(len(f.Data)),
			ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func (a Archive) writeZip(w io.Writer) error {
	zw := zip.NewWriter(w)
	for _, f := range a.sorted() {
		hdr := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: a.Time.UTC().Truncate(time.Second)}
		hdr.SetMode(f.Mode)
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.Data); err != nil {
			return err
		}
	}
	return zw.Close()
}
