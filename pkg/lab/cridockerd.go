package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unshim/unshim/pkg/log"
)

// CRIDockerdKubeVersion is the Kubernetes release whose dockershim the lab's
// cri-dockerd is: the last one that had it.
const CRIDockerdKubeVersion = "v1.23.17"

// CRIDockerdVersion is what the lab's cri-dockerd says it is (--version),
// so that no one takes it for a Mirantis release.
const CRIDockerdVersion = "0.0.0-unshim-lab"

// EnsureCRIDockerd returns the lab's cri-dockerd: labbin/cridockerd, the
// dockershim of Kubernetes CRIDockerdKubeVersion serving CRI v1alpha2 and
// (bridged) v1 on its own socket. It is built on first use from the
// k8s.io/kubernetes module, in a throwaway module of its own, and cached by
// its source.
func EnsureCRIDockerd(ctx context.Context, logger log.Logger) (string, error) {
	src, err := labbin.ReadFile("labbin/cridockerd/main.go")
	if err != nil {
		return "", fmt.Errorf("read source of cri-dockerd: %w", err)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(src, CRIDockerdKubeVersion...))
	out := filepath.Join(cache, "bin", "unshim-lab-cri-dockerd-"+hex.EncodeToString(sum[:6]))
	return cached(out, func() error {
		logger.V(0).Infof("building the lab's cri-dockerd (the dockershim of Kubernetes %s) from Go modules (once; cached in %s)", CRIDockerdKubeVersion, filepath.Dir(out))
		dir := filepath.Join(cache, "build", "cri-dockerd-"+CRIDockerdKubeVersion)
		if err := writeKubeModule(ctx, dir, CRIDockerdKubeVersion); err != nil {
			return fmt.Errorf("build cri-dockerd: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
			return err
		}
		if _, err := goCmd(ctx, dir, nil, "mod", "tidy"); err != nil {
			return fmt.Errorf("build cri-dockerd: %w", err)
		}
		tmp := out + ".tmp"
		ldflags := "-s -w -X main.version=" + CRIDockerdVersion
		if _, err := goCmd(ctx, dir, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-tags", "unshimlab", "-ldflags", ldflags, "-o", tmp, "."); err != nil {
			return fmt.Errorf("build cri-dockerd: %w", err)
		}
		return os.Rename(tmp, out)
	})
}
