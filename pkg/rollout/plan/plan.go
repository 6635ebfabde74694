// Package plan owns the rollout's wave planner: from the cluster's nodes and
// a RuntimeMigration spec it works out which nodes to switch and in which
// waves. It is pure (no API calls, no clock), so the preview (`unshim
// rollout plan`) and the driver get the same waves from the same input.
package plan

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/inventory"
)

// Labels the planner reads from a node.
const (
	OSLabel                = "kubernetes.io/os"
	ControlPlaneLabel      = "node-role.kubernetes.io/control-plane"
	LegacyControlPlaneRole = "node-role.kubernetes.io/master"
)

// Node is what the planner needs to know of one node.
type Node struct {
	Name   string
	Labels map[string]string
	// Runtime is inventory's runtime name (docker, containerd, unknown).
	Runtime string
	// Via is how the kubelet reaches Docker (dockershim, cri-dockerd).
	Via string
	// OS is the kubelet's reported operating system (status.nodeInfo).
	OS string
}

// NodeFrom reads a Node object through pkg/inventory's runtime parsing.
func NodeFrom(n *corev1.Node) Node {
	r := inventory.Describe(n)
	return Node{Name: n.Name, Labels: n.Labels, Runtime: r.Runtime, Via: r.Via, OS: r.OS}
}

// From is the runtime the node runs now as the rollout reports it: "docker"
// for Docker through dockershim, "cri-dockerd", or the runtime's name.
func (n Node) From() string {
	if n.Runtime == inventory.RuntimeDocker && n.Via == inventory.ViaCRIDockerd {
		return inventory.ViaCRIDockerd
	}
	return n.Runtime
}

// ControlPlane tells whether n carries a control-plane role label.
func (n Node) ControlPlane() bool {
	_, cp := n.Labels[ControlPlaneLabel]
	_, master := n.Labels[LegacyControlPlaneRole]
	return cp || master
}

// Windows tells whether n is a Windows node, by its kubernetes.io/os label
// or, without one, the OS its kubelet reports.
func (n Node) Windows() bool {
	if os, ok := n.Labels[OSLabel]; ok {
		return os == "windows"
	}
	return n.OS == "windows"
}

// Wave is a set of nodes switched together.
type Wave struct {
	Index int      `json:"index"`
	Kind  string   `json:"kind"`
	Nodes []string `json:"nodes"`
}

// Skipped is a selected node the plan leaves alone, and why.
type Skipped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Limits are the maxUnavailable values the plan respects, as node counts.
type Limits struct {
	Overall int `json:"overall"`
	// ZoneKey and PoolKey are the labels zones and pools are read from;
	// empty when the spec sets no such limit.
	ZoneKey string         `json:"zoneKey,omitempty"`
	PerZone map[string]int `json:"perZone,omitempty"`
	PoolKey string         `json:"poolKey,omitempty"`
	PerPool map[string]int `json:"perPool,omitempty"`
}

// Plan is the ordered waves of a rollout.
type Plan struct {
	Waves   []Wave    `json:"waves"`
	Skipped []Skipped `json:"skipped,omitempty"`
	Limits  Limits    `json:"limits"`
	// from is each planned node's runtime now (Node.From).
	from map[string]string
}

// InitialStatus is the status a driver writes before its first wave: the
// waves, every planned node Pending with the runtime it runs now, the
// skipped nodes, and the counts.
func (p *Plan) InitialStatus() v1alpha1.RuntimeMigrationStatus {
	var s v1alpha1.RuntimeMigrationStatus
	for _, w := range p.Waves {
		s.Waves = append(s.Waves, v1alpha1.WaveStatus{Index: int32(w.Index), Kind: w.Kind, Nodes: append([]string(nil), w.Nodes...)})
		for _, n := range w.Nodes {
			s.Nodes = append(s.Nodes, v1alpha1.NodeStatus{Name: n, Wave: int32(w.Index), State: v1alpha1.NodePending, FromRuntime: p.from[n]})
		}
	}
	for _, sk := range p.Skipped {
		s.Skipped = append(s.Skipped, v1alpha1.SkippedNode{Name: sk.Name, Reason: sk.Reason})
	}
	s.Phase = v1alpha1.PhasePending
	s.Recount()
	return s
}

