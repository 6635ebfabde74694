// Package testutil holds what unshim's tests share: the rule that a missing
// real dependency skips a test on a laptop but fails it under CI=true.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// InCI tells whether the tests run in CI (CI=true), where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test because of why, or fails it under CI=true.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("required in CI: "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// RequireBinary returns the path of the program name, or skips the test
// (fails it under CI=true) when it is not installed.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed (see hack/apt-packages.txt): %v", name, err)
	}
	return p
}

// RequireRoot skips the test (fails it under CI=true) unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}
