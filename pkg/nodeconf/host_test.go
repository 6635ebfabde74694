package nodeconf

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
)

// TestParseKernelVersion: apimachinery's generic version reads every shape
// of `uname -r` (/proc/sys/kernel/osrelease, the Node's kernelVersion) up to
// the first character after the numbers, and the 4.11 gate of unprivileged
// ports (moby#41030) compares them right.
func TestParseKernelVersion(t *testing.T) {
	tests := []struct {
		release    string
		want       string // "" for an error
		atLeast411 bool
	}{
		{"4.9.0-19-amd64", "4.9.0", false},                  // Debian 9
		{"3.10.0-1160.el7.x86_64", "3.10.0", false},         // CentOS 7
		{"4.14.336-253.554.amzn2.x86_64", "4.14.336", true}, // Amazon Linux 2
		{"5.15.0-1051-aws", "5.15.0", true},
		{"6.1.0-18-amd64", "6.1.0", true},
		{"4.4.0-210-generic", "4.4.0", false},
		{"6.8.0-rc3+", "6.8.0", true},
		{"4.11", "4.11", true},
		{"5.4.0-42-generic\n", "5.4.0", true}, // osrelease ends with a newline
		{"linux", "", false},
		{"5", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.release, func(t *testing.T) {
			v, err := ParseKernelVersion(tt.release)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseKernelVersion(%q) = %s, want an error", tt.release, v)
				}
				return
			}
			if err != nil || v.String() != tt.want {
				t.Fatalf("ParseKernelVersion(%q) = %v, %v; want %s", tt.release, v, err, tt.want)
			}
			if got := v.AtLeast(version.MajorMinor(4, 11)); got != tt.atLeast411 {
				t.Errorf("%s at least 4.11 = %v, want %v", v, got, tt.atLeast411)
			}
		})
	}
}
