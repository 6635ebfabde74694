package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestBinaryLinksNoTestFramework: test helpers stay out of the product (a
// package of the binary importing testing would ship the test framework).
func TestBinaryLinksNoTestFramework(t *testing.T) {
	c := exec.Command("go", "list", "-deps", "./cmd/unshim")
	c.Dir = "../.."
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "testing" || strings.HasSuffix(p, "/labtest") || strings.HasSuffix(p, "/testutil") {
			t.Errorf("unshim links %s", p)
		}
	}
}
