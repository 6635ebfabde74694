package rules

import (
	"fmt"
	"path"
	"strings"

	"github.com/unshim/unshim/pkg/check"
)

// dindRule reports Docker-in-Docker containers.
type dindRule struct{}

func (dindRule) Meta() check.RuleMeta {
	return check.RuleMeta{ID: "docker-in-docker", Title: "Runs Docker-in-Docker", Severity: check.SeverityHigh,
		Remedy: "Build images without a Docker daemon: Kaniko, Buildah or BuildKit (buildx with the kubernetes driver, or rootless buildkitd). " +
			"A dind sidecar keeps working on containerd only if it is privileged and its storage is an emptyDir; check that before the switch."}
}

// isDind reports whether image is a Docker-in-Docker image (docker:*dind*, */dind, *-dind).
func isDind(image string) bool {
	if !containsFold(image, "dind") {
		return false
	}
	repo, tag := imageRepo(image)
	name := strings.ToLower(path.Base(repo))
	tag = strings.ToLower(tag)
	for _, tok := range strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		if tok == "dind" {
			return true
		}
	}
	return strings.Contains(name, "docker") && strings.Contains(tag, "dind")
}

func (dindRule) Check(t *check.Target) []check.Hit {
	if t.PodSpec == nil {
		return nil
	}
	var hits []check.Hit
	eachContainer(t, func(ca containerAt) {
		if isDind(ca.c.Image) {
			hits = append(hits, check.Hit{Container: ca.c.Name, Evidence: ca.c.Image, Field: ca.field() + ".image",
				Message: fmt.Sprintf("runs the Docker-in-Docker image %s", ca.c.Image)})
		}
	})
	return hits
}

// containsFold reports whether s contains the lower-case ASCII word sub, in any case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}
