package v1alpha1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestScaledLimit(t *testing.T) {
	tests := []struct {
		name    string
		v       *intstr.IntOrString
		total   int
		want    int
		wantErr bool
	}{
		{"nil is one", nil, 10, 1, false},
		{"count", &intstr.IntOrString{Type: intstr.Int, IntVal: 3}, 10, 3, false},
		{"count above total stays", &intstr.IntOrString{Type: intstr.Int, IntVal: 30}, 10, 30, false},
		{"percent rounds down", &intstr.IntOrString{Type: intstr.String, StrVal: "25%"}, 10, 2, false},
		{"percent at least one", &intstr.IntOrString{Type: intstr.String, StrVal: "1%"}, 10, 1, false},
		{"hundred percent", &intstr.IntOrString{Type: intstr.String, StrVal: "100%"}, 7, 7, false},
		{"zero count", &intstr.IntOrString{Type: intstr.Int, IntVal: 0}, 10, 0, true},
		{"zero percent", &intstr.IntOrString{Type: intstr.String, StrVal: "0%"}, 10, 0, true},
		{"over 100 percent", &intstr.IntOrString{Type: intstr.String, StrVal: "101%"}, 10, 0, true},
		{"no percent sign", &intstr.IntOrString{Type: intstr.String, StrVal: "5"}, 10, 0, true},
		{"garbage", &intstr.IntOrString{Type: intstr.String, StrVal: "x%"}, 10, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ScaledLimit(tt.v, tt.total)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ScaledLimit = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func() RuntimeMigrationSpec { return RuntimeMigrationSpec{TargetRuntime: TargetContainerd} }
	tests := []struct {
		name string
		mut  func(*RuntimeMigrationSpec)
		want string // "" means valid
	}{
		{"minimal", func(*RuntimeMigrationSpec) {}, ""},
		{"target", func(s *RuntimeMigrationSpec) { s.TargetRuntime = "podman" }, "spec.targetRuntime"},
		{"canary count without mode", func(s *RuntimeMigrationSpec) { s.Canary.Count = 2 }, "spec.canary.count"},
		{"canary mode count without count", func(s *RuntimeMigrationSpec) { s.Canary.Mode = CanaryCount }, "spec.canary.count"},
		{"pool percent", func(s *RuntimeMigrationSpec) {
			s.Pool = &TopologyLimit{MaxUnavailable: intstr.FromString("0%")}
		}, "spec.pool.maxUnavailable"},
		{"window time", func(s *RuntimeMigrationSpec) { s.Windows = []Window{{Start: "9:00", End: "17:00"}} }, "spec.windows[0]"},
		{"window zone", func(s *RuntimeMigrationSpec) {
			s.Windows = []Window{{Start: "09:00", End: "17:00", TimeZone: "Mars/Olympus"}}
		}, "spec.windows[0].timeZone"},
		{"good window", func(s *RuntimeMigrationSpec) {
			s.Windows = []Window{{Start: "22:00", End: "06:00", TimeZone: "Europe/Berlin", Days: []Weekday{"Saturday"}}}
		}, ""},
		{"command gate", func(s *RuntimeMigrationSpec) { s.Gates = []Gate{{Name: "g", Type: GateCommand}} }, "needs command"},
		{"prometheus gate", func(s *RuntimeMigrationSpec) { s.Gates = []Gate{{Name: "g", Type: GatePrometheus, URL: "http://p"}} }, "needs url and query"},
		{"ssh without settings", func(s *RuntimeMigrationSpec) { s.Transport.Via = TransportSSH }, "spec.transport.ssh"},
		{"negative soak", func(s *RuntimeMigrationSpec) { s.SoakTime = &metav1.Duration{Duration: -1} }, "spec.soakTime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok()
			tt.mut(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"defaults the target", "apiVersion: unshim.io/v1alpha1\nkind: RuntimeMigration\nmetadata: {name: a}\nspec: {}\n", ""},
		{"unknown field", "apiVersion: unshim.io/v1alpha1\nkind: RuntimeMigration\nmetadata: {name: a}\nspec: {maxUnavailabe: 2}\n", "maxUnavailabe"},
		{"wrong kind", "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: a}\nspec: {}\n", "want unshim.io/v1alpha1 RuntimeMigration"},
		{"no name", "apiVersion: unshim.io/v1alpha1\nkind: RuntimeMigration\nspec: {}\n", "metadata.name"},
		{"bad percent", "apiVersion: unshim.io/v1alpha1\nkind: RuntimeMigration\nmetadata: {name: a}\nspec: {maxUnavailable: 200%}\n", "spec.maxUnavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in), "f.yaml")
			if tt.want == "" {
				if err != nil || m.Spec.TargetRuntime != TargetContainerd {
					t.Fatalf("Decode = %+v, %v", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("err %v, want one naming f.yaml and %q", err, tt.want)
			}
		})
	}
}

func TestRecount(t *testing.T) {
	s := RuntimeMigrationStatus{Nodes: []NodeStatus{{State: NodeDone}, {State: NodeDone}, {State: NodeFailed}, {State: NodeSwitching}, {State: ""}, {State: NodeRolledBack}, {State: NodeBlocked}},
		Skipped: []SkippedNode{{Name: "x"}}}
	s.Recount()
	want := Counts{Total: 7, Pending: 1, Switching: 1, Done: 2, Failed: 1, Blocked: 1, RolledBack: 1, Skipped: 1}
	if s.Counts != want || s.Progress != "2/7" {
		t.Errorf("counts %+v progress %q", s.Counts, s.Progress)
	}
}

func TestUnstructuredRoundTrip(t *testing.T) {
	p := intstr.FromString("10%")
	m := &RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: RuntimeMigrationSpec{TargetRuntime: TargetContainerd, MaxUnavailable: &p, Paused: true}}
	u, err := ToUnstructured(m)
	if err != nil {
		t.Fatal(err)
	}
	if u.GetAPIVersion() != "unshim.io/v1alpha1" || u.GetKind() != Kind {
		t.Errorf("apiVersion %q kind %q", u.GetAPIVersion(), u.GetKind())
	}
	back, err := FromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.MaxUnavailable.String() != "10%" || !back.Spec.Paused || back.Name != "a" {
		t.Errorf("round trip %+v", back.Spec)
	}
}
