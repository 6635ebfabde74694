package rules

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/unshim/unshim/pkg/check"
)

// condition is a compiled catalog Condition.
type condition struct {
	env    []envMatcher
	args   []*regexp.Regexp
	mounts []string // normalized
}

type envMatcher struct {
	name  string
	value *regexp.Regexp // nil: any value
}

func compileConditions(cs []Condition) ([]condition, error) {
	out := make([]condition, 0, len(cs))
	for _, c := range cs {
		var cc condition
		for _, e := range c.Env {
			m := envMatcher{name: e.Name}
			if e.Value != "" {
				re, err := regexp.Compile(e.Value)
				if err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
				m.value = re
			}
			cc.env = append(cc.env, m)
		}
		for _, a := range c.Args {
			re, err := regexp.Compile(a)
			if err != nil {
				return nil, fmt.Errorf("args: %w", err)
			}
			cc.args = append(cc.args, re)
		}
		for _, m := range c.Mounts {
			cc.mounts = append(cc.mounts, normalizePath(m))
		}
		out = append(out, cc)
	}
	return out, nil
}

// holds reports whether every part of c holds for the container ca of t.
func (c condition) holds(ca containerAt, t *check.Target) bool {
	if len(c.env) > 0 && !c.envHolds(ca) {
		return false
	}
	if len(c.args) > 0 {
		line := strings.Join(append(append([]string(nil), ca.c.Command...), ca.c.Args...), " ")
		ok := false
		for _, re := range c.args {
			if re.MatchString(line) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(c.mounts) > 0 && !c.mountsHold(t) {
		return false
	}
	return true
}

func (c condition) envHolds(ca containerAt) bool {
	for _, m := range c.env {
		for _, e := range ca.c.Env {
			if e.Name != m.name {
				continue
			}
			if m.value == nil || (e.ValueFrom == nil && m.value.MatchString(e.Value)) {
				return true
			}
		}
	}
	return false
}

// mountsHold reports whether the pod has a hostPath volume at one of c's
// paths or at a directory above it.
func (c condition) mountsHold(t *check.Target) bool {
	for _, v := range t.PodSpec.Volumes {
		if v.HostPath == nil {
			continue
		}
		hp := normalizePath(v.HostPath.Path)
		for _, want := range c.mounts {
			if within(want, hp) {
				return true
			}
		}
	}
	return false
}

// anyHolds reports whether one of cs holds.
func anyHolds(cs []condition, ca containerAt, t *check.Target) bool {
	for _, c := range cs {
		if c.holds(ca, t) {
			return true
		}
	}
	return false
}
