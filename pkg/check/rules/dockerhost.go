package rules

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/unshim/unshim/pkg/check"
)

// dockerAPIEndpoint matches a Docker API address on its well-known TCP ports.
var dockerAPIEndpoint = regexp.MustCompile(`tcp://[^\s"']*:237[56]\b`)

// dockerHostRule reports containers configured to reach a Docker daemon.
type dockerHostRule struct{}

func (dockerHostRule) Meta() check.RuleMeta {
	return check.RuleMeta{ID: "docker-host-env", Title: "Points a client at a Docker daemon", Severity: check.SeverityHigh, Remedy: RemedySocket}
}

func (dockerHostRule) Check(t *check.Target) []check.Hit {
	if t.PodSpec == nil {
		return nil
	}
	var hits []check.Hit
	eachContainer(t, func(ca containerAt) {
		for i, e := range ca.c.Env {
			field := func() string { return fmt.Sprintf("%s.env[%d]", ca.field(), i) }
			switch {
			case e.Name == "DOCKER_HOST":
				v := e.Value
				if v == "" {
					v = "(from a reference)"
				}
				hits = append(hits, check.Hit{Container: ca.c.Name, Evidence: "DOCKER_HOST=" + v, Field: field(),
					Message: fmt.Sprintf("sets DOCKER_HOST=%s: the container expects a Docker daemon", v)})
			case strings.Contains(e.Value, "tcp://") && dockerAPIEndpoint.MatchString(e.Value):
				hits = append(hits, check.Hit{Container: ca.c.Name, Evidence: e.Name + "=" + e.Value, Field: field(),
					Message: fmt.Sprintf("%s points at a Docker API endpoint (%s)", e.Name, dockerAPIEndpoint.FindString(e.Value))})
			}
		}
	})
	return hits
}
