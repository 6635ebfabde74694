package nodeswitch

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/transport"
)

// WrongMachineError says the transport reaches a machine that is not the
// Node being switched (a wrong --target-pid, --ssh-host, or --via local on
// the wrong host).
type WrongMachineError struct {
	Node, Why string
}

func (e *WrongMachineError) Error() string {
	return fmt.Sprintf("refusing to touch node %s: the machine reached is another one (%s); check --via, --target-pid or --ssh-host", e.Node, e.Why)
}

// checkMachine compares the machine the transport reaches with the Node:
// its machine-id with the kubelet's nodeInfo.machineID (read by the kubelet
// from /etc/machine-id), and its hostname with the Node's Hostname address
// (short names compare equal to their FQDN). Cloned machines can share a
// machine-id, so both must agree where both are known.
func checkMachine(ctx context.Context, t transport.Transport, node *corev1.Node) error {
	known := false
	if want := strings.TrimSpace(node.Status.NodeInfo.MachineID); want != "" {
		id, err := t.ReadFile(ctx, "/etc/machine-id")
		if got := strings.TrimSpace(string(id)); err == nil && got != "" {
			known = true
			if got != want {
				return &WrongMachineError{Node: node.Name, Why: fmt.Sprintf("its /etc/machine-id is %s, the Node's nodeInfo.machineID is %s", got, want)}
			}
		}
	}
	var want string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeHostName {
			want = a.Address
		}
	}
	if want != "" {
		out, err := t.Run(ctx, "hostname")
		if got := strings.TrimSpace(string(out)); err == nil && got != "" {
			known = true
			if !sameHost(got, want) {
				return &WrongMachineError{Node: node.Name, Why: fmt.Sprintf("its hostname is %s, the Node's Hostname address is %s", got, want)}
			}
		}
	}
	if !known {
		return &WrongMachineError{Node: node.Name, Why: "neither its machine-id nor its hostname could be compared with the Node's"}
	}
	return nil
}

func sameHost(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	if a == b {
		return true
	}
	as, _, _ := strings.Cut(a, ".")
	bs, _, _ := strings.Cut(b, ".")
	return as == bs && (as == a || bs == b)
}
