package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/unshim/unshim/pkg/log"
)

// DefaultKubeVersion is the Kubernetes version of the lab's control plane.
// v1.30 is the newest line whose staging modules the module proxy serves and that builds here.
const DefaultKubeVersion = "v1.30.14"

// CacheDir returns where built lab binaries are kept: $UNSHIM_CACHE, else
// $XDG_CACHE_HOME/unshim, else ~/.cache/unshim. It is outside any work tree.
func CacheDir() (string, error) {
	if d := os.Getenv("UNSHIM_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory (set UNSHIM_CACHE): %w", err)
	}
	return filepath.Join(d, "unshim"), nil
}

// stagingVersion maps v1.30.14 to the staging modules' v0.30.14.
func stagingVersion(kubeVersion string) (string, error) {
	if !strings.HasPrefix(kubeVersion, "v1.") {
		return "", fmt.Errorf("kubernetes version %q: want v1.MINOR.PATCH", kubeVersion)
	}
	return "v0." + strings.TrimPrefix(kubeVersion, "v1."), nil
}

// EnsureKubeBinary returns the path of a Kubernetes component (for example
// "kube-apiserver") of kubeVersion, building it from the k8s.io/kubernetes Go
// module into the cache on first use. Later calls find it in seconds.
func EnsureKubeBinary(ctx context.Context, logger log.Logger, component, kubeVersion string) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "bin", component+"-"+kubeVersion)
	return cached(out, func() error {
		logger.V(0).Infof("building %s %s from Go modules (a few minutes, once; cached in %s)", component, kubeVersion, filepath.Dir(out))
		if err := buildKubeBinary(ctx, component, kubeVersion, filepath.Join(cache, "build", kubeVersion), out); err != nil {
			return fmt.Errorf("build %s %s: %w", component, kubeVersion, err)
		}
		return nil
	})
}

// cached returns out when it exists; otherwise it runs build, which must
// create out, under a lock on out, so concurrent callers build it once and
// later ones find it in seconds.
func cached(out string, build func() error) (string, error) {
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("create cache: %w", err)
	}
	lock, err := os.OpenFile(out+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("lock cache: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock cache: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if _, err := os.Stat(out); err == nil {
		return out, nil // built by another caller while this one waited
	}
	if err := build(); err != nil {
		return "", err
	}
	return out, nil
}

func buildKubeBinary(ctx context.Context, component, kubeVersion, dir, out string) error {
	if err := writeKubeModule(ctx, dir, kubeVersion); err != nil {
		return err
	}
	tools := fmt.Sprintf("//go:build tools\n\npackage unshimlabbuild\n\nimport _ \"k8s.io/kubernetes/cmd/%s\"\n", component)
	if err := os.WriteFile(filepath.Join(dir, "tools_"+component+".go"), []byte(tools), 0o644); err != nil {
		return err
	}
	if _, err := goCmd(ctx, dir, nil, "mod", "tidy"); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if _, err := goCmd(ctx, dir, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags", kubeLDFlags(kubeVersion), "-o", tmp, "k8s.io/kubernetes/cmd/"+component); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// kubeLDFlags stamp kubeVersion into a binary built from k8s.io/kubernetes.
func kubeLDFlags(kubeVersion string) string {
	return strings.Join([]string{
		"-s", "-w",
		"-X k8s.io/component-base/version.gitVersion=" + kubeVersion,
		"-X k8s.io/component-base/version.gitMajor=1",
		"-X k8s.io/component-base/version.gitMinor=" + strings.Split(strings.TrimPrefix(kubeVersion, "v1."), ".")[0],
		"-X k8s.io/component-base/version.gitTreeState=clean",
		"-X k8s.io/client-go/pkg/version.gitVersion=" + kubeVersion,
	}, " ")
}

// writeKubeModule writes into dir the go.mod of a throwaway module that
// requires k8s.io/kubernetes at kubeVersion, with its staging modules
// pinned to their published versions.
func writeKubeModule(ctx context.Context, dir, kubeVersion string) error {
	staging, err := stagingVersion(kubeVersion)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// k8s.io/kubernetes replaces its staging modules with local paths, so it cannot be
	// required as it is: pin each staging module to its published version instead.
	dl, err := goCmd(ctx, dir, nil, "mod", "download", "-json", "k8s.io/kubernetes@"+kubeVersion)
	if err != nil {
		return err
	}
	var info struct{ GoMod, Error string }
	if err := json.Unmarshal(dl, &info); err != nil {
		return fmt.Errorf("parse go mod download output: %w", err)
	}
	if info.Error != "" {
		return fmt.Errorf("download k8s.io/kubernetes@%s: %s", kubeVersion, info.Error)
	}
	upstream, err := os.ReadFile(info.GoMod)
	if err != nil {
		return err
	}
	var mod bytes.Buffer
	fmt.Fprintf(&mod, "module unshimlabbuild\n\ngo 1.22\n\nrequire k8s.io/kubernetes %s\n\n", kubeVersion)
	sc := bufio.NewScanner(bytes.NewReader(upstream))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "./staging/") {
			fmt.Fprintf(&mod, "replace %s => %s %s\n", f[0], f[0], staging)
		}
	}
	return os.WriteFile(filepath.Join(dir, "go.mod"), mod.Bytes(), 0o644)
}

// goCmd runs the go tool in dir and returns its stdout; a failure carries its output.
func goCmd(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, "go", args...)
	c.Dir = dir
	c.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off"), env...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 40))
	}
	return stdout.Bytes(), nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
