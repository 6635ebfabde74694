package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/unshim/unshim", Version: "v0.0.0-20251130134000-3a705e1abcde+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "3a705e1abcdef0123456789abcdef0123456789a"},
			{Key: "vcs.time", Value: "2025-11-30T13:40:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	stamp := Stamp{Version: "v1.2.3", GitCommit: "0123456789abcdef0123456789abcdef01234567", GitTreeState: "clean", BuildDate: "2025-12-01T00:00:00Z"}
	tests := []struct {
		name  string
		bi    *debug.BuildInfo
		stamp Stamp
		want  Info
	}{
		{"stamped wins over the build info", vcs, stamp,
			Info{Version: "v1.2.3", GitCommit: stamp.GitCommit, GitTreeState: "clean", BuildDate: "2025-12-01T00:00:00Z", GoVersion: "go1.26.8"}},
		{"unstamped: the build info", vcs, Stamp{},
			Info{Version: "v0.0.0-20251130134000-3a705e1abcde+dirty", GitCommit: "3a705e1abcdef0123456789abcdef0123456789a", GitTreeState: "dirty", BuildDate: "2025-11-30T13:40:00Z", GoVersion: "go1.26.8"}},
		{"go install @version, no VCS", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v0.3.0"}}, Stamp{},
			Info{Version: "v0.3.0", GitCommit: Unknown, GitTreeState: Unknown, BuildDate: Unknown, GoVersion: "go1.26.1"}},
		{"(devel) without VCS", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, Stamp{},
			Info{Version: Unknown, GitCommit: Unknown, GitTreeState: Unknown, BuildDate: Unknown, GoVersion: runtime.Version()}},
		{"no build info", nil, Stamp{Version: "v9.9.9"},
			Info{Version: "v9.9.9", GitCommit: Unknown, GitTreeState: Unknown, BuildDate: Unknown, GoVersion: runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Compiler = runtime.Compiler
			tt.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got := get(tt.bi, tt.stamp); got != tt.want {
				t.Errorf("get = %+v\nwant  %+v", got, tt.want)
			}
		})
	}
}

func TestLDFlags(t *testing.T) {
	got := strings.Join(LDFlags(Stamp{Version: "v1.0.0", BuildDate: "2025-12-01T00:00:00Z"}), " ")
	want := "-X github.com/unshim/unshim/pkg/version.version=v1.0.0 -X github.com/unshim/unshim/pkg/version.buildDate=2025-12-01T00:00:00Z"
	if got != want {
		t.Errorf("LDFlags = %q; want %q", got, want)
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "v1.0.0", GitCommit: "0123456789abcdef0123", GitTreeState: "dirty", BuildDate: "2025-12-01T00:00:00Z", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	if got, want := i.String(), "v1.0.0 (commit 0123456789ab-dirty, built 2025-12-01T00:00:00Z, go1.26.8 linux/amd64)"; got != want {
		t.Errorf("String = %q; want %q", got, want)
	}
}
