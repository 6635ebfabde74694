package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unshim/unshim/pkg/log"
)

// KWOKVersion is the KWOK release the scale benchmark simulates nodes with
// (sigs.k8s.io/kwok): its controller attaches to the lab's apiserver and
// keeps the Nodes it manages Ready, their Leases renewed and their pods
// Running, with no kubelet behind them.
const KWOKVersion = "v0.8.0"

// EnsureKWOK returns the kwok controller of KWOKVersion, built on first use
// from the sigs.k8s.io/kwok Go module in a throwaway module of its own and
// cached by version.
func EnsureKWOK(ctx context.Context, logger log.Logger) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "bin", "kwok-"+KWOKVersion)
	return cached(out, func() error {
		logger.V(0).Infof("building kwok %s from Go modules (once; cached in %s)", KWOKVersion, filepath.Dir(out))
		dir := filepath.Join(cache, "build", "kwok-"+KWOKVersion)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("build kwok: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module unshimkwokbuild\n\ngo 1.22\n"), 0o644); err != nil {
			return fmt.Errorf("build kwok: %w", err)
		}
		if _, err := goCmd(ctx, dir, nil, "get", "sigs.k8s.io/kwok@"+KWOKVersion); err != nil {
			return fmt.Errorf("build kwok: %w", err)
		}
		tmp := out + ".tmp"
		if _, err := goCmd(ctx, dir, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags", "-s -w", "-o", tmp, "sigs.k8s.io/kwok/cmd/kwok"); err != nil {
			return fmt.Errorf("build kwok: %w", err)
		}
		return os.Rename(tmp, out)
	})
}
