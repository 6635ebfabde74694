// Package check owns the impact check: the finding format, severities, the
// Rule interface and the engine that runs rules over the objects a Source
// yields and rolls findings up to each object's top-level owner.
package check

import (
	"fmt"
	"strings"
)

// Severity ranks how badly a finding breaks when Docker goes away.
type Severity int

// Severities from least to most serious.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

// String returns the lower-case name of s.
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity turns a name such as "high" into a Severity.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want one of %s)", name, strings.Join(severityNames, ", "))
}

// SeverityNames lists the accepted severity names, least serious first.
func SeverityNames() []string { return append([]string(nil), severityNames...) }

// MarshalText encodes s as its name, so JSON and YAML carry "high", not 3.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String renders the reference as Kind/namespace/name.
func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Finding is one Docker dependency of one top-level object.
type Finding struct {
	// Object is the top-level owner the finding rolls up to.
	Object ObjectRef `json:"object"`
	// Rule is the stable ID of the rule that matched.
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Remedy   string   `json:"remedy"`
	// Container names the container (or init container) involved, if any.
	Container string `json:"container,omitempty"`
	// Evidence is the matched value: a path, an image, an env var, a command.
	Evidence string `json:"evidence,omitempty"`
	// Field is the path of the matched field inside the object that was read.
	Field string `json:"field,omitempty"`
	// Pods counts the live pods that showed this dependency (0 for templates and files).
	Pods int `json:"pods,omitempty"`
	// Via names the object the finding was seen on when it differs from Object.
	Via *ObjectRef `json:"via,omitempty"`
	// File and Line locate the finding in a manifest.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// findingKey identifies findings that are the same dependency of the same
// owner; it shares the finding's strings rather than joining new ones.
type findingKey struct {
	object                          ObjectRef
	rule, container, evidence, file string
}

func (f Finding) key() findingKey {
	return findingKey{f.Object, f.Rule, f.Container, f.Evidence, f.File}
}
