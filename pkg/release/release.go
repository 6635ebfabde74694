// Package release owns unshim's release artifacts: stamped, reproducible
// binaries for each platform, their archives with LICENSE and README and
// the sha256 list, the krew plugin manifest generated from those archives,
// and the agent image. hack/release is its command line (`make release`,
// `make agent-image`, `make man`; the man pages come from pkg/manpages).
package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/unshim/unshim/pkg/version"
)

// Platform is a GOOS/GOARCH pair a release is built for.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Exe is the binary's file name on the platform.
func (p Platform) Exe() string {
	if p.OS == "windows" {
		return "unshim.exe"
	}
	return "unshim"
}

// DefaultPlatforms are the platforms `make release` builds.
func DefaultPlatforms() []Platform {
	return []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}}
}

// ParsePlatform reads "os/arch".
func ParsePlatform(s string) (Platform, error) {
	goos, arch, ok := strings.Cut(s, "/")
	if !ok || goos == "" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("platform %q: want OS/ARCH, e.g. linux/amd64", s)
	}
	return Platform{goos, arch}, nil
}

// Options say what a release is built from and where it goes.
type Options struct {
	// Dir is the repository root (holding go.mod, LICENSE, README.md).
	Dir string
	// License is the license file archived with each binary; Dir/LICENSE
	// when empty.
	License string
	// Out is the directory the artifacts are written to (created).
	Out string
	// Stamp is what the binaries report in `unshim version`. Its BuildDate
	// (RFC 3339) is also every archive entry's time, so that the same commit
	// gives the same bytes.
	Stamp version.Stamp
	// Platforms to build; DefaultPlatforms when empty.
	Platforms []Platform
	// BaseURI is where the archives will be downloaded from, written into
	// the krew manifest before each archive's name. The default,
	// DefaultBaseURI, is a template krew-release-bot fills at publish time.
	BaseURI string
	// Go is the go command; "go" when empty.
	Go string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// DefaultBaseURI is the krew manifest's download location until publish
// time: GitHub releases of the tag, as a krew-release-bot template.
const DefaultBaseURI = "https://github.com/unshim/unshim/releases/download/{{ .TagName }}"

// semverRE is the version form krew accepts (a "v", then semantic versioning).
var semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// Validate checks the options before anything is built.
func (o *Options) Validate() error {
	if !semverRE.MatchString(o.Stamp.Version) {
		return fmt.Errorf("version %q: want a semantic version with a v prefix (v1.2.3, v0.0.0-abc123), as krew requires", o.Stamp.Version)
	}
	if _, err := time.Parse(time.RFC3339, o.Stamp.BuildDate); err != nil {
		return fmt.Errorf("build date %q: want RFC 3339: %w", o.Stamp.BuildDate, err)
	}
	if o.Stamp.GitCommit == "" {
		return errors.New("no git commit to stamp")
	}
	for _, f := range []string{filepath.Join(o.Dir, "go.mod"), filepath.Join(o.Dir, "README.md"), o.license()} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("a release needs %s: %w", f, err)
		}
	}
	if o.Out == "" {
		return errors.New("no output directory")
	}
	return nil
}

func (o *Options) license() string {
	if o.License == "" {
		return filepath.Join(o.Dir, "LICENSE")
	}
	return o.License
}

func (o *Options) platforms() []Platform {
	if len(o.Platforms) == 0 {
		return DefaultPlatforms()
	}
	return o.Platforms
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// BuildBinary builds unshim for p, stamped, statically linked and without
// paths or a build ID of this machine, into out.
func (o *Options) BuildBinary(ctx context.Context, p Platform, out string) error {
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	ldflags := append([]string{"-s", "-w", "-buildid="}, version.LDFlags(o.Stamp)...)
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", strings.Join(ldflags, " "), "-o", out, "./cmd/unshim"}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", p, err, b)
	}
	return nil
}

// Artifact is one release file.
type Artifact struct {
	Platform Platform `json:"platform"`
	// File is the archive's name in Out.
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Result lists what a release wrote.
type Result struct {
	Archives []Artifact
	// Manifest is the krew plugin manifest's path.
	Manifest string
	// Checksums is the sha256 list's path (sha256sum format).
	Checksums string
}

// Build builds every platform's binary, archives it with LICENSE and
// README.md, lists the archives' sha256 in SHA256SUMS and writes the krew
// manifest unshim.yaml for them.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	date, _ := time.Parse(time.RFC3339, o.Stamp.BuildDate)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	license, err := os.ReadFile(o.license())
	if err != nil {
		return nil, err
	}
	readme, err := os.ReadFile(filepath.Join(o.Dir, "README.md"))
	if err != nil {
		return nil, err
	}
	res := &Result{}
	var sums strings.Builder
	for _, p := range o.platforms() {
		start := time.Now()
		bin := filepath.Join(o.Out, "build", p.OS+"-"+p.Arch, p.Exe())
		if err := o.BuildBinary(ctx, p, bin); err != nil {
			return nil, err
		}
		exe, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		a := Archive{Time: date, Files: []ArchiveFile{
			{Name: p.Exe(), Mode: 0o755, Data: exe},
			{Name: "LICENSE", Mode: 0o644, Data: license},
			{Name: "README.md", Mode: 0o644, Data: readme},
		}}
		name := fmt.Sprintf("unshim-%s-%s-%s", o.Stamp.Version, p.OS, p.Arch)
		// No symbolic links (kubectl_complete-unshim would be one): krew
		// v0.4.3 refuses to unpack a tar that holds one ("unable to handle
		// file type 50").
		if p.OS == "windows" {
			name += ".zip"
		} else {
			name += ".tar.gz"
		}
		sum, err := a.WriteFile(filepath.Join(o.Out, name))
		if err != nil {
			return nil, fmt.Errorf("archive for %s: %w", p, err)
		}
		res.Archives = append(res.Archives, Artifact{Platform: p, File: name, SHA256: sum})
		fmt.Fprintf(&sums, "%s  %s\n", sum, name)
		o.logf("%s  %s (%s)", sum, name, time.Since(start).Round(time.Second))
	}
	res.Checksums = filepath.Join(o.Out, "SHA256SUMS")
	if err := os.WriteFile(res.Checksums, []byte(sums.String()), 0o644); err != nil {
		return nil, err
	}
	base := o.BaseURI
	if base == "" {
		base = DefaultBaseURI
	}
	manifest, err := KrewManifest(o.Stamp.Version, strings.TrimSuffix(base, "/"), res.Archives)
	if err != nil {
		return nil, err
	}
	res.Manifest = filepath.Join(o.Out, KrewPluginName+".yaml")
	if err := os.WriteFile(res.Manifest, manifest, 0o644); err != nil {
		return nil, err
	}
	o.logf("krew manifest %s", res.Manifest)
	return res, nil
}

// fileSHA256 returns the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
