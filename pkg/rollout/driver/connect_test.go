package driver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

// TestSSHAddress: where a rollout over SSH dials a node, from its
// annotation or its InternalIP. The lab's rollout test dials its nodes
// through the annotation (they share one address, a port each).
func TestSSHAddress(t *testing.T) {
	node := func(ann, ip string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
		if ann != "" {
			n.Annotations = map[string]string{v1alpha1.SSHAddressAnnotation: ann}
		}
		if ip != "" {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: ip}}
		}
		return n
	}
	for _, c := range []struct {
		ann, ip, want string
		bad           bool
	}{
		{ip: "10.0.0.5", want: "10.0.0.5:2222"},
		{ip: "fd00::5", want: "[fd00::5]:2222"},
		{ann: "127.0.0.1:40022", ip: "10.0.0.5", want: "127.0.0.1:40022"},
		{ann: "bastion.example.net", ip: "10.0.0.5", want: "bastion.example.net:2222"},
		{ann: " 192.0.2.7 ", want: "192.0.2.7:2222"},
		{ann: "[fd00::7]:22", want: "[fd00::7]:22"},
		{ann: "[fd00::7]", want: "[fd00::7]:2222"},
		{ann: "fd00::7", want: "[fd00::7]:2222"},
		{ann: "host:ssh", bad: true},
		{ann: "host:70000", bad: true},
		{ann: ":22", bad: true},
		{ann: "a b", bad: true},
		{bad: true}, // no annotation, no InternalIP
	} {
		got, err := sshAddress(node(c.ann, c.ip), 2222)
		if c.bad {
			if err == nil {
				t.Errorf("annotation %q, InternalIP %q: %q, want an error", c.ann, c.ip, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("annotation %q, InternalIP %q: %q, %v; want %q", c.ann, c.ip, got, err, c.want)
		}
	}
}
