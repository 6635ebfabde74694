package dockerpurge

import (
	"strings"
	"testing"

	"github.com/unshim/unshim/pkg/nodepkg"
)

// TestDataStepsKeepContainerdRoot: `--remove-data` never deletes
// containerd's root, which `unshim convert` puts inside Docker's data root
// when that is its own disk (DATAROOT/containerd).
func TestDataStepsKeepContainerdRoot(t *testing.T) {
	tests := []struct {
		name    string
		root    string
		want    []string // argv of each step, joined
		wantErr string
	}{
		{"default root", "/var/lib/containerd", []string{
			"rm -rf --one-file-system -- /var/lib/docker", "rm -rf --one-file-system -- /etc/docker"}, ""},
		{"root inside Docker's disk", "/var/lib/docker/containerd", []string{
			"find /var/lib/docker -mindepth 1 -maxdepth 1 ! -name containerd -exec rm -rf --one-file-system -- {} +",
			"rm -rf --one-file-system -- /etc/docker"}, ""},
		{"root deeper inside", "/var/lib/docker/disk/containerd", []string{
			"find /var/lib/docker -mindepth 1 -maxdepth 1 ! -name disk -exec rm -rf --one-file-system -- {} +",
			"rm -rf --one-file-system -- /etc/docker"}, ""},
		{"root is Docker's data root", "/var/lib/docker", nil, "containerd's root /var/lib/docker"},
		{"root above it", "/var", nil, "containerd's root /var"},
		{"a sibling with the same prefix", "/var/lib/docker-containerd", []string{
			"rm -rf --one-file-system -- /var/lib/docker", "rm -rf --one-file-system -- /etc/docker"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := dataSteps(DataPaths, tt.root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range steps {
				got = append(got, strings.Join(s.Argv, " "))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("steps =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestPackageSteps: containerd and runc are kept (marked manual on dpkg,
// left alone by rpm's --noautoremove), and only Docker's installed packages
// are removed, with the node's own package manager.
func TestPackageSteps(t *testing.T) {
	apt, dnf := nodepkg.Manager{Name: "apt-get", Family: nodepkg.Deb}, nodepkg.Manager{Name: "dnf", Family: nodepkg.RPM}
	tests := []struct {
		name      string
		pm        nodepkg.Manager
		installed []string
		want      []string
	}{
		{"debian docker.io", apt, []string{"docker.io", "containerd", "runc"}, []string{
			"apt-mark manual containerd runc", "apt-get purge -y docker.io"}},
		{"docker-ce on debian", apt, []string{"docker-ce", "docker-ce-cli", "containerd.io"}, []string{
			"apt-mark manual containerd.io", "apt-get purge -y docker-ce docker-ce-cli"}},
		{"docker-ce on rhel", dnf, []string{"docker-ce", "containerd.io"}, []string{"dnf remove -y --noautoremove docker-ce"}},
		{"already purged", apt, []string{"containerd"}, []string{"apt-mark manual containerd"}},
		{"nothing", dnf, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have := map[string]bool{}
			for _, p := range tt.installed {
				have[p] = true
			}
			var got []string
			for _, s := range packageSteps(tt.pm, have) {
				got = append(got, strings.Join(s.Argv, " "))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("steps =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
