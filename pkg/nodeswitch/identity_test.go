package nodeswitch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/transport"
)

func TestSameHost(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"worker-1", "worker-1", true},
		{"Worker-1", "worker-1", true},
		{"worker-1", "worker-1.example.com", true},
		{"worker-1.example.com", "worker-1", true},
		{"worker-1.a.com", "worker-1.b.com", false},
		{"worker-1", "worker-2", false},
	}
	for _, tt := range tests {
		if got := sameHost(tt.a, tt.b); got != tt.want {
			t.Errorf("sameHost(%q, %q) = %t, want %t", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestCheckMachineMachineID compares a machine-id file (read through a real
// local transport rooted in a temp dir) with the Node's.
func TestCheckMachineMachineID(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "machine-id"), []byte("aaaa\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	tr := &transport.Local{Root: root}
	node := func(id string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{MachineID: id}}}
	}
	if err := checkMachine(context.Background(), tr, node("aaaa")); err != nil {
		t.Errorf("same machine-id refused: %v", err)
	}
	var wm *WrongMachineError
	if err := checkMachine(context.Background(), tr, node("bbbb")); !errors.As(err, &wm) {
		t.Errorf("other machine-id: %v, want a WrongMachineError", err)
	}
	if err := checkMachine(context.Background(), tr, node("")); !errors.As(err, &wm) {
		t.Errorf("nothing to compare: %v, want a refusal", err)
	}
}
