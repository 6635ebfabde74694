package nodefiles

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/transport"
)

// Mirror runs the real tar of this machine (as it would on a node over SSH)
// and must copy what is there and nothing of the CNI plugins' content.
func TestMirrorCopiesTheNodeConfiguration(t *testing.T) {
	testutil.RequireBinary(t, "tar")
	dir := t.TempDir()
	if err := Mirror(context.Background(), &transport.Local{}, dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/default", "/etc/hostname", "/etc/fstab", KernelRelease, "/proc/1/mounts"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s not mirrored: %v", p, err)
		}
	}
	if want, err := os.ReadFile(KernelRelease); err == nil {
		if got, _ := os.ReadFile(filepath.Join(dir, KernelRelease)); string(got) != string(want) {
			t.Errorf("mirrored %s = %q, want %q", KernelRelease, got, want)
		}
	}
	if _, err := os.Stat("/opt/cni/bin"); err == nil {
		want, _ := os.ReadDir("/opt/cni/bin")
		entries, err := os.ReadDir(filepath.Join(dir, "opt/cni/bin"))
		if err != nil || len(entries) != len(want) {
			t.Fatalf("/opt/cni/bin mirrored with %d entries (%v); want the %d names", len(entries), err, len(want))
		}
		for _, e := range entries {
			if st, _ := e.Info(); st.Size() != 0 {
				t.Errorf("plugin %s copied with its content (%d bytes); want the name only", e.Name(), st.Size())
			}
		}
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../evil", "etc/../../evil"} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("x"))
		tw.Close()
		dir := t.TempDir()
		err := extract(&b, filepath.Join(dir, "m"))
		// path.Clean("/"+name) keeps it inside: the file lands in the mirror, never above it.
		if _, serr := os.Stat(filepath.Join(dir, "evil")); serr == nil {
			t.Errorf("%q escaped the mirror (err %v)", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "leaves") {
			t.Errorf("%q: %v", name, err)
		}
	}
}
