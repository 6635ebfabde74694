package plan

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

const zoneKey, poolKey = v1alpha1.DefaultZoneLabel, "pool"

// node builds a Docker (dockershim) node; opts: "zone=a", "pool=p", "cp",
// "windows", "containerd", "cri-dockerd", "label=k=v".
func node(name string, opts ...string) Node {
	n := Node{Name: name, Labels: map[string]string{}, Runtime: "docker", Via: "dockershim"}
	for _, o := range opts {
		switch {
		case strings.HasPrefix(o, "zone="):
			n.Labels[zoneKey] = o[5:]
		case strings.HasPrefix(o, "pool="):
			n.Labels[poolKey] = o[5:]
		case o == "cp":
			n.Labels[ControlPlaneLabel] = ""
		case o == "windows":
			n.Labels[OSLabel] = "windows"
		case o == "windows-unlabelled":
			n.OS = "windows"
		case o == "containerd":
			n.Runtime, n.Via = "containerd", ""
		case o == "cri-dockerd":
			n.Via = "cri-dockerd"
		case strings.HasPrefix(o, "label="):
			k, v, _ := strings.Cut(o[6:], "=")
			n.Labels[k] = v
		default:
			panic("unknown option " + o)
		}
	}
	return n
}

func count(n int) *intstr.IntOrString   { v := intstr.FromInt32(int32(n)); return &v }
func percent(p int) *intstr.IntOrString { v := intstr.FromString(fmt.Sprintf("%d%%", p)); return &v }

func spec(mut ...func(*v1alpha1.RuntimeMigrationSpec)) *v1alpha1.RuntimeMigrationSpec {
	s := &v1alpha1.RuntimeMigrationSpec{TargetRuntime: v1alpha1.TargetContainerd, Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryNone}}
	for _, m := range mut {
		m(s)
	}
	return s
}

// waves renders a plan as "Kind:a,b Kind:c".
func waves(p *Plan) string {
	var ws []string
	for _, w := range p.Waves {
		ws = append(ws, w.Kind+":"+strings.Join(w.Nodes, ","))
	}
	return strings.Join(ws, " ")
}

