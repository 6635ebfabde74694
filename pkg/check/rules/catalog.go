package rules

import (
	_ "embed"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

//go:embed catalog.yaml
var builtinCatalog []byte

// Catalog lists known Docker-dependent agents, log-collector and monitor
// configurations, and images that mount node directories for reasons of their own.
type Catalog struct {
	Agents         []Agent      `json:"agents"`
	LogConfigs     []LogConfig  `json:"logConfigs"`
	MonitorConfigs []LogConfig  `json:"monitorConfigs"`
	KnownMounts    []KnownMount `json:"knownMounts"`
}

// Agent is a telemetry or security agent known to have used Docker.
type Agent struct {
	Name   string   `json:"name"`
	Images []string `json:"images"`
	Note   string   `json:"note"`
	Remedy string   `json:"remedy"`
	// When lists conditions of which one must hold for the entry to fire; none means it always may.
	When []Condition `json:"when,omitempty"`
	// Unless lists conditions any one of which keeps the entry from firing.
	Unless []Condition `json:"unless,omitempty"`
}

// Condition is a test on a container that matched an entry's image and on
// its pod. It holds when every part it gives holds; each part holds when one
// of its items matches.
type Condition struct {
	// Env: the container sets one of these variables (to a value matching Value, when given).
	Env []EnvMatch `json:"env,omitempty"`
	// Args: the container's command and args, joined by spaces, match one of these regular expressions.
	Args []string `json:"args,omitempty"`
	// Mounts: the pod has a hostPath volume at one of these paths or at a directory above it.
	Mounts []string `json:"mounts,omitempty"`
}

// EnvMatch is an environment variable by name, with an optional regular expression for its value.
type EnvMatch struct {
	Name string `json:"name"`
	// Value is a regular expression the value must match; "" accepts any value, valueFrom included.
	Value string `json:"value,omitempty"`
}

// LogConfig is a ConfigMap setting that ties a collector or monitor to Docker.
type LogConfig struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
	Remedy  string `json:"remedy"`
}

// KnownMount is an image that mounts a node directory for reasons of its
// own (/, /run or /var/run, which hold the Docker socket; Docker's log
// directory left mounted by a collector that now parses the CRI format):
// the rules named in Rules report it as info, with Reason, instead of at
// their own severity.
type KnownMount struct {
	Name   string   `json:"name"`
	Images []string `json:"images"`
	// Paths are the hostPaths the reason covers; /var/run and /run are the same directory.
	Paths  []string `json:"paths"`
	Reason string   `json:"reason"`
	// Rules are the hostPath rules the reason applies to; none means docker-socket-dir-mount.
	Rules []string `json:"rules,omitempty"`
	// When lists conditions of which one must hold for the reason to apply; none means it always does.
	When []Condition `json:"when,omitempty"`
	// Unless lists conditions any one of which keeps the reason from applying.
	Unless []Condition `json:"unless,omitempty"`
}

// knownMountRules are the rules a KnownMount may lower to info.
var knownMountRules = []string{"docker-socket-dir-mount", "docker-data-root-mount", "docker-config-mount", "docker-json-logs"}

// DefaultKnownMountRule is the rule a KnownMount without Rules applies to.
const DefaultKnownMountRule = "docker-socket-dir-mount"

// BuiltinCatalog returns the catalog shipped with unshim.
func BuiltinCatalog() (*Catalog, error) {
	c, err := parsedBuiltin()
	if err != nil {
		return nil, err
	}
	// A copy whose lists a caller may extend (LoadCatalog) without
	// touching the parsed one; the entries are shared and read-only.
	return &Catalog{Agents: slices.Clip(c.Agents), LogConfigs: slices.Clip(c.LogConfigs),
		MonitorConfigs: slices.Clip(c.MonitorConfigs), KnownMounts: slices.Clip(c.KnownMounts)}, nil
}

// parsedBuiltin parses the built-in catalog once: 2 ms and 4,500
// allocations a parse, and every switch's preflight builds the rules anew
// (a rollout's wave runs 50 of them at once on the driver's cores).
var parsedBuiltin = sync.OnceValues(func() (*Catalog, error) {
	return ParseCatalog(builtinCatalog, "built-in catalog")
})

