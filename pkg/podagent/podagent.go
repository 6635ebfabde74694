// Package podagent runs unshim's agent on a node from the cluster: a bare,
// privileged, hostPID Pod pinned to the node that runs `unshim node handoff`,
// which copies the unshim binary to the host and hands the work to a
// transient systemd unit there (package handoff), so the work survives Docker
// stopping (the pod itself dies with Docker). This package only talks to the
// API server.
package podagent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// DefaultNamespace is where agent pods run unless told otherwise.
	DefaultNamespace = "kube-system"
	// DefaultCopyTo is where the hand-off copies the unshim binary on the host.
	DefaultCopyTo = "/var/lib/unshim/bin/unshim"
	// DefaultTimeout bounds Run: from creating the pod to its end.
	DefaultTimeout = 5 * time.Minute
	// DefaultDelay is how long after the hand-off the unit starts: time for
	// the pod to end and for the kubelet to report it, before the unit may
	// stop the container runtime (after which nothing reports the pod).
	DefaultDelay = 10 * time.Second

	// NameLabel is the app.kubernetes.io/name label of every agent pod.
	NameLabel = "app.kubernetes.io/name"
	// NameLabelValue is NameLabel's value.
	NameLabelValue = "unshim-agent"
	// NodeLabel names the node an agent pod runs on (shortened with a hash
	// when the node's name is no valid label value).
	NodeLabel = "unshim.dev/node"

	// BinaryPath is where the agent image holds the unshim binary.
	BinaryPath = "/unshim"

	// systemdRunDir holds the host systemd's private D-Bus socket.
	systemdRunDir = "/run/systemd"
	// stateDir is the host directory the binary is copied under.
	stateDir   = "/var/lib/unshim"
	namePrefix = "unshim-agent-"
)

// Options describe one agent run.
type Options struct {
	// Node is the node the agent runs on.
	Node string
	// Namespace is the pod's namespace; DefaultNamespace when empty.
	Namespace string
	// Image holds the unshim binary at BinaryPath; it must be on the node or pullable.
	Image string
	// Unit is the host's transient systemd unit that runs Argv ("NAME" or "NAME.service").
	Unit string
	// Argv is what the unit runs; an Argv[0] of "unshim" runs the copied binary.
	Argv []string
	// CopyTo is where the hand-off copies the unshim binary on the host;
	// DefaultCopyTo when empty. It must lie under /var/lib/unshim.
	CopyTo string
	// Timeout bounds Run; DefaultTimeout when zero.
	Timeout time.Duration
	// Secret, when set, is a Secret in Namespace mounted read-only at
	// SecretDir; Copies name its keys to copy to the host (key → host path).
	Secret string
	Copies [][2]string
	// Delay is how long after the hand-off the unit starts; DefaultDelay when
	// zero, at once when negative (for commands that leave the container
	// runtime and the kubelet alone).
	Delay time.Duration
}

func (o *Options) complete() {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.CopyTo == "" {
		o.CopyTo = DefaultCopyTo
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Delay == 0 {
		o.Delay = DefaultDelay
	}
}

// Validate tells what is missing or wrong in o.
func (o Options) Validate() error {
	o.complete()
	var missing []string
	for _, f := range []struct{ name, v string }{{"node", o.Node}, {"image", o.Image}, {"unit", o.Unit}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("agent options: %s missing", strings.Join(missing, ", "))
	}
	if len(o.Argv) == 0 {
		return fmt.Errorf("agent options: no command for unit %s", o.Unit)
	}
	if !strings.HasPrefix(o.CopyTo, stateDir+"/") {
		return fmt.Errorf("agent options: copy path %s is not under %s, the directory the pod shares with the host", o.CopyTo, stateDir)
	}
	return nil
}

// PodName is the agent pod's name for node: unshim-agent-NODE, shortened
// with a hash of the node's name when that is no valid DNS label.
func PodName(node string) string {
	return shorten(namePrefix+node, node)
}

// nodeLabelValue is node, or a shortened, hashed form when node is no valid label value.
func nodeLabelValue(node string) string {
	if len(validation.IsValidLabelValue(node)) == 0 {
		return node
	}
	return shorten(node, node)
}

// shorten returns s when it is a DNS-1123 label, else s made one (lower
// case, dots and other characters to '-', cut to fit) with a hash of key
// appended, so different keys keep different names.
func shorten(s, key string) string {
	if len(validation.IsDNS1123Label(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(key))
	suffix := "-" + hex.EncodeToString(sum[:4])
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	out := string(b)
	if max := validation.DNS1123LabelMaxLength - len(suffix); len(out) > max {
		out = out[:max]
	}
	out = strings.Trim(out, "-")
	if out == "" {
		return strings.TrimPrefix(suffix, "-")
	}
	return out + suffix
}

// Command is the agent container's command: the hand-off of argv to unit,
// started delay later when delay is positive.
func Command(unit, copyTo string, delay time.Duration, argv []string) []string {
	cmd := []string{BinaryPath, "node", "handoff", "--unit", unit}
	if copyTo != "" {
		cmd = append(cmd, "--copy-to", copyTo)
	}
	if delay > 0 {
		cmd = append(cmd, "--delay", delay.String())
	}
	return append(append(cmd, "--"), argv...)
}

// PodSpec returns the agent Pod for o: bound to o.Node by spec.nodeName (no
// scheduler involved), tolerating every taint (so it runs on a cordoned or
// tainted node), in the host's PID namespace and network, privileged, never
// restarted, without a ServiceAccount token, with the host's /run/systemd
// (the systemd's private D-Bus socket) and /var/lib/unshim mounted at the
// same paths.
// SecretDir is where the agent pod mounts Options.Secret.
const SecretDir = "/var/run/unshim-agent"

func PodSpec(o Options) *corev1.Pod {
	o.complete()
	pod := podSpec(o)
	if o.Secret == "" {
		return pod
	}
	ctr := &pod.Spec.Containers[0]
	ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "agent-secret", MountPath: SecretDir, ReadOnly: true})
	mode := int32(0o400)
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "agent-secret",
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: o.Secret, DefaultMode: &mode}}})
	// --copy flags go before the "--" that starts ARGV.
	var copies []string
	for _, c := range o.Copies {
		copies = append(copies, "--copy", SecretDir+"/"+c[0]+"="+c[1])
	}
	for i, a := range ctr.Command {
		if a == "--" {
			ctr.Command = append(append(append([]string{}, ctr.Command[:i]...), copies...), ctr.Command[i:]...)
			break
		}
	}
	return pod
}

func podSpec(o Options) *corev1.Pod {
	yes, no := true, false
	var grace int64 = 10
	dirOrCreate, dir := corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      PodName(o.Node),
			Namespace: o.Namespace,
			Labels: map[string]string{
				NameLabel: NameLabelValue,
				NodeLabel: nodeLabelValue(o.Node),
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                      o.Node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			HostPID:                       true,
			HostNetwork:                   true,
			DNSPolicy:                     corev1.DNSDefault,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			PriorityClassName:             "system-node-critical",
			Containers: []corev1.Container{{
				Name:            "handoff",
				Image:           o.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         Command(o.Unit, o.CopyTo, o.Delay, o.Argv),
				SecurityContext: &corev1.SecurityContext{Privileged: &yes},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "host-systemd", MountPath: systemdRunDir},
					{Name: "host-unshim", MountPath: stateDir},
				},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{
				{Name: "host-systemd", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: systemdRunDir, Type: &dir}}},
				{Name: "host-unshim", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: stateDir, Type: &dirOrCreate}}},
			},
		},
	}
}
