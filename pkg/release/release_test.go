package release_test

import (
	"bytes"
	"context"
	"debug/elf"
	"debug/pe"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/release"
	"github.com/unshim/unshim/pkg/version"
)

// krewVersion is the krew release whose manifest validator and installer
// check the manifest (sigs.k8s.io/krew, built from the module proxy).
const krewVersion = "v0.4.3"

func stamp() version.Stamp {
	return version.Stamp{Version: "v0.7.1-rc.1", GitCommit: "0123456789abcdef0123456789abcdef01234567", GitTreeState: "clean", BuildDate: "2025-11-30T13:40:00Z"}
}

func options(t *testing.T, out string, platforms ...release.Platform) release.Options {
	return release.Options{Dir: "../..", License: "testdata/LICENSE", Out: out, Stamp: stamp(), Platforms: platforms, Log: testWriter{t}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRelease builds the release as `make release` does and checks what a
// user gets: each archive unpacks to a binary for its platform (the
// linux/amd64 one runs here and reports the stamped version), SHA256SUMS
// lists the archives, krew's own validator accepts the manifest and krew
// installs the plugin from each archive, and building again gives the same
// bytes.
func TestRelease(t *testing.T) {
	testutil.RequireBinary(t, "go")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	out := t.TempDir()
	start := time.Now()
	res, err := release.Build(ctx, options(t, out))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("release for %d platforms in %s", len(res.Archives), time.Since(start).Round(time.Second))
	if len(res.Archives) != 3 {
		t.Fatalf("%d archives; want linux/amd64, linux/arm64, windows/amd64", len(res.Archives))
	}
	sums, err := os.ReadFile(res.Checksums)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Archives {
		a := a
		t.Run(a.Platform.String(), func(t *testing.T) {
			if !strings.Contains(string(sums), a.SHA256+"  "+a.File+"\n") {
				t.Errorf("SHA256SUMS lacks %s:\n%s", a.File, sums)
			}
			dir := unpack(t, filepath.Join(out, a.File))
			for _, f := range []string{"LICENSE", "README.md"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("archive lacks %s: %v", f, err)
				}
			}
			bin := filepath.Join(dir, a.Platform.Exe())
			switch a.Platform {
			case release.Platform{OS: "windows", Arch: "amd64"}:
				f, err := pe.Open(bin)
				if err != nil {
					t.Fatalf("%s is not a PE file: %v", a.Platform.Exe(), err)
				}
				defer f.Close()
				if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
					t.Errorf("PE machine %#x; want amd64", f.Machine)
				}
			case release.Platform{OS: "linux", Arch: "arm64"}:
				f, err := elf.Open(bin)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if f.Machine != elf.EM_AARCH64 {
					t.Errorf("ELF machine %v; want AArch64", f.Machine)
				}
			case release.Platform{OS: "linux", Arch: "amd64"}:
				checkVersion(t, bin, "linux/amd64")
				// The completion helper kubectl runs: the binary linked by that name, as README says.
				if err := os.Symlink(a.Platform.Exe(), filepath.Join(dir, "kubectl_complete-unshim")); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(filepath.Join(dir, "kubectl_complete-unshim"), "migrate", "node", "n1", "--to", "")
				if b, err := cmd.Output(); err != nil || !strings.Contains(string(b), "cri-dockerd") {
					t.Errorf("kubectl_complete-unshim: %v: %s", err, b)
				}
			}
		})
	}

	t.Run("krew manifest", func(t *testing.T) {
		checkKrewManifest(ctx, t, res, out)
	})

	t.Run("reproducible", func(t *testing.T) {
		again, err := release.Build(ctx, options(t, t.TempDir(), release.Platform{OS: "linux", Arch: "amd64"}))
		if err != nil {
			t.Fatal(err)
		}
		if again.Archives[0].SHA256 != res.Archives[0].SHA256 {
			first, _ := os.ReadFile(filepath.Join(out, "build", "linux-amd64", "unshim"))
			second, _ := os.ReadFile(filepath.Join(again.Manifest, "..", "build", "linux-amd64", "unshim"))
			t.Errorf("the same commit built twice: archives %s and %s (binaries equal: %t)", res.Archives[0].SHA256, again.Archives[0].SHA256, bytes.Equal(first, second))
		}
	})
}

// checkVersion runs bin version -o json and compares it with the stamp.
func checkVersion(t *testing.T, bin, platform string) {
	t.Helper()
	b, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	var got version.Info
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, b)
	}
	s := stamp()
	want := version.Info{Version: s.Version, GitCommit: s.GitCommit, GitTreeState: s.GitTreeState, BuildDate: s.BuildDate, GoVersion: got.GoVersion, Compiler: "gc", Platform: platform}
	if got != want || !strings.HasPrefix(got.GoVersion, "go1.") {
		t.Errorf("version -o json = %+v\nwant %+v", got, want)
	}
	line, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(line), "unshim "+s.Version+" (commit 0123456789ab, built "+s.BuildDate) {
		t.Errorf("--version: %q %v", line, err)
	}
}

