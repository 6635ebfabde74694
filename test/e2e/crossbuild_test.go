package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBuildsForWindows: unshim (and so its node agent) builds for Windows nodes.
func TestBuildsForWindows(t *testing.T) {
	out := filepath.Join(t.TempDir(), "unshim.exe")
	c := exec.Command("go", "build", "-o", out, "./cmd/unshim")
	c.Dir = "../.."
	c.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if msg, err := c.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows build: %v\n%s", err, msg)
	}
	head := make([]byte, 2)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(head); err != nil || string(head) != "MZ" {
		t.Errorf("not a Windows executable: %q %v", head, err)
	}
}
