// Package inventory reads the cluster's Nodes and tells, for each, which
// container runtime it runs, how the kubelet reaches it, and whether the node
// still needs migrating off Docker. It prints nothing.
package inventory

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/kubelist"
)

// CRISocketAnnotation is where kubeadm records the kubelet's CRI endpoint.
const CRISocketAnnotation = "kubeadm.alpha.kubernetes.io/cri-socket"

// Runtime names as they appear before "://" in a node's containerRuntimeVersion.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
)

// How the kubelet reaches Docker.
const (
	ViaDockershim = "dockershim"
	ViaCRIDockerd = "cri-dockerd"
)

// NodeRuntime is what one node runs.
type NodeRuntime struct {
	Name           string   `json:"name"`
	Status         string   `json:"status"`
	Roles          []string `json:"roles,omitempty"`
	KubeletVersion string   `json:"kubeletVersion"`
	OS             string   `json:"os"`
	Arch           string   `json:"arch,omitempty"`
	OSImage        string   `json:"osImage,omitempty"`
	KernelVersion  string   `json:"kernelVersion,omitempty"`
	InternalIP     string   `json:"internalIP,omitempty"`
	Runtime        string   `json:"runtime"`
	RuntimeVersion string   `json:"runtimeVersion"`
	// CRISocket is kubeadm's record of the kubelet's CRI endpoint ("" when not set).
	CRISocket string `json:"criSocket,omitempty"`
	// Via is how the kubelet reaches Docker: dockershim or cri-dockerd ("" for other runtimes).
	Via            string `json:"via,omitempty"`
	NeedsMigration bool   `json:"needsMigration"`
	// Switch is the phase of an unshim switch under way on the node
	// ("drain/running"), or how the last one ended when it did not succeed.
	Switch string `json:"switch,omitempty"`
	// Notes explain NeedsMigration and anything else to fix, such as a stale cri-socket annotation.
	Notes []string `json:"notes,omitempty"`
}

// The annotations unshim's switch (pkg/nodeswitch) keeps on a node: the
// phase under way ("drain/running") and how the last run ended
// ("succeeded", "rolled-back: ...", "failed: ...").
const (
	SwitchPhaseAnnotation  = "unshim.io/migration-phase"
	SwitchResultAnnotation = "unshim.io/migration-result"
)

// Summary counts nodes by runtime.
type Summary struct {
	Nodes          int            `json:"nodes"`
	ByRuntime      map[string]int `json:"byRuntime"`
	NeedsMigration int            `json:"needsMigration"`
}