func TestMake(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []Node
		spec    *v1alpha1.RuntimeMigrationSpec
		want    string
		skipped string
		wantErr string
	}{
		{
			name:  "one at a time by default, sorted by name",
			nodes: []Node{node("c"), node("a"), node("b")},
			spec:  spec(),
			want:  "Workers:a Workers:b Workers:c",
		},
		{
			name:  "overall count",
			nodes: []Node{node("a"), node("b"), node("c"), node("d"), node("e")},
			spec:  spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.MaxUnavailable = count(2) }),
			want:  "Workers:a,b Workers:c,d Workers:e",
		},
		{
			name:  "percent rounds down",
			nodes: []Node{node("a"), node("b"), node("c"), node("d"), node("e")},
			spec:  spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.MaxUnavailable = percent(50) }), // 2.5 -> 2
			want:  "Workers:a,b Workers:c,d Workers:e",
		},
		{
			name:  "percent is at least one",
			nodes: []Node{node("a"), node("b"), node("c")},
			spec:  spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.MaxUnavailable = percent(10) }), // 0.3 -> 1
			want:  "Workers:a Workers:b Workers:c",
		},
		{
			name: "per zone limit spreads a wave across zones",
			nodes: []Node{node("a1", "zone=a"), node("a2", "zone=a"), node("a3", "zone=a"),
				node("b1", "zone=b"), node("b2", "zone=b"), node("c1", "zone=c")},
			spec: spec(func(s *v1alpha1.RuntimeMigrationSpec) {
				s.MaxUnavailable = count(3)
				s.Zone = &v1alpha1.TopologyLimit{MaxUnavailable: intstr.FromInt32(1)}
			}),
			want: "Workers:a1,b1,c1 Workers:a2,b2 Workers:a3",
		},
		{
			name: "per pool percent with a custom label key",
			nodes: []Node{node("g1", "label=np=gpu"), node("g2", "label=np=gpu"), node("w1", "label=np=web"),
				node("w2", "label=np=web"), node("w3", "label=np=web"), node("w4", "label=np=web")},
			spec: spec(func(s *v1alpha1.RuntimeMigrationSpec) {
				s.MaxUnavailable = count(10)
				s.Pool = &v1alpha1.TopologyLimit{LabelKey: "np", MaxUnavailable: intstr.FromString("50%")}
			}),
			want: "Workers:g1,w1,w2 Workers:g2,w3,w4",
		},
		{
			name:  "canary: first node of each pool, then the rest",
			nodes: []Node{node("a1", "pool=a"), node("a2", "pool=a"), node("b1", "pool=b"), node("b2", "pool=b")},
			spec: spec(func(s *v1alpha1.RuntimeMigrationSpec) {
				s.MaxUnavailable = count(2)
				s.Canary = v1alpha1.Canary{Mode: v1alpha1.CanaryPerPool}
				s.Pool = &v1alpha1.TopologyLimit{LabelKey: poolKey, MaxUnavailable: intstr.FromInt32(5)}
			}),
			want: "Canary:a1,b1 Workers:a2,b2",
		},
		{
			name:  "canary per pool is the default mode; unlabelled nodes are one pool",
			nodes: []Node{node("a"), node("b"), node("c")},
			spec:  spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.Canary = v1alpha1.Canary{}; s.MaxUnavailable = count(5) }),
			want:  "Canary:a Workers:b,c",
		},
		{
			name:  "canary count larger than the overall limit takes several waves",
			nodes: []Node{node("a"), node("b"), node("c"), node("d")},
			spec: spec(func(s *v1alpha1.RuntimeMigrationSpec) {
				s.Canary = v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 3}
				s.MaxUnavailable = count(2)
			}),
			want: "Canary:a,b Canary:c Workers:d",
		},
		{
			name:  "control plane last, one at a time; windows in waves of their own",
			nodes: []Node{node("cp1", "cp"), node("cp2", "label=node-role.kubernetes.io/master="), node("w1"), node("win1", "windows"), node("w2"), node("win2", "windows-unlabelled")},
			spec:  spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.MaxUnavailable = count(4) }),
			want:  "Workers:w1,w2 Windows:win1,win2 ControlPlane:cp1 ControlPlane:cp2",
		},
		{
			name:    "containerd nodes and unknown runtimes are skipped",
			nodes:   []Node{node("a"), node("b", "containerd"), {Name: "c", Runtime: "unknown"}},
			spec:    spec(),
			want:    "Workers:a",
			skipped: "b: already runs containerd; c: runs unknown, not Docker",
		},
		{
			name:    "target cri-dockerd skips cri-dockerd nodes",
			nodes:   []Node{node("a"), node("b", "cri-dockerd")},
			spec:    spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.TargetRuntime = v1alpha1.TargetCRIDockerd }),
			want:    "Workers:a",
			skipped: "b: already runs Docker through cri-dockerd",
		},
		{
			name:  "selector and names both apply",
			nodes: []Node{node("a", "label=tier=x"), node("b", "label=tier=x"), node("c", "label=tier=y")},
			spec: spec(func(s *v1alpha1.RuntimeMigrationSpec) {
				s.Nodes = v1alpha1.NodeSelection{Names: []string{"b", "c"}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "x"}}}
			}),
			want: "Workers:b",
		},
		{
			name:    "a named node that does not exist",
			nodes:   []Node{node("a")},
			spec:    spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.Nodes.Names = []string{"a", "zz"} }),
			wantErr: "node not found: zz",
		},
		{
			name:  "a bad percent",
			nodes: []Node{node("a")},
			spec: spec(func(s *v1alpha1.RuntimeMigrationSpec) {
				s.MaxUnavailable = &intstr.IntOrString{Type: intstr.String, StrVal: "150%"}
			}),
			wantErr: "spec.maxUnavailable",
		},
		{
			name:  "a zero count",
			nodes: []Node{node("a")},
			spec: spec(func(s *v1alpha1.RuntimeMigrationSpec) {
				s.Zone = &v1alpha1.TopologyLimit{MaxUnavailable: intstr.FromInt32(0)}
			}),
			wantErr: "spec.zone.maxUnavailable",
		},
		{
			name:  "no nodes, no waves",
			nodes: nil,
			spec:  spec(),
			want:  "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Make(tt.nodes, tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := waves(p); got != tt.want {
				t.Errorf("waves\n got %s\nwant %s", got, tt.want)
			}
			var sk []string
			for _, s := range p.Skipped {
				sk = append(sk, s.Name+": "+s.Reason)
			}
			if got := strings.Join(sk, "; "); got != tt.skipped {
				t.Errorf("skipped %q, want %q", got, tt.skipped)
			}
		})
	}
}

