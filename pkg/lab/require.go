package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// FromEnv returns the running lab named by $UNSHIM_LAB (or the default
// directory), checking that its apiserver answers.
func FromEnv() (*Lab, error) {
	l, err := Load(DefaultDir())
	if err != nil {
		return nil, fmt.Errorf("%w (start one with `unshim lab up` or `make test`)", err)
	}
	if _, dead := l.Running(); len(dead) > 0 {
		return nil, fmt.Errorf("lab in %s is not running: %v stopped", l.Dir, dead)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.waitReady(ctx, 15*time.Second); err != nil {
		return nil, fmt.Errorf("lab in %s does not answer: %w", l.Dir, err)
	}
	return l, nil
}

// Require returns the running lab. Without one it skips the test, except
// under CI=true, where a missing lab fails it: CI can never pass green
// without running the lab tests.
func Require(t testing.TB) *Lab {
	t.Helper()
	l, err := FromEnv()
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
	err := CheckNodePrereqs()
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
func UpForTest(ctx context.Context, t testing.TB, name string, o Options) *Lab {
	t.Helper()
	RequireNodePrereqs(t)
	dir, err := os.MkdirTemp(filepath.Dir(DefaultDir()), "unshim-lab-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	o.Dir = dir
	l, err := Up(ctx, o)
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
