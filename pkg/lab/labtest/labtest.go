// Package labtest is what tests use of the lab: the rule that a missing lab
// skips a test on a laptop but fails it under CI=true, and a lab of a test's
// own. It imports testing, so only tests import it: the unshim binary never
// links the test framework.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/unshim/unshim/pkg/lab"
)

// Require returns the running lab. Without one it skips the test, except
// under CI=true, where a missing lab fails it: CI can never pass green
// without running the lab tests.
func Require(t testing.TB) *lab.Lab {
	t.Helper()
	l, err := lab.FromEnv()
	if err == nil {
		return l
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("lab required in CI: %v", err)
	}
	t.Skipf("no lab: %v", err)
	return nil
}

// RequireNodePrereqs skips the test when this machine cannot run lab nodes
// (root, systemd-nspawn, nsenter, debootstrap, Go, etcd), except under
// CI=true, where it fails it.
func RequireNodePrereqs(t testing.TB) {
	t.Helper()
	err := lab.CheckNodePrereqs()
	if err == nil {
		if _, lerr := exec.LookPath("etcd"); lerr != nil {
			err = fmt.Errorf("etcd not found: install hack/apt-packages.txt")
		}
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("lab nodes required in CI: %v", err)
	}
	t.Skipf("no lab nodes here: %v", err)
}

// UpForTest checks the node prerequisites (RequireNodePrereqs), brings up a
// lab of the test's own in a fresh directory beside the default one (name
// says whose it is), and takes it down when the test ends.
func UpForTest(ctx context.Context, t testing.TB, name string, o lab.Options) *lab.Lab {
	t.Helper()
	RequireNodePrereqs(t)
	dir, err := os.MkdirTemp(filepath.Dir(lab.DefaultDir()), "unshim-lab-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	o.Dir = dir
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}