// randomCluster makes n nodes over a few zones and pools, some control
// plane, some Windows, some already on containerd.
func randomCluster(r *rand.Rand, n int) []Node {
	var out []Node
	for i := range n {
		opts := []string{fmt.Sprintf("zone=z%d", r.IntN(4)), fmt.Sprintf("pool=p%d", r.IntN(5))}
		switch r.IntN(20) {
		case 0:
			opts = append(opts, "cp")
		case 1, 2:
			opts = append(opts, "windows")
		case 3, 4:
			opts = append(opts, "containerd")
		case 5:
			opts = append(opts, "cri-dockerd")
		}
		out = append(out, node(fmt.Sprintf("n%04d", i), opts...))
	}
	return out
}

func randomSpec(r *rand.Rand) *v1alpha1.RuntimeMigrationSpec {
	limit := func() intstr.IntOrString {
		if r.IntN(2) == 0 {
			return intstr.FromInt32(int32(1 + r.IntN(6)))
		}
		return intstr.FromString(fmt.Sprintf("%d%%", 1+r.IntN(100)))
	}
	s := spec()
	l := limit()
	s.MaxUnavailable = &l
	if r.IntN(2) == 0 {
		s.Zone = &v1alpha1.TopologyLimit{MaxUnavailable: limit()}
	}
	if r.IntN(2) == 0 {
		s.Pool = &v1alpha1.TopologyLimit{LabelKey: poolKey, MaxUnavailable: limit()}
	}
	switch r.IntN(3) {
	case 0:
		s.Canary = v1alpha1.Canary{Mode: v1alpha1.CanaryPerPool}
	case 1:
		s.Canary = v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: int32(1 + r.IntN(4))}
	}
	return s
}

