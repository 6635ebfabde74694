package release

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestArchiveReproducible(t *testing.T) {
	date := time.Date(2025, 11, 30, 13, 40, 0, 0, time.UTC)
	files := []ArchiveFile{{"unshim", 0o755, []byte("binary")}, {"README.md", 0o644, []byte("readme")}, {"LICENSE", 0o644, []byte("license")}}
	for _, ext := range []string{".tar.gz", ".zip"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			a := Archive{Time: date, Files: files}
			first, err := a.WriteFile(filepath.Join(dir, "a"+ext))
			if err != nil {
				t.Fatal(err)
			}
			// Written later, with the files in another order: the same bytes.
			b := Archive{Time: date, Files: []ArchiveFile{files[2], files[0], files[1]}}
			time.Sleep(1100 * time.Millisecond)
			second, err := b.WriteFile(filepath.Join(dir, "b"+ext))
			if err != nil {
				t.Fatal(err)
			}
			if first != second {
				t.Errorf("same content, different archives: %s and %s", first, second)
			}
			if sum, _ := fileSHA256(filepath.Join(dir, "a"+ext)); sum != first {
				t.Errorf("WriteFile returned %s; the file's sha256 is %s", first, sum)
			}
			got := readArchive(t, filepath.Join(dir, "a"+ext))
			want := []string{"LICENSE 644 license", "README.md 644 readme", "unshim 755 binary"}
			if len(got) != len(want) {
				t.Fatalf("entries %q; want %q", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("entry %d: %q; want %q", i, got[i], want[i])
				}
			}
		})
	}
}

// readArchive lists a .tar.gz's or .zip's entries as "NAME MODE DATA".
func readArchive(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	if filepath.Ext(path) == ".zip" {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			out = append(out, f.Name+" "+modeString(f.Mode())+" "+string(data))
		}
		return out
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s owned by %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
		}
		if hdr.Typeflag != tar.TypeReg {
			t.Errorf("%s: type %c; want a regular file (krew unpacks no other)", hdr.Name, hdr.Typeflag)
		}
		data, _ := io.ReadAll(tr)
		out = append(out, hdr.Name+" "+modeString(os.FileMode(hdr.Mode))+" "+string(data))
	}
}

func modeString(m os.FileMode) string {
	return map[os.FileMode]string{0o755: "755", 0o644: "644"}[m.Perm()]
}
