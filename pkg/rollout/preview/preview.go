// Package preview owns the rollout preview: what `unshim rollout plan`
// shows before anything changes. From paged LISTs of nodes, pods and
// PodDisruptionBudgets it builds the waves (pkg/rollout/plan), the ETA, the
// PDBs that allow no disruption now with the pods they cover on the
// selected nodes, the Docker-dependent workloads on those nodes (pkg/check's
// findings, from the pods there) and the risks. It prints nothing.
package preview

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/live"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/pin"
	"github.com/unshim/unshim/pkg/rollout/plan"
)

// Options tune the preview.
type Options struct {
	// NodeTime is how long one wave's switch takes, for the ETA.
	NodeTime time.Duration
	// PageSize of every LIST; 0 means kubelist.DefaultPageSize.
	PageSize int64
}

// Preview is the whole preview of a rollout.
type Preview struct {
	Name   string            `json:"name,omitempty"`
	Target string            `json:"targetRuntime"`
	Plan   *plan.Plan        `json:"plan"`
	Waves  int               `json:"waveCount"`
	Nodes  int               `json:"nodeCount"`
	ETA    metav1.Duration   `json:"eta"`
	PDBs   []BlockingPDB     `json:"blockingPDBs,omitempty"`
	Docker []check.Finding   `json:"dockerDependent,omitempty"`
	Risks  []Risk            `json:"risks,omitempty"`
	Times  map[string]string `json:"times"`
}

// BlockingPDB is a PDB that allows no disruption now and covers pods on
// nodes the rollout switches: their drains will wait on it.
type BlockingPDB struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Pods      []string `json:"pods"`
	Nodes     []string `json:"nodes"`
}