// Nodes is the number of nodes the plan switches.
func (p *Plan) Nodes() int {
	n := 0
	for _, w := range p.Waves {
		n += len(w.Nodes)
	}
	return n
}

// ETA is how long the plan takes when each wave takes nodeTime (its nodes
// switch in parallel) and soak follows every wave but the last.
func (p *Plan) ETA(nodeTime, soak time.Duration) time.Duration {
	if len(p.Waves) == 0 {
		return 0
	}
	return time.Duration(len(p.Waves))*nodeTime + time.Duration(len(p.Waves)-1)*soak
}

// Make plans the waves of spec over nodes. A name in spec.nodes.names that
// is not among nodes is an error; so is a spec that fails Validate.
func Make(nodes []Node, spec *v1alpha1.RuntimeMigrationSpec) (*Plan, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	selected, err := selectNodes(nodes, spec.Nodes)
	if err != nil {
		return nil, err
	}
	p := &Plan{Waves: []Wave{}, from: map[string]string{}}
	var todo []Node
	for _, n := range selected {
		if why := skipReason(n, spec.TargetRuntime); why != "" {
			p.Skipped = append(p.Skipped, Skipped{Name: n.Name, Reason: why})
			continue
		}
		todo = append(todo, n)
		p.from[n.Name] = n.From()
	}
	lim, err := limits(todo, spec)
	if err != nil {
		return nil, err
	}
	p.Limits = lim.Limits

	var workers, windows, control []Node
	for _, n := range todo {
		switch {
		case n.ControlPlane():
			control = append(control, n)
		case n.Windows():
			windows = append(windows, n)
		default:
			workers = append(workers, n)
		}
	}
	canary, workers := pickCanary(workers, spec, lim.poolKeyForCanary)
	p.add(v1alpha1.WaveCanary, lim.waves(canary))
	p.add(v1alpha1.WaveWorkers, lim.waves(workers))
	p.add(v1alpha1.WaveWindows, lim.waves(windows))
	for _, n := range control {
		p.add(v1alpha1.WaveControlPlane, [][]string{{n.Name}})
	}
	return p, nil
}

func (p *Plan) add(kind string, waves [][]string) {
	for _, w := range waves {
		p.Waves = append(p.Waves, Wave{Index: len(p.Waves), Kind: kind, Nodes: w})
	}
}

