package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/transport"
)

// Transport ways besides the spec's pod and ssh: nsenter reaches a node
// whose init process this machine sees (a lab node), by PID.
const TransportNsenter = "nsenter"

// SwitcherOptions build the Switcher a rollout's spec.transport asks for.
type SwitcherOptions struct {
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	// Via overrides spec.transport.via: pod, ssh or nsenter.
	Via string
	// PIDs are the nodes' init processes with via nsenter.
	PIDs map[string]int
	// AgentImage and AgentNamespace with via pod.
	AgentImage, AgentNamespace string
	// Logger receives the switches' logs (via ssh and nsenter).
	Logger log.Logger
	// Out receives the agents' logs (via pod).
	Out io.Writer
}

// ErrNeedAgentImage is a rollout through agent pods (spec.transport.via
// pod, the default) with no agent image to run them.
var ErrNeedAgentImage = errors.New("spec.transport.via pod needs --agent-image (or pass --via)")

// NewSwitcher builds the Switcher for spec.transport (or o.Via).
func NewSwitcher(ctx context.Context, spec *v1alpha1.RuntimeMigrationSpec, o SwitcherOptions) (Switcher, func(), error) {
	via := o.Via
	if via == "" {
		via = spec.Transport.Via
	}
	if via == "" {
		via = v1alpha1.TransportPod
	}
	switch via {
	case v1alpha1.TransportPod:
		if o.AgentImage == "" {
			return nil, nil, ErrNeedAgentImage
		}
		return &ViaPod{Client: o.Client, RESTConfig: o.RESTConfig, Image: o.AgentImage, Namespace: o.AgentNamespace, Out: o.Out}, func() {}, nil
	case TransportNsenter:
		pids := o.PIDs
		return &Direct{Client: o.Client, RESTConfig: o.RESTConfig, Logger: o.Logger, Connect: func(_ context.Context, node string) (transport.Transport, error) {
			pid, ok := pids[node]
			if !ok {
				return nil, fmt.Errorf("no --target-pid for node %s", node)
			}
			return &transport.Nsenter{PID: pid}, nil
		}}, func() {}, nil
	case v1alpha1.TransportSSH:
		if spec.Transport.SSH == nil {
			return nil, nil, fmt.Errorf("spec.transport.via ssh needs spec.transport.ssh")
		}
		dir, err := os.MkdirTemp("", "unshim-rollout-ssh-")
		if err != nil {
			return nil, nil, err
		}
		cleanup := func() { os.RemoveAll(dir) }
		s := spec.Transport.SSH
		key, known := filepath.Join(dir, "key"), filepath.Join(dir, "known_hosts")
		for file, ref := range map[string]v1alpha1.SecretKeyRef{key: s.KeySecret, known: s.KnownHostsSecret} {
			if err := secretToFile(ctx, o.Client, ref, file); err != nil {
				cleanup()
				return nil, nil, err
			}
		}
		user, port := s.User, int(s.Port)
		if user == "" {
			user = "root"
		}
		if port == 0 {
			port = 22
		}
		return &Direct{Client: o.Client, RESTConfig: o.RESTConfig, Logger: o.Logger, Connect: func(ctx context.Context, node string) (transport.Transport, error) {
			n, err := o.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			host, err := sshAddress(n, port)
			if err != nil {
				return nil, err
			}
			return transport.DialSSH(ctx, transport.SSHConfig{Host: host, User: user, KeyFile: key, KnownHostsFile: known})
		}}, cleanup, nil
	}
	return nil, nil, fmt.Errorf("transport %q: want pod, ssh or nsenter", via)
}

func secretToFile(ctx context.Context, c kubernetes.Interface, ref v1alpha1.SecretKeyRef, file string) error {
	sec, err := c.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("spec.transport.ssh: secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	data, ok := sec.Data[ref.Key]
	if !ok {
		return fmt.Errorf("spec.transport.ssh: secret %s/%s has no key %q", ref.Namespace, ref.Name, ref.Key)
	}
	return os.WriteFile(file, data, 0o600)
}

// sshAddress is where the node's sshd is reached: its annotation
// v1alpha1.SSHAddressAnnotation (host or host:port), else its InternalIP;
// port when the address has none.
func sshAddress(n *corev1.Node, port int) (string, error) {
	if a := strings.TrimSpace(n.Annotations[v1alpha1.SSHAddressAnnotation]); a != "" {
		bad := fmt.Errorf("node %s: annotation %s=%q: want host or host:port", n.Name, v1alpha1.SSHAddressAnnotation, a)
		if host, p, err := net.SplitHostPort(a); err == nil {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil || host == "" {
				return "", bad
			}
			return a, nil
		}
		host := strings.TrimSuffix(strings.TrimPrefix(a, "["), "]") // [::1] without a port
		if strings.ContainsAny(host, "[]/ ") {
			return "", bad
		}
		return net.JoinHostPort(host, strconv.Itoa(port)), nil
	}
	ip := internalIP(n)
	if ip == "" {
		return "", fmt.Errorf("node %s has no InternalIP to reach it over SSH (annotation %s can say where)", n.Name, v1alpha1.SSHAddressAnnotation)
	}
	return net.JoinHostPort(ip, strconv.Itoa(port)), nil
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
