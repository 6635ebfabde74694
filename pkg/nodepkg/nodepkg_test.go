package nodepkg

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/transport"
)

// fakeNode answers `test -x PATH` from the paths it has and records every
// command; other commands fail.
type fakeNode struct {
	transport.Transport
	has  map[string]bool
	ran  [][]string
	outs map[string][]byte // output of a command by its first word
}

func (f *fakeNode) Run(_ context.Context, argv ...string) ([]byte, error) {
	f.ran = append(f.ran, argv)
	if len(argv) == 3 && argv[0] == "test" && argv[1] == "-x" && f.has[argv[2]] {
		return nil, nil
	}
	if out, ok := f.outs[argv[0]]; ok {
		return out, &transport.ExecError{Argv: argv, Output: out, Err: errors.New("exit status 1")}
	}
	return nil, &transport.ExecError{Argv: argv, Err: errors.New("exit status 1")}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		has     []string
		want    Manager
		wantErr error
	}{
		{"debian", []string{"/usr/bin/apt-get", "/usr/bin/dpkg-query"}, Manager{"apt-get", Deb}, nil},
		{"rhel 8: dnf and its yum link", []string{"/usr/bin/dnf", "/usr/bin/yum", "/usr/bin/rpm"}, Manager{"dnf", RPM}, nil},
		{"centos 7: yum only", []string{"/usr/bin/yum", "/usr/bin/rpm"}, Manager{"yum", RPM}, nil},
		{"dpkg without apt-get is not apt", []string{"/usr/bin/dpkg-query", "/usr/bin/yum", "/usr/bin/rpm"}, Manager{"yum", RPM}, nil},
		{"alien's rpm on debian", []string{"/usr/bin/apt-get", "/usr/bin/dpkg-query", "/usr/bin/rpm"}, Manager{"apt-get", Deb}, nil},
		{"none", []string{"/usr/bin/rpm"}, Manager{}, ErrNoManager},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &fakeNode{has: map[string]bool{}}
			for _, p := range tt.has {
				n.has[p] = true
			}
			got, err := Detect(context.Background(), n)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Detect = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
			for _, argv := range n.ran {
				if argv[0] != "test" {
					t.Errorf("Detect ran %q: it may only look", argv)
				}
			}
		})
	}
}

func TestArgv(t *testing.T) {
	apt, dnf, yum := Manager{"apt-get", Deb}, Manager{"dnf", RPM}, Manager{"yum", RPM}
	tests := []struct {
		name string
		got  []string
		want string
	}{
		{"apt install", apt.Install("containerd"), "apt-get install -y containerd"},
		{"dnf install", dnf.Install("containerd"), "dnf install -y containerd"},
		{"apt purge", apt.Purge("docker-ce", "docker-ce-cli"), "apt-get purge -y docker-ce docker-ce-cli"},
		{"dnf remove keeps what Docker pulled in", dnf.Purge("docker-ce"), "dnf remove -y --noautoremove docker-ce"},
		{"yum remove", yum.Purge("docker-ce"), "yum remove -y --noautoremove docker-ce"},
		{"apt mark manual", apt.MarkManual("containerd.io", "runc"), "apt-mark manual containerd.io runc"},
		{"apt mark nothing", apt.MarkManual(), ""},
		{"rpm marks nothing", dnf.MarkManual("containerd.io"), ""},
		{"dpkg query", apt.QueryArgv("docker.io"), "dpkg-query -W -f ${Package} ${db:Status-Abbrev}\n -- docker.io"},
		{"rpm query", yum.QueryArgv("docker-ce"), "rpm -q --qf %{NAME} ii\n docker-ce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.got, " "); got != tt.want {
				t.Errorf("argv = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseInstalled reads the shapes dpkg-query -W and rpm -q --qf print:
// dpkg's Status-Abbrev is want/status/error ("ii " installed, "rc "
// removed with its configuration kept, "un " unknown), and rpm prints
// "package NAME is not installed" for a missing one.
func TestParseInstalled(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []string
	}{
		{"dpkg", "docker.io ii \ncontainerd rc \nrunc ii \n", []string{"docker.io", "runc"}},
		{"dpkg unknown", "dpkg-query: no packages found matching docker-ce\ncontainerd.io ii \n", []string{"containerd.io"}},
		{"dpkg held", "docker-ce hi \n", []string{}},
		{"rpm", "docker-ce ii\npackage moby-engine is not installed\ncontainerd.io ii\n", []string{"containerd.io", "docker-ce"}},
		{"empty", "", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for p := range ParseInstalled([]byte(tt.out)) {
				got = append(got, p)
			}
			slices.Sort(got)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("installed = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestInstalledRealDpkg asks this machine's dpkg (the CI machine is Debian)
// through the local transport: dpkg is installed, a made-up name is not,
// and the non-zero exit the made-up name causes is not an error.
func TestInstalledRealDpkg(t *testing.T) {
	testutil.RequireBinary(t, "dpkg-query")
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		testutil.Missing(t, "no dpkg database: %v", err)
	}
	got, err := Manager{"apt-get", Deb}.Installed(context.Background(), &transport.Local{}, "dpkg", "unshim-no-such-package")
	if err != nil {
		t.Fatal(err)
	}
	if !got["dpkg"] || got["unshim-no-such-package"] || len(got) != 1 {
		t.Errorf("installed = %v, want only dpkg", got)
	}
}

func TestInstalledCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := &fakeNode{outs: map[string][]byte{"dpkg-query": []byte("docker.io ii \n")}}
	if _, err := (Manager{"apt-get", Deb}).Installed(ctx, n, "docker.io"); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
