package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/unshim/unshim/pkg/log"
)

// DefaultContainerdVersion is the containerd 2.x the tests build from the
// github.com/containerd/containerd/v2 Go module (the module proxy serves it;
// Debian 12 ships only containerd 1.6).
const DefaultContainerdVersion = "v2.2.0"

// EnsureContainerd returns the path of a containerd binary of version (a
// v2.x tag), building it from the github.com/containerd/containerd/v2 Go
// module into the cache on first use (about a minute with a warm module
// cache). Later calls find it in the cache.
func EnsureContainerd(ctx context.Context, logger log.Logger, version string) (string, error) {
	if !strings.HasPrefix(version, "v2.") {
		return "", fmt.Errorf("containerd version %q: want v2.MINOR.PATCH (1.x comes from Debian)", version)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "bin", "containerd-"+version)
	return cached(out, func() error {
		logger.V(0).Infof("building containerd %s from Go modules (once; cached in %s)", version, filepath.Dir(out))
		dir := filepath.Join(cache, "build", "containerd-"+version)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		mod := fmt.Sprintf("module unshimcontainerdbuild\n\ngo 1.23\n\nrequire github.com/containerd/containerd/v2 %s\n", version)
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
			return err
		}
		tools := "//go:build tools\n\npackage unshimcontainerdbuild\n\nimport _ \"github.com/containerd/containerd/v2/cmd/containerd\"\n"
		if err := os.WriteFile(filepath.Join(dir, "tools.go"), []byte(tools), 0o644); err != nil {
			return err
		}
		if _, err := goCmd(ctx, dir, nil, "mod", "tidy"); err != nil {
			return fmt.Errorf("build containerd %s: %w", version, err)
		}
		ldflags := "-s -w -X github.com/containerd/containerd/v2/version.Version=" + version
		tmp := out + ".tmp"
		// btrfs, devmapper and zfs need cgo headers; the lab uses overlayfs and native.
		if _, err := goCmd(ctx, dir, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-tags", "no_btrfs no_devmapper no_zfs",
			"-ldflags", ldflags, "-o", tmp, "github.com/containerd/containerd/v2/cmd/containerd"); err != nil {
			return fmt.Errorf("build containerd %s: %w", version, err)
		}
		if err := os.Rename(tmp, out); err != nil {
			return err
		}
		return nil
	})
}