// TestMakeProperties checks, over many random clusters and specs, what
// must hold of every plan: no wave breaks a limit, every node to switch is
// in exactly one wave and every other node is skipped, canaries come first
// and control-plane nodes last and alone, Windows nodes never share a wave
// with Linux nodes, and the plan does not depend on the input order.
func TestMakeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	for iter := range 400 {
		nodes := randomCluster(r, 1+r.IntN(60))
		s := randomSpec(r)
		p, err := Make(nodes, s)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		byName := map[string]Node{}
		for _, n := range nodes {
			byName[n.Name] = n
		}
		seen := map[string]int{}
		lastKind := -1
		order := map[string]int{v1alpha1.WaveCanary: 0, v1alpha1.WaveWorkers: 1, v1alpha1.WaveWindows: 2, v1alpha1.WaveControlPlane: 3}
		for i, w := range p.Waves {
			if w.Index != i || len(w.Nodes) == 0 {
				t.Fatalf("iter %d: wave %d has index %d and %d nodes", iter, i, w.Index, len(w.Nodes))
			}
			if order[w.Kind] < lastKind {
				t.Fatalf("iter %d: wave %d (%s) after a later kind: %s", iter, i, w.Kind, waves(p))
			}
			lastKind = order[w.Kind]
			if len(w.Nodes) > p.Limits.Overall {
				t.Fatalf("iter %d: wave %d has %d nodes, overall limit %d", iter, i, len(w.Nodes), p.Limits.Overall)
			}
			zones, pools := map[string]int{}, map[string]int{}
			for _, name := range w.Nodes {
				seen[name]++
				n := byName[name]
				zones[n.Labels[zoneKey]]++
				pools[n.Labels[poolKey]]++
				if n.Windows() != (w.Kind == v1alpha1.WaveWindows) {
					t.Fatalf("iter %d: node %s (windows %v) in a %s wave", iter, name, n.Windows(), w.Kind)
				}
				if n.ControlPlane() != (w.Kind == v1alpha1.WaveControlPlane) {
					t.Fatalf("iter %d: node %s (control plane %v) in a %s wave", iter, name, n.ControlPlane(), w.Kind)
				}
			}
			if w.Kind == v1alpha1.WaveControlPlane && len(w.Nodes) != 1 {
				t.Fatalf("iter %d: control-plane wave of %d nodes", iter, len(w.Nodes))
			}
			if s.Zone != nil {
				for z, c := range zones {
					if c > p.Limits.PerZone[z] {
						t.Fatalf("iter %d: wave %d has %d nodes of zone %s, limit %d", iter, i, c, z, p.Limits.PerZone[z])
					}
				}
			}
			if s.Pool != nil {
				for pl, c := range pools {
					if c > p.Limits.PerPool[pl] {
						t.Fatalf("iter %d: wave %d has %d nodes of pool %s, limit %d", iter, i, c, pl, p.Limits.PerPool[pl])
					}
				}
			}
		}
		skipped := map[string]bool{}
		for _, sk := range p.Skipped {
			skipped[sk.Name] = true
		}
		for _, n := range nodes {
			needs := n.Runtime == "docker"
			if needs && seen[n.Name] != 1 {
				t.Fatalf("iter %d: node %s is in %d waves", iter, n.Name, seen[n.Name])
			}
			if !needs && (seen[n.Name] != 0 || !skipped[n.Name]) {
				t.Fatalf("iter %d: node %s on %s: in %d waves, skipped %v", iter, n.Name, n.Runtime, seen[n.Name], skipped[n.Name])
			}
		}
		shuffled := append([]Node(nil), nodes...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		p2, err := Make(shuffled, s)
		if err != nil || !reflect.DeepEqual(p.Waves, p2.Waves) {
			t.Fatalf("iter %d: plan depends on input order (%v)", iter, err)
		}
	}
}

func TestETA(t *testing.T) {
	p, err := Make([]Node{node("a"), node("b"), node("c")}, spec())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.ETA(4*time.Minute, time.Minute), 3*4*time.Minute+2*time.Minute; got != want {
		t.Errorf("ETA %v, want %v", got, want)
	}
	if got := (&Plan{}).ETA(time.Minute, time.Minute); got != 0 {
		t.Errorf("empty plan ETA %v", got)
	}
}

func TestInitialStatus(t *testing.T) {
	p, err := Make([]Node{node("a", "cri-dockerd"), node("b"), node("c", "containerd")},
		spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.MaxUnavailable = count(2) }))
	if err != nil {
		t.Fatal(err)
	}
	st := p.InitialStatus()
	if st.Progress != "0/2" || st.Counts.Pending != 2 || st.Counts.Skipped != 1 || st.Phase != v1alpha1.PhasePending {
		t.Errorf("status %+v", st)
	}
	if len(st.Nodes) != 2 || st.Nodes[0].FromRuntime != "cri-dockerd" || st.Nodes[1].FromRuntime != "docker" {
		t.Errorf("nodes %+v", st.Nodes)
	}
}

func TestNodeFrom(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"a": "b"},
		Annotations: map[string]string{"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/cri-dockerd.sock"}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: "docker://24.0.7", KubeletVersion: "v1.28.3"}}}
	got := NodeFrom(n)
	if got.Runtime != "docker" || got.Via != "cri-dockerd" || got.From() != "cri-dockerd" || got.Labels["a"] != "b" {
		t.Errorf("NodeFrom = %+v", got)
	}
}