// ParseCatalog decodes and validates a catalog; name is used in errors.
func ParseCatalog(data []byte, name string) (*Catalog, error) {
	var c Catalog
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("parse catalog %s: %w", name, err)
	}
	for i, a := range c.Agents {
		where := fmt.Sprintf("catalog %s: agents[%d]", name, i)
		if a.Name == "" || len(a.Images) == 0 {
			return nil, fmt.Errorf("%s needs a name and at least one image pattern", where)
		}
		where += " (" + a.Name + ")"
		if err := checkImages(where, a.Images); err != nil {
			return nil, err
		}
		for j, cond := range a.When {
			if err := cond.validate(fmt.Sprintf("%s: when[%d]", where, j)); err != nil {
				return nil, err
			}
		}
		for j, cond := range a.Unless {
			if err := cond.validate(fmt.Sprintf("%s: unless[%d]", where, j)); err != nil {
				return nil, err
			}
		}
	}
	for _, sec := range []struct {
		key     string
		entries []LogConfig
	}{{"logConfigs", c.LogConfigs}, {"monitorConfigs", c.MonitorConfigs}} {
		for i, l := range sec.entries {
			if l.Name == "" || l.Pattern == "" {
				return nil, fmt.Errorf("catalog %s: %s[%d] needs a name and a pattern", name, sec.key, i)
			}
			if _, err := regexp.Compile(l.Pattern); err != nil {
				return nil, fmt.Errorf("catalog %s: %s[%d] (%s): bad pattern: %w", name, sec.key, i, l.Name, err)
			}
		}
	}
	for i, m := range c.KnownMounts {
		where := fmt.Sprintf("catalog %s: knownMounts[%d]", name, i)
		if m.Name == "" || len(m.Images) == 0 || len(m.Paths) == 0 || m.Reason == "" {
			return nil, fmt.Errorf("%s needs a name, image patterns, paths and a reason", where)
		}
		if err := checkImages(where+" ("+m.Name+")", m.Images); err != nil {
			return nil, err
		}
		where += " (" + m.Name + ")"
		if err := checkPaths(where, m.Paths); err != nil {
			return nil, err
		}
		for _, r := range m.Rules {
			if !slices.Contains(knownMountRules, r) {
				return nil, fmt.Errorf("%s: rule %q cannot be lowered by a known mount (want one of %s)", where, r, strings.Join(knownMountRules, ", "))
			}
		}
		for j, cond := range m.When {
			if err := cond.validate(fmt.Sprintf("%s: when[%d]", where, j)); err != nil {
				return nil, err
			}
		}
		for j, cond := range m.Unless {
			if err := cond.validate(fmt.Sprintf("%s: unless[%d]", where, j)); err != nil {
				return nil, err
			}
		}
	}
	return &c, nil
}

func (c Condition) validate(where string) error {
	if len(c.Env) == 0 && len(c.Args) == 0 && len(c.Mounts) == 0 {
		return fmt.Errorf("%s: a condition needs env, args or mounts", where)
	}
	for _, e := range c.Env {
		if e.Name == "" {
			return fmt.Errorf("%s: env entry without a name", where)
		}
		if _, err := regexp.Compile(e.Value); err != nil {
			return fmt.Errorf("%s: env %s: bad value pattern: %w", where, e.Name, err)
		}
	}
	for _, a := range c.Args {
		if _, err := regexp.Compile(a); err != nil {
			return fmt.Errorf("%s: bad args pattern: %w", where, err)
		}
	}
	return checkPaths(where, c.Mounts)
}

func checkImages(where string, patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%s: bad image pattern %q: %w", where, p, err)
		}
	}
	return nil
}

func checkPaths(where string, paths []string) error {
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("%s: path %q is not absolute", where, p)
		}
	}
	return nil
}

// LoadCatalog returns the built-in catalog extended with the entries of each file.
func LoadCatalog(files ...string) (*Catalog, error) {
	c, err := BuiltinCatalog()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read catalog: %w", err)
		}
		extra, err := ParseCatalog(data, f)
		if err != nil {
			return nil, err
		}
		c.Agents = append(c.Agents, extra.Agents...)
		c.LogConfigs = append(c.LogConfigs, extra.LogConfigs...)
		c.MonitorConfigs = append(c.MonitorConfigs, extra.MonitorConfigs...)
		c.KnownMounts = append(c.KnownMounts, extra.KnownMounts...)
	}
	return c, nil
}
