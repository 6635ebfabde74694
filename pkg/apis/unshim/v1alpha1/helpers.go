package v1alpha1

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Defaults of the spec's optional durations.
const (
	DefaultDrainTimeout  = 10 * time.Minute
	DefaultVerifyTimeout = 5 * time.Minute
	DefaultGateInterval  = 10 * time.Second
	DefaultGateTimeout   = 30 * time.Second
)

// Recount sets Counts and Progress from Nodes and Skipped. The driver calls
// it after every change to Nodes.
func (s *RuntimeMigrationStatus) Recount() {
	c := Counts{Total: int32(len(s.Nodes)), Skipped: int32(len(s.Skipped))}
	for _, n := range s.Nodes {
		switch n.State {
		case NodePending, "":
			c.Pending++
		case NodeSwitching:
			c.Switching++
		case NodeDone:
			c.Done++
		case NodeFailed:
			c.Failed++
		case NodeBlocked:
			c.Blocked++
		case NodeRolledBack:
			c.RolledBack++
		case NodeSkipped:
			c.Skipped++
		case NodeUndone:
			c.Undone++
		}
	}
	s.Counts = c
	s.Progress = strconv.Itoa(int(c.Done)) + "/" + strconv.Itoa(int(c.Total))
}

// Ended tells whether a rollout's phase is final.
func (m *RuntimeMigration) Ended() bool {
	switch m.Status.Phase {
	case PhaseSucceeded, PhaseCompleted, PhaseFailed, PhaseAborted:
		return true
	}
	return false
}

// CanaryMode is the canary mode with its default (PerPool).
func (s *RuntimeMigrationSpec) CanaryMode() string {
	if s.Canary.Mode == "" {
		return CanaryPerPool
	}
	return s.Canary.Mode
}