// checkKrewManifest validates the manifest with krew's validate-krew-manifest
// (krew's internal/index/validation rules: apiVersion, kind, name, semver
// version, a sha256 per platform, selectors on os/arch only, no two
// platforms for one os/arch) and installs the plugin from each archive with
// krew itself (`krew install --manifest --archive`, KREW_OS/KREW_ARCH for
// the other platforms), as krew's developer guide tests a plugin locally.
func checkKrewManifest(ctx context.Context, t *testing.T, res *release.Result, out string) {
	data, err := os.ReadFile(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Spec struct {
			Version   string `json:"version"`
			Platforms []struct {
				URI, SHA256, Bin string
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Version != stamp().Version || len(m.Spec.Platforms) != len(res.Archives) {
		t.Fatalf("manifest version %s with %d platforms:\n%s", m.Spec.Version, len(m.Spec.Platforms), data)
	}
	for i, p := range m.Spec.Platforms {
		if want := release.DefaultBaseURI + "/" + res.Archives[i].File; p.URI != want || p.SHA256 != res.Archives[i].SHA256 {
			t.Errorf("platform %d: uri %s sha256 %s; want %s %s", i, p.URI, p.SHA256, want, res.Archives[i].SHA256)
		}
	}
	validator, krew := krewBinaries(ctx, t)
	if b, err := exec.CommandContext(ctx, validator, "-manifest", res.Manifest, "-skip-install").CombinedOutput(); err != nil {
		t.Fatalf("krew's validate-krew-manifest: %v\n%s", err, b)
	}
	// The validator must be able to fail: a manifest with a platform twice.
	bad := filepath.Join(t.TempDir(), "unshim.yaml")
	doubled := strings.Replace(string(data), "platforms:\n", "platforms:\n"+platformBlock(t, data), 1)
	if err := os.WriteFile(bad, []byte(doubled), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.CommandContext(ctx, validator, "-manifest", bad, "-skip-install").CombinedOutput(); err == nil {
		t.Errorf("krew's validator accepted two platforms for one os/arch:\n%s", b)
	}

	for _, a := range res.Archives {
		root := t.TempDir()
		cmd := exec.CommandContext(ctx, krew, "install", "--manifest", res.Manifest, "--archive", filepath.Join(out, a.File))
		cmd.Env = append(os.Environ(), "KREW_ROOT="+root, "KREW_OS="+a.Platform.OS, "KREW_ARCH="+a.Platform.Arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("krew install for %s: %v\n%s", a.Platform, err, b)
			continue
		}
		link := filepath.Join(root, "bin", "kubectl-"+release.KrewPluginName)
		if a.Platform.OS == "windows" {
			link += ".exe"
		}
		if _, err := os.Stat(link); err != nil {
			t.Errorf("krew installed no %s for %s: %v", filepath.Base(link), a.Platform, err)
			continue
		}
		if a.Platform == (release.Platform{OS: "linux", Arch: "amd64"}) {
			b, err := exec.CommandContext(ctx, link, "--version").Output()
			if want := "kubectl unshim " + stamp().Version; err != nil || !strings.HasPrefix(string(b), want) {
				t.Errorf("krew-installed kubectl-unshim --version: %q %v; want %q...", b, err, want)
			}
		}
	}
}

// platformBlock returns the manifest's first platform entry, to repeat it.
func platformBlock(t *testing.T, manifest []byte) string {
	t.Helper()
	s := string(manifest)
	i := strings.Index(s, "platforms:\n")
	rest := s[i+len("platforms:\n"):]
	j := strings.Index(rest[1:], "\n  - ")
	if j < 0 {
		t.Fatalf("no second platform in:\n%s", s)
	}
	return rest[:j+2]
}

// krewBinaries builds krew's manifest validator and krew (release
// krewVersion) from the module proxy into the cache, once.
func krewBinaries(ctx context.Context, t *testing.T) (string, string) {
	t.Helper()
	cache, err := lab.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "bin", "krew-"+krewVersion)
	validator, krew := filepath.Join(dir, "validate-krew-manifest"), filepath.Join(dir, "krew")
	if _, err := os.Stat(krew); err == nil {
		if _, err := os.Stat(validator); err == nil {
			return validator, krew
		}
	}
	cmd := exec.CommandContext(ctx, "go", "install", "sigs.k8s.io/krew/cmd/validate-krew-manifest@"+krewVersion, "sigs.k8s.io/krew/cmd/krew@"+krewVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		testutil.Missing(t, "build krew %s from the module proxy: %v\n%s", krewVersion, err, b)
	}
	return validator, krew
}

// unpack extracts a release archive with the system's tar or Go's zip
// reader into a new directory.
func unpack(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	if strings.HasSuffix(archive, ".zip") {
		if err := unzip(archive, dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if b, err := exec.Command("tar", "-xzf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf %s: %v\n%s", filepath.Base(archive), err, b)
	}
	return dir
}