// Risk is something that can stop or hurt the rollout.
type Risk struct {
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// Make builds the preview of spec against the cluster c.
func Make(ctx context.Context, c kubernetes.Interface, dyn dynamic.Interface, name string, spec *v1alpha1.RuntimeMigrationSpec, o Options) (*Preview, error) {
	var all []plan.Node
	var notReady []string
	err := kubelist.Each(ctx, "nodes", o.PageSize, metav1.ListOptions{},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Nodes().List(ctx, opts)
		},
		func(obj runtime.Object) error {
			n := obj.(*corev1.Node)
			all = append(all, plan.NodeFrom(n))
			if !ready(n) {
				notReady = append(notReady, n.Name)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	p, err := plan.Make(all, spec)
	if err != nil {
		return nil, err
	}
	soak := v1alpha1.DurationOr(spec.SoakTime, 0)
	pv := &Preview{
		Name: name, Target: spec.TargetRuntime, Plan: p, Waves: len(p.Waves), Nodes: p.Nodes(),
		ETA:   metav1.Duration{Duration: p.ETA(o.NodeTime, soak)},
		Times: map[string]string{"perWave": o.NodeTime.String(), "soak": soak.String()},
	}
	selected := map[string]bool{}
	for _, w := range p.Waves {
		for _, n := range w.Nodes {
			selected[n] = true
		}
	}

	pods, err := podsOn(ctx, c, selected, o.PageSize)
	if err != nil {
		return nil, err
	}
	if pv.PDBs, err = blockingPDBs(ctx, c, pods, o.PageSize); err != nil {
		return nil, err
	}
	src := &nodePods{inner: &live.Source{Client: c, PageSize: o.PageSize, SkipConfigMaps: true}, nodes: selected}
	rs, err := rules.All(rules.Options{})
	if err != nil {
		return nil, err
	}
	res, err := check.Run(ctx, src, rs)
	if err != nil {
		return nil, fmt.Errorf("check the workloads on the selected nodes: %w", err)
	}
	pv.Docker = res.Findings

	pinned, err := pin.Pinned(ctx, dyn, o.PageSize)
	if err != nil {
		return nil, err
	}
	pv.Risks = risks(p, all, notReady, selected, pv, pinned, spec)
	// The driver refuses such a rollout before it changes anything.
	if err := p.CheckSize(&v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: *spec}); err != nil {
		pv.Risks = append([]Risk{{Severity: "high", Message: err.Error() + "; the driver refuses it before any change"}}, pv.Risks...)
	}
	return pv, nil
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podsOn lists every pod (paged) and keeps those on the selected nodes
// that still count for a drain (not finished).
func podsOn(ctx context.Context, c kubernetes.Interface, nodes map[string]bool, pageSize int64) ([]corev1.Pod, error) {
	var out []corev1.Pod
	if len(nodes) == 0 {
		return nil, nil
	}
	err := kubelist.Each(ctx, "pods", pageSize, metav1.ListOptions{},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Pods("").List(ctx, opts)
		},
		func(obj runtime.Object) error {
			p := obj.(*corev1.Pod)
			if nodes[p.Spec.NodeName] && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				out = append(out, *p)
			}
			return nil
		})
	return out, err
}

// blockingPDBs lists PDBs (paged) and keeps those with
// status.disruptionsAllowed == 0 that select pods on the selected nodes.
func blockingPDBs(ctx context.Context, c kubernetes.Interface, pods []corev1.Pod, pageSize int64) ([]BlockingPDB, error) {
	byNS := map[string][]corev1.Pod{}
	for _, p := range pods {
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	var out []BlockingPDB
	err := kubelist.Each(ctx, "poddisruptionbudgets", pageSize, metav1.ListOptions{},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return c.PolicyV1().PodDisruptionBudgets("").List(ctx, opts)
		},
		func(obj runtime.Object) error {
			pdb := obj.(*policyv1.PodDisruptionBudget)
			if pdb.Status.DisruptionsAllowed > 0 || pdb.Spec.Selector == nil {
				return nil
			}
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() {
				// An empty selector matches no pods in policy/v1's eviction API.
				return nil
			}
			b := BlockingPDB{Namespace: pdb.Namespace, Name: pdb.Name}
			nodes := map[string]bool{}
			for _, p := range byNS[pdb.Namespace] {
				if sel.Matches(labels.Set(p.Labels)) {
					b.Pods = append(b.Pods, p.Namespace+"/"+p.Name)
					nodes[p.Spec.NodeName] = true
				}
			}
			if len(b.Pods) == 0 {
				return nil
			}
			for n := range nodes {
				b.Nodes = append(b.Nodes, n)
			}
			sort.Strings(b.Pods)
			sort.Strings(b.Nodes)
			out = append(out, b)
			return nil
		})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, err
}

// nodePods is a check.Source of the live pods on the selected nodes only:
// the findings are then the Docker dependencies the rollout will move.
type nodePods struct {
	inner check.Source
	nodes map[string]bool
}

func (s *nodePods) Visit(ctx context.Context, fn func(*check.Target) error) error {
	return s.inner.Visit(ctx, func(t *check.Target) error {
		if !t.LivePod || t.PodSpec == nil || !s.nodes[t.PodSpec.NodeName] {
			return nil
		}
		return fn(t)
	})
}

// risks lists what can stop or hurt the rollout.
func risks(p *plan.Plan, all []plan.Node, notReady []string, selected map[string]bool, pv *Preview, pinned []pin.Workload, spec *v1alpha1.RuntimeMigrationSpec) []Risk {
	var out []Risk
	add := func(sev, format string, a ...any) {
		out = append(out, Risk{Severity: sev, Message: fmt.Sprintf(format, a...)})
	}
	left := plan.DockerLeft(all, func(n string) bool { return selected[n] })
	if len(pinned) > 0 {
		names := make([]string, 0, len(pinned))
		for _, w := range pinned {
			names = append(names, w.String())
		}
		switch {
		case len(left) == 0 && !spec.AllowLastDockerNodes:
			add("high", "the rollout switches the last Docker nodes, which %d pinned workloads need (%s): it refuses them unless spec.allowLastDockerNodes is set", len(pinned), strings.Join(names, ", "))
		case len(left) == 0:
			add("high", "the rollout switches the last Docker nodes (allowLastDockerNodes is set): %d pinned workloads will have nowhere to run (%s)", len(pinned), strings.Join(names, ", "))
		case len(left) == 1:
			add("medium", "only one Docker node (%s) stays for %d pinned workloads", left[0], len(pinned))
		}
	}
	for _, b := range pv.PDBs {
		add("high", "PodDisruptionBudget %s/%s allows no disruption now: drains of %s will wait on it and end blocked at the drain timeout", b.Namespace, b.Name, strings.Join(b.Nodes, ", "))
	}
	if w, ok := check.Worst(pv.Docker); ok && w >= check.SeverityHigh {
		add("high", "%d Docker dependencies on the selected nodes (worst %s): see `unshim check`, or `unshim pin` the workloads to the Docker nodes that stay", len(pv.Docker), w)
	}
	var nr []string
	for _, n := range notReady {
		if selected[n] {
			nr = append(nr, n)
		}
	}
	if len(nr) > 0 {
		add("medium", "selected nodes not Ready: %s", strings.Join(nr, ", "))
	}
	if len(p.Waves) > 0 && p.Waves[0].Kind != v1alpha1.WaveCanary && spec.CanaryMode() != v1alpha1.CanaryNone {
		add("low", "no canary wave: no worker nodes among the selected")
	}
	if spec.CanaryMode() == v1alpha1.CanaryNone && len(p.Waves) > 1 {
		add("low", "no canary: a bad switch shows first in a full wave")
	}
	return out
}
