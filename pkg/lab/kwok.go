package lab

import (
	"bytes"
	"context"
	"encoding/json"
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

// kwokStages are kwok's own stage files (its module's kustomize/stage tree)
// the benchmark runs with: nodes initialized Ready, then heartbeats with a
// Lease; pods made Running, completed, and deleted once evicted. kwok 0.8
// without --config finds no stages and exits ("no stages found").
var kwokStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

// EnsureKWOKStages returns a kwok --config file holding kwok's default
// node and pod stages, written into the cache from the KWOKVersion module
// (downloaded by the module proxy, as the build does).
func EnsureKWOKStages(ctx context.Context) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "build", "kwok-"+KWOKVersion+"-stages.yaml")
	return cached(out, func() error {
		dir := filepath.Join(cache, "build", "kwok-"+KWOKVersion)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		dl, err := goCmd(ctx, dir, nil, "mod", "download", "-json", "sigs.k8s.io/kwok@"+KWOKVersion)
		if err != nil {
			return fmt.Errorf("kwok stages: %w", err)
		}
		var info struct{ Dir, Error string }
		if err := json.Unmarshal(dl, &info); err != nil {
			return fmt.Errorf("kwok stages: parse go mod download output: %w", err)
		}
		if info.Error != "" {
			return fmt.Errorf("kwok stages: download sigs.k8s.io/kwok@%s: %s", KWOKVersion, info.Error)
		}
		var all bytes.Buffer
		for _, f := range kwokStages {
			data, err := os.ReadFile(filepath.Join(info.Dir, filepath.FromSlash(f)))
			if err != nil {
				return fmt.Errorf("kwok stages: %w", err)
			}
			all.WriteString("---\n")
			all.Write(data)
			if !bytes.HasSuffix(data, []byte("\n")) {
				all.WriteString("\n")
			}
		}
		tmp := out + ".tmp"
		if err := os.WriteFile(tmp, all.Bytes(), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, out)
	})
}
