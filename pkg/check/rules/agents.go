package rules

import (
	"fmt"
	"path"

	"github.com/unshim/unshim/pkg/check"
)

// agentRule reports containers running a catalogued agent that used Docker.
type agentRule struct{ agents []Agent }

func newAgentRule(c *Catalog) (agentRule, error) { return agentRule{agents: c.Agents}, nil }

func (agentRule) Meta() check.RuleMeta {
	return check.RuleMeta{ID: "known-docker-agent", Title: "Runs an agent known to have used Docker", Severity: check.SeverityMedium,
		Remedy: "Upgrade the agent to a release that supports containerd and point it at /run/containerd/containerd.sock."}
}

// matchAgent returns the catalogued agent whose image pattern matches image.
func (r agentRule) matchAgent(image string) *Agent {
	repo, _ := imageRepo(image)
	for i := range r.agents {
		for _, p := range r.agents[i].Images {
			for _, form := range repoForms(repo) {
				if ok, _ := path.Match(p, form); ok {
					return &r.agents[i]
				}
			}
		}
	}
	return nil
}

func (r agentRule) Check(t *check.Target) []check.Hit {
	if t.PodSpec == nil {
		return nil
	}
	var hits []check.Hit
	for _, ca := range containers(t.PodSpec, t.SpecPath) {
		if a := r.matchAgent(ca.c.Image); a != nil {
			hits = append(hits, check.Hit{Container: ca.c.Name, Evidence: ca.c.Image, Field: ca.field + ".image",
				Message: fmt.Sprintf("runs %s (%s): %s", a.Name, ca.c.Image, a.Note), Remedy: a.Remedy})
		}
	}
	return hits
}
