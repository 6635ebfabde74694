package dockerpurge

import (
	"strings"
	"testing"
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
