// Package rules holds the impact-check rules, one file per rule, and the
// catalog of known agents and log-collector configurations they read.
package rules

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/check"
)

// Options tunes the rules.
type Options struct {
	// ExtraSockets are further Docker socket paths on the nodes (--docker-socket).
	ExtraSockets []string
	// Catalog lists known agents, log-collector and monitor configurations and
	// images with mounts of their own; nil means the built-in one.
	Catalog *Catalog
}

// All returns every rule, in a stable order.
func All(o Options) ([]check.Rule, error) {
	cat := o.Catalog
	if cat == nil {
		var err error
		if cat, err = BuiltinCatalog(); err != nil {
			return nil, err
		}
	}
	hp, err := newHostPathRules(o.ExtraSockets, cat.KnownMounts)
	if err != nil {
		return nil, err
	}
	cr, err := newConfigRule(logConfigMeta(), cat.LogConfigs)
	if err != nil {
		return nil, err
	}
	mr, err := newConfigRule(monitorConfigMeta(), cat.MonitorConfigs)
	if err != nil {
		return nil, err
	}
	ar, err := newAgentRule(cat)
	if err != nil {
		return nil, err
	}
	return []check.Rule{
		hp.socket, hp.socketDir, hp.dataRoot, hp.config, hp.jsonLogs,
		dockerHostRule{}, dindRule{}, dockerCLIRule{}, ar, cr, mr,
	}, nil
}

// containerAt is one container of a pod spec and where it sits.
type containerAt struct {
	c     *corev1.Container
	t     *check.Target
	list  string // "initContainers" or "containers"
	index int
}

// field returns the container's field path; built only for a hit, as rules
// run over every pod of the cluster and almost none match.
func (ca containerAt) field() string {
	return ca.t.ContainerField(ca.list, ca.index)
}

// eachContainer calls fn for the init and regular containers of t's pod spec.
func eachContainer(t *check.Target, fn func(containerAt)) {
	spec := t.PodSpec
	for i := range spec.InitContainers {
		fn(containerAt{&spec.InitContainers[i], t, "initContainers", i})
	}
	for i := range spec.Containers {
		fn(containerAt{&spec.Containers[i], t, "containers", i})
	}
}

// normalizePath cleans p and folds /var/run onto /run, which it links to on every current distribution.
func normalizePath(p string) string {
	if p == "" {
		return ""
	}
	if !isClean(p) {
		p = path.Clean("/" + p)
	}
	if p == "/var/run" || strings.HasPrefix(p, "/var/run/") {
		p = "/run" + strings.TrimPrefix(p, "/var/run")
	}
	return p
}

// isClean reports whether p is absolute and path.Clean would leave it as it
// is (nearly every hostPath is): then normalizing it allocates nothing.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	if p[len(p)-1] == '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		// The element after this slash must not be empty, "." or "..".
		rest := p[i+1:]
		if rest == "" || rest[0] == '/' || rest == "." || rest == ".." ||
			strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
			return false
		}
	}
	return true
}

// within reports whether p is base or lies under it; both are normalized.
func within(p, base string) bool {
	return p == base || base == "/" || strings.HasPrefix(p, base+"/")
}

// imageRepo returns the repository of an image reference without tag or digest,
// and the tag ("" when none).
func imageRepo(image string) (repo, tag string) {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndex(image, "/")
	if colon := strings.LastIndex(image, ":"); colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, ""
}

// repoForms returns the forms of repo to match patterns against: as written,
// without a registry host, and with docker.io's implicit library/ dropped.
func repoForms(repo string) []string {
	forms := []string{repo}
	parts := strings.Split(repo, "/")
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost") {
		noHost := strings.Join(parts[1:], "/")
		forms = append(forms, noHost)
		if strings.HasPrefix(noHost, "library/") {
			forms = append(forms, strings.TrimPrefix(noHost, "library/"))
		}
	}
	return forms
}