// selectNodes applies the spec's selector and names; the result is sorted by name.
func selectNodes(nodes []Node, sel v1alpha1.NodeSelection) ([]Node, error) {
	var match labels.Selector = labels.Everything()
	if sel.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(sel.Selector)
		if err != nil {
			return nil, fmt.Errorf("spec.nodes.selector: %w", err)
		}
		match = s
	}
	want := map[string]bool{}
	for _, n := range sel.Names {
		want[n] = false
	}
	var out []Node
	for _, n := range nodes {
		if len(want) > 0 {
			if _, ok := want[n.Name]; !ok {
				continue
			}
			want[n.Name] = true
		}
		if match.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	var missing []string
	for n, found := range want {
		if !found {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("spec.nodes.names: node not found: %s", strings.Join(missing, ", "))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// skipReason says why n is not switched to target, or "" when it is.
func skipReason(n Node, target string) string {
	switch {
	case n.Runtime == inventory.RuntimeContainerd:
		return "already runs containerd"
	case n.Runtime != inventory.RuntimeDocker:
		return fmt.Sprintf("runs %s, not Docker", n.Runtime)
	case target == v1alpha1.TargetCRIDockerd && n.Via == inventory.ViaCRIDockerd:
		return "already runs Docker through cri-dockerd"
	}
	return ""
}

// limiter holds the limits as counts and packs nodes into waves under them.
type limiter struct {
	Limits
	poolKeyForCanary string
}

func limits(todo []Node, spec *v1alpha1.RuntimeMigrationSpec) (*limiter, error) {
	l := &limiter{poolKeyForCanary: v1alpha1.DefaultPoolLabel}
	var err error
	if l.Overall, err = v1alpha1.ScaledLimit(spec.MaxUnavailable, len(todo)); err != nil {
		return nil, fmt.Errorf("spec.maxUnavailable: %w", err)
	}
	group := func(key string, lim *v1alpha1.TopologyLimit, field string) (map[string]int, error) {
		sizes := map[string]int{}
		for _, n := range todo {
			sizes[n.Labels[key]]++
		}
		out := map[string]int{}
		for v, size := range sizes {
			c, err := v1alpha1.ScaledLimit(&lim.MaxUnavailable, size)
			if err != nil {
				return nil, fmt.Errorf("%s.maxUnavailable: %w", field, err)
			}
			out[v] = c
		}
		return out, nil
	}
	if spec.Zone != nil {
		l.ZoneKey = keyOr(spec.Zone.LabelKey, v1alpha1.DefaultZoneLabel)
		if l.PerZone, err = group(l.ZoneKey, spec.Zone, "spec.zone"); err != nil {
			return nil, err
		}
	}
	if spec.Pool != nil {
		l.PoolKey = keyOr(spec.Pool.LabelKey, v1alpha1.DefaultPoolLabel)
		l.poolKeyForCanary = l.PoolKey
		if l.PerPool, err = group(l.PoolKey, spec.Pool, "spec.pool"); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func keyOr(k, def string) string {
	if k == "" {
		return def
	}
	return k
}

// waves packs nodes, in their order, into waves first-fit: each wave takes
// every remaining node that keeps it within the overall, zone and pool
// limits, until it is full. Nodes of a full zone wait for the next wave
// while other zones' nodes fill this one.
func (l *limiter) waves(nodes []Node) [][]string {
	var out [][]string
	left := nodes
	for len(left) > 0 {
		var wave []string
		var rest []Node
		zones, pools := map[string]int{}, map[string]int{}
		for _, n := range left {
			z, p := n.Labels[l.ZoneKey], n.Labels[l.PoolKey]
			fits := len(wave) < l.Overall &&
				(l.PerZone == nil || zones[z] < l.PerZone[z]) &&
				(l.PerPool == nil || pools[p] < l.PerPool[p])
			if !fits {
				rest = append(rest, n)
				continue
			}
			wave = append(wave, n.Name)
			zones[z]++
			pools[p]++
		}
		out = append(out, wave)
		left = rest
	}
	return out
}

// pickCanary takes the canary nodes out of workers: the first node of each
// pool (by poolKey) or the first Count nodes.
func pickCanary(workers []Node, spec *v1alpha1.RuntimeMigrationSpec, poolKey string) (canary, rest []Node) {
	take := map[string]bool{}
	switch spec.CanaryMode() {
	case v1alpha1.CanaryNone:
		return nil, workers
	case v1alpha1.CanaryCount:
		for i := 0; i < len(workers) && i < int(spec.Canary.Count); i++ {
			take[workers[i].Name] = true
		}
	case v1alpha1.CanaryPerPool:
		seen := map[string]bool{}
		for _, n := range workers {
			if p := n.Labels[poolKey]; !seen[p] {
				seen[p] = true
				take[n.Name] = true
			}
		}
	}
	for _, n := range workers {
		if take[n.Name] {
			canary = append(canary, n)
		} else {
			rest = append(rest, n)
		}
	}
	return canary, rest
}

// DockerLeft lists, by name, the nodes of all that run Docker and stay on
// it when the nodes for which leaving says true are switched. The preview
// asks it of the whole plan, the driver of each wave before it starts: when
// none is left, workloads pinned to Docker (`unshim pin`) have nowhere to run.
func DockerLeft(all []Node, leaving func(name string) bool) []string {
	var left []string
	for _, n := range all {
		if n.Runtime == inventory.RuntimeDocker && !leaving(n.Name) {
			left = append(left, n.Name)
		}
	}
	return left
}