// DurationOr returns d, or def when d is unset.
func DurationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// Validate checks what the schema cannot: fields that go together. The
// apiserver enforces the schema (enums, minimums, patterns); this catches
// the rest before anything is created, and the driver calls it again.
func (s *RuntimeMigrationSpec) Validate() error {
	var errs []error
	if s.TargetRuntime != TargetContainerd && s.TargetRuntime != TargetCRIDockerd {
		errs = append(errs, fmt.Errorf("spec.targetRuntime %q: want %s or %s", s.TargetRuntime, TargetContainerd, TargetCRIDockerd))
	}
	if err := validPercentOrCount("spec.maxUnavailable", s.MaxUnavailable); err != nil {
		errs = append(errs, err)
	}
	for name, l := range map[string]*TopologyLimit{"spec.zone": s.Zone, "spec.pool": s.Pool} {
		if l != nil {
			if err := validPercentOrCount(name+".maxUnavailable", &l.MaxUnavailable); err != nil {
				errs = append(errs, err)
			}
		}
	}
	switch s.CanaryMode() {
	case CanaryNone, CanaryPerPool:
		if s.Canary.Count != 0 {
			errs = append(errs, fmt.Errorf("spec.canary.count is set but mode is %s: set mode Count", s.CanaryMode()))
		}
	case CanaryCount:
		if s.Canary.Count < 1 {
			errs = append(errs, errors.New("spec.canary.mode Count needs spec.canary.count of at least 1"))
		}
	default:
		errs = append(errs, fmt.Errorf("spec.canary.mode %q: want None, PerPool or Count", s.Canary.Mode))
	}
	if s.FailureBudget.PerWave < 0 || s.FailureBudget.Total < 0 {
		errs = append(errs, errors.New("spec.failureBudget: a budget cannot be negative"))
	}
	for i, w := range s.Windows {
		for _, hm := range []string{w.Start, w.End} {
			if !hhmm.MatchString(hm) {
				errs = append(errs, fmt.Errorf("spec.windows[%d]: time %q: want HH:MM", i, hm))
			}
		}
		if w.TimeZone != "" {
			if _, err := time.LoadLocation(w.TimeZone); err != nil {
				errs = append(errs, fmt.Errorf("spec.windows[%d].timeZone: %w", i, err))
			}
		}
	}
	for i, g := range s.Gates {
		p := fmt.Sprintf("spec.gates[%d] (%s)", i, g.Name)
		switch g.Type {
		case GateCommand:
			if len(g.Command) == 0 {
				errs = append(errs, fmt.Errorf("%s: type Command needs command", p))
			}
		case GateHTTP:
			if g.URL == "" {
				errs = append(errs, fmt.Errorf("%s: type HTTP needs url", p))
			}
		case GatePrometheus:
			if g.URL == "" || g.Query == "" {
				errs = append(errs, fmt.Errorf("%s: type Prometheus needs url and query", p))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: type %q: want Command, HTTP or Prometheus", p, g.Type))
		}
		if g.Checks < 0 {
			errs = append(errs, fmt.Errorf("%s: checks cannot be negative", p))
		}
	}
	switch s.Transport.Via {
	case "", TransportPod:
	case TransportSSH:
		if s.Transport.SSH == nil {
			errs = append(errs, errors.New("spec.transport.via ssh needs spec.transport.ssh (keySecret, knownHostsSecret)"))
		}
	default:
		errs = append(errs, fmt.Errorf("spec.transport.via %q: want pod or ssh", s.Transport.Via))
	}
	for name, d := range map[string]*metav1.Duration{"soakTime": s.SoakTime, "drainTimeout": s.DrainTimeout, "verifyTimeout": s.VerifyTimeout} {
		if d != nil && d.Duration < 0 {
			errs = append(errs, fmt.Errorf("spec.%s cannot be negative", name))
		}
	}
	return errors.Join(errs...)
}

// hhmm is a window's time of day, as the schema's pattern has it.
var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// validPercentOrCount checks a maxUnavailable: a count of at least 1 or a
// percent from 1% to 100%.
func validPercentOrCount(field string, v *intstr.IntOrString) error {
	if v == nil {
		return nil
	}
	if _, err := ScaledLimit(v, 100); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// ScaledLimit turns a maxUnavailable into a node count out of total: a
// count as is, a percent of total rounded down but at least 1. nil means 1.
func ScaledLimit(v *intstr.IntOrString, total int) (int, error) {
	if v == nil {
		return 1, nil
	}
	if v.Type == intstr.Int {
		if v.IntVal < 1 {
			return 0, fmt.Errorf("%d: want at least 1", v.IntVal)
		}
		return int(v.IntVal), nil
	}
	s := v.StrVal
	if len(s) < 2 || s[len(s)-1] != '%' {
		return 0, fmt.Errorf("%q: want a count or a percent such as 25%%", s)
	}
	p, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || p < 1 || p > 100 {
		return 0, fmt.Errorf("%q: want a percent from 1%% to 100%%", s)
	}
	n := total * p / 100
	if n < 1 {
		n = 1
	}
	return n, nil
}

// FromUnstructured converts an object read with the dynamic client.
func FromUnstructured(u *unstructured.Unstructured) (*RuntimeMigration, error) {
	var m RuntimeMigration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &m); err != nil {
		return nil, fmt.Errorf("decode RuntimeMigration %s: %w", u.GetName(), err)
	}
	return &m, nil
}

// ToUnstructured converts m for the dynamic client, with its apiVersion and kind set.
func ToUnstructured(m *RuntimeMigration) (*unstructured.Unstructured, error) {
	m = m.DeepCopy()
	m.APIVersion, m.Kind = GroupVersion.String(), Kind
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(m)
	if err != nil {
		return nil, fmt.Errorf("encode RuntimeMigration %s: %w", m.Name, err)
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

// Decode reads one RuntimeMigration from YAML or JSON; name (a file name)
// is used in errors. Unknown fields are refused, as the apiserver's strict
// field validation would.
func Decode(data []byte, name string) (*RuntimeMigration, error) {
	var m RuntimeMigration
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if m.APIVersion != GroupVersion.String() || m.Kind != Kind {
		return nil, fmt.Errorf("%s: apiVersion %q kind %q: want %s %s", name, m.APIVersion, m.Kind, GroupVersion, Kind)
	}
	if m.Name == "" {
		return nil, fmt.Errorf("%s: metadata.name is empty", name)
	}
	if m.Spec.TargetRuntime == "" {
		m.Spec.TargetRuntime = TargetContainerd // the schema's default
	}
	if err := m.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}