// String renders e.g. "7 nodes: 5 docker, 2 containerd; 5 need migrating".
func (s Summary) String() string {
	names := make([]string, 0, len(s.ByRuntime))
	for n := range s.ByRuntime {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if s.ByRuntime[names[i]] != s.ByRuntime[names[j]] {
			return s.ByRuntime[names[i]] > s.ByRuntime[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%d %s", s.ByRuntime[n], n)
	}
	noun := "nodes"
	if s.Nodes == 1 {
		noun = "node"
	}
	out := fmt.Sprintf("%d %s", s.Nodes, noun)
	if len(parts) > 0 {
		out += ": " + strings.Join(parts, ", ")
	}
	switch s.NeedsMigration {
	case 0:
		return out + "; none needs migrating"
	case 1:
		return out + "; 1 needs migrating"
	default:
		return fmt.Sprintf("%s; %d need migrating", out, s.NeedsMigration)
	}
}

// Summarize counts nodes by runtime.
func Summarize(nodes []NodeRuntime) Summary {
	s := Summary{Nodes: len(nodes), ByRuntime: map[string]int{}}
	for _, n := range nodes {
		s.ByRuntime[n.Runtime]++
		if n.NeedsMigration {
			s.NeedsMigration++
		}
	}
	return s
}

// Options select the nodes to read.
type Options struct {
	// Selector is a label selector ("" for all nodes).
	Selector string
	// Names limits the result to these nodes; each must exist.
	Names    []string
	PageSize int64
}

// List reads nodes with paged LISTs and describes each, sorted by name.
func List(ctx context.Context, c kubernetes.Interface, o Options) ([]NodeRuntime, error) {
	want := map[string]bool{}
	for _, n := range o.Names {
		want[n] = false
	}
	var out []NodeRuntime
	err := kubelist.Each(ctx, "nodes", o.PageSize, metav1.ListOptions{LabelSelector: o.Selector},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Nodes().List(ctx, opts)
		},
		func(obj runtime.Object) error {
			n := obj.(*corev1.Node)
			if len(want) > 0 {
				if _, ok := want[n.Name]; !ok {
					return nil
				}
				want[n.Name] = true
			}
			out = append(out, Describe(n))
			return nil
		})
	if err != nil {
		return nil, err
	}
	var missing []string
	for n, found := range want {
		if !found {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("node not found: %s", strings.Join(missing, ", "))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Describe tells what one node runs.
func Describe(n *corev1.Node) NodeRuntime {
	info := n.Status.NodeInfo
	r := NodeRuntime{
		Name:           n.Name,
		Status:         status(n),
		Roles:          roles(n),
		KubeletVersion: info.KubeletVersion,
		OS:             info.OperatingSystem,
		Arch:           info.Architecture,
		OSImage:        info.OSImage,
		KernelVersion:  info.KernelVersion,
		CRISocket:      n.Annotations[CRISocketAnnotation],
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			r.InternalIP = a.Address
			break
		}
	}
	r.Runtime, r.RuntimeVersion = splitRuntime(info.ContainerRuntimeVersion)
	if p := n.Annotations[SwitchPhaseAnnotation]; p != "" && n.Annotations[SwitchResultAnnotation] == "" {
		r.Switch = p
		r.Notes = append(r.Notes, "an unshim switch is under way (phase "+p+"): re-run it to resume, or `unshim node rollback`")
	} else if res := n.Annotations[SwitchResultAnnotation]; res != "" && res != "succeeded" {
		r.Switch = res
		r.Notes = append(r.Notes, "the last unshim switch did not succeed: "+res)
	}
	kubelet, _ := version.ParseGeneric(info.KubeletVersion)
	switch r.Runtime {
	case RuntimeDocker:
		r.NeedsMigration = true
		switch {
		case strings.Contains(r.CRISocket, "cri-dockerd"):
			r.Via = ViaCRIDockerd
		case strings.Contains(r.CRISocket, "dockershim"):
			r.Via = ViaDockershim
		case kubelet != nil && kubelet.LessThan(version.MustParseGeneric("1.24.0")):
			r.Via = ViaDockershim
		default:
			r.Via = ViaCRIDockerd
		}
		if r.Via == ViaDockershim {
			r.Notes = append(r.Notes, "runs Docker through dockershim, which kubelet 1.24 removed: migrate before upgrading the kubelet")
		} else {
			r.Notes = append(r.Notes, "runs Docker through cri-dockerd: migrate to containerd, or keep cri-dockerd maintained")
		}
		if strings.Contains(r.CRISocket, "dockershim") && kubelet != nil && !kubelet.LessThan(version.MustParseGeneric("1.24.0")) {
			r.Notes = append(r.Notes, "cri-socket annotation names dockershim.sock, which this kubelet no longer serves")
		}
	case "":
		r.Runtime = "unknown"
		r.Notes = append(r.Notes, "the kubelet has not reported a container runtime")
	default:
		if strings.Contains(r.CRISocket, "dockershim") || strings.Contains(r.CRISocket, "cri-dockerd") {
			r.Notes = append(r.Notes, fmt.Sprintf("cri-socket annotation %s is stale for %s: kubeadm upgrade will use the wrong socket", r.CRISocket, r.Runtime))
		}
	}
	return r
}

// RuntimeName is the name of the node's container runtime ("docker",
// "containerd") from its status.
func RuntimeName(n *corev1.Node) string {
	name, _ := splitRuntime(n.Status.NodeInfo.ContainerRuntimeVersion)
	return name
}

// splitRuntime splits "docker://20.10.24" into "docker" and "20.10.24".
func splitRuntime(s string) (name, ver string) {
	if i := strings.Index(s, "://"); i >= 0 {
		return s[:i], s[i+3:]
	}
	return s, ""
}

func status(n *corev1.Node) string {
	s := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			switch c.Status {
			case corev1.ConditionTrue:
				s = "Ready"
			case corev1.ConditionFalse:
				s = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		s += ",SchedulingDisabled"
	}
	return s
}

func roles(n *corev1.Node) []string {
	var rs []string
	for k := range n.Labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			rs = append(rs, r)
		}
	}
	sort.Strings(rs)
	return rs
}
