package rules

import (
	"fmt"
	"path"
	"sync"

	"github.com/unshim/unshim/pkg/check"
)

// agentRule reports containers running a catalogued agent that used Docker.
type agentRule struct {
	agents []Agent
	// seen memoizes matchAgent per image: a cluster runs the same images in
	// many pods, and glob matching every pattern is the check's hottest loop.
	memo *agentMemo
}

type agentMemo struct {
	mu sync.Mutex
	m  map[string]*Agent
}

// maxMemo bounds the memo; past it, images are matched afresh.
const maxMemo = 8192

func newAgentRule(c *Catalog) (agentRule, error) {
	return agentRule{agents: c.Agents, memo: &agentMemo{m: map[string]*Agent{}}}, nil
}

func (agentRule) Meta() check.RuleMeta {
	return check.RuleMeta{ID: "known-docker-agent", Title: "Runs an agent known to have used Docker", Severity: check.SeverityMedium,
		Remedy: "Upgrade the agent to a release that supports containerd and point it at /run/containerd/containerd.sock."}
}

// matchAgent returns the catalogued agent whose image pattern matches image.
func (r agentRule) matchAgent(image string) *Agent {
	r.memo.mu.Lock()
	defer r.memo.mu.Unlock()
	if a, ok := r.memo.m[image]; ok {
		return a
	}
	a := r.match(image)
	if len(r.memo.m) < maxMemo {
		r.memo.m[image] = a
	}
	return a
}

func (r agentRule) match(image string) *Agent {
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
	eachContainer(t.PodSpec, t.SpecPath, func(ca containerAt) {
		if a := r.matchAgent(ca.c.Image); a != nil {
			hits = append(hits, check.Hit{Container: ca.c.Name, Evidence: ca.c.Image, Field: ca.field() + ".image",
				Message: fmt.Sprintf("runs %s (%s): %s", a.Name, ca.c.Image, a.Note), Remedy: a.Remedy})
		}
	})
	return hits
}
