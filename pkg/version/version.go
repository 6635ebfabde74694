// Package version owns what unshim says about its own build: the release
// version, git commit, build date, Go version and platform. A release build
// stamps them with -ldflags -X (see LDFlags); an unstamped build reads what
// the Go toolchain recorded in the binary (runtime/debug.ReadBuildInfo).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped at build time with -ldflags "-X ...". Empty in an unstamped build.
var (
	version      string
	gitCommit    string
	gitTreeState string
	buildDate    string
)

// Info is the version of this unshim binary.
type Info struct {
	Version      string `json:"version"`
	GitCommit    string `json:"gitCommit"`
	GitTreeState string `json:"gitTreeState"`
	BuildDate    string `json:"buildDate"`
	GoVersion    string `json:"goVersion"`
	Compiler     string `json:"compiler"`
	Platform     string `json:"platform"`
}

// Unknown is what a field holds when neither a stamp nor the build info has it.
const Unknown = "unknown"

// Get returns the version of the running binary: the stamped values, else
// what the Go toolchain recorded (the module version of `go install
// ...@vX.Y.Z`, the VCS revision, commit time and modified flag of a build
// inside a git checkout).
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(bi, Stamp{Version: version, GitCommit: gitCommit, GitTreeState: gitTreeState, BuildDate: buildDate})
}

// Stamp holds the values a release build writes into the binary.
type Stamp struct {
	Version      string
	GitCommit    string
	GitTreeState string
	BuildDate    string
}

// LDFlags returns the -ldflags arguments that stamp s into a binary
// linking this package (one -X per non-empty value).
func LDFlags(s Stamp) []string {
	const pkg = "github.com/unshim/unshim/pkg/version."
	var out []string
	for _, kv := range [][2]string{{"version", s.Version}, {"gitCommit", s.GitCommit}, {"gitTreeState", s.GitTreeState}, {"buildDate", s.BuildDate}} {
		if kv[1] != "" {
			out = append(out, "-X", pkg+kv[0]+"="+kv[1])
		}
	}
	return out
}

func get(bi *debug.BuildInfo, s Stamp) Info {
	info := Info{
		Version:      s.Version,
		GitCommit:    s.GitCommit,
		GitTreeState: s.GitTreeState,
		BuildDate:    s.BuildDate,
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		var modified string
		for _, st := range bi.Settings {
			switch st.Key {
			case "vcs.revision":
				if info.GitCommit == "" {
					info.GitCommit = st.Value
				}
			case "vcs.time":
				if info.BuildDate == "" {
					info.BuildDate = st.Value
				}
			case "vcs.modified":
				modified = st.Value
			}
		}
		if info.GitTreeState == "" && info.GitCommit != "" {
			switch modified {
			case "true":
				info.GitTreeState = "dirty"
			case "false":
				info.GitTreeState = "clean"
			}
		}
	}
	for _, f := range []*string{&info.Version, &info.GitCommit, &info.GitTreeState, &info.BuildDate} {
		if *f == "" {
			*f = Unknown
		}
	}
	return info
}

// String is the one line `unshim --version` prints.
func (i Info) String() string {
	commit := i.GitCommit
	if len(commit) > 12 && !strings.ContainsAny(commit, "-+") {
		commit = commit[:12]
	}
	if i.GitTreeState == "dirty" {
		commit += "-dirty"
	}
	return fmt.Sprintf("%s (commit %s, built %s, %s %s)", i.Version, commit, i.BuildDate, i.GoVersion, i.Platform)
}
