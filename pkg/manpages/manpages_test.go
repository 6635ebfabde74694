package manpages_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unshim/unshim/pkg/manpages"
)

func TestMan(t *testing.T) {
	dir := t.TempDir()
	if err := manpages.Write(dir, "v0.7.1", time.Date(2025, 11, 30, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"unshim.1", "unshim-migrate-node.1", "unshim-version.1", "unshim-completion-bash.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("no man page %s: %v", page, err)
			continue
		}
		if !strings.Contains(string(b), ".TH \"UNSHIM\" \"1\" \"Nov 2025\" \"unshim v0.7.1\"") {
			t.Errorf("%s: no title line for unshim v0.7.1, Nov 2025:\n%s", page, firstLines(string(b), 3))
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "unshim-migrate-node.1"))
	if !strings.Contains(string(b), `\fB--via\fP`) || !strings.Contains(string(b), `\fB--dry-run\fP`) {
		t.Errorf("unshim-migrate-node.1 does not document --via and --dry-run")
	}
	if man, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command(man, "-l", filepath.Join(dir, "unshim-version.1"))
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=80")
		if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "unshim version") {
			t.Errorf("man -l unshim-version.1: %v\n%s", err, b)
		}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
