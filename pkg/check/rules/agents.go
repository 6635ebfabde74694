package rules

import (
	"fmt"

	"github.com/unshim/unshim/pkg/check"
)

// agentRule reports containers running a catalogued agent that used Docker,
// unless the entry's conditions say this one is configured for the CRI.
type agentRule struct {
	agents []compiledAgent
	images *imageMatcher
}

type compiledAgent struct {
	*Agent
	when, unless []condition
}

func newAgentRule(c *Catalog) (agentRule, error) {
	r := agentRule{}
	patterns := make([][]string, len(c.Agents))
	for i := range c.Agents {
		a := &c.Agents[i]
		patterns[i] = a.Images
		when, err := compileConditions(a.When)
		if err != nil {
			return r, fmt.Errorf("agent %s: when: %w", a.Name, err)
		}
		unless, err := compileConditions(a.Unless)
		if err != nil {
			return r, fmt.Errorf("agent %s: unless: %w", a.Name, err)
		}
		r.agents = append(r.agents, compiledAgent{Agent: a, when: when, unless: unless})
	}
	r.images = newImageMatcher(patterns)
	return r, nil
}

func (agentRule) Meta() check.RuleMeta {
	return check.RuleMeta{ID: "known-docker-agent", Title: "Runs an agent known to have used Docker", Severity: check.SeverityMedium,
		Remedy: "Upgrade the agent to a release that supports containerd and point it at /run/containerd/containerd.sock."}
}

// matchAgent returns the catalogued agent whose image pattern matches image, or nil.
func (r agentRule) matchAgent(image string) *compiledAgent {
	if i := r.images.match(image); i >= 0 {
		return &r.agents[i]
	}
	return nil
}

func (r agentRule) Check(t *check.Target) []check.Hit {
	if t.PodSpec == nil {
		return nil
	}
	var hits []check.Hit
	eachContainer(t, func(ca containerAt) {
		a := r.matchAgent(ca.c.Image)
		if a == nil {
			return
		}
		if len(a.when) > 0 && !anyHolds(a.when, ca, t) {
			return
		}
		if anyHolds(a.unless, ca, t) {
			return
		}
		hits = append(hits, check.Hit{Container: ca.c.Name, Evidence: ca.c.Image, Field: ca.field() + ".image",
			Message: fmt.Sprintf("runs %s (%s): %s", a.Name, ca.c.Image, a.Note), Remedy: a.Remedy})
	})
	return hits
}
