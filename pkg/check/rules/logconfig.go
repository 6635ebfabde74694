package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/unshim/unshim/pkg/check"
)

// configRule reports ConfigMap values that match catalogued patterns: log
// collectors reading Docker's JSON logs, node monitors watching dockerd.
type configRule struct {
	meta    check.RuleMeta
	configs []LogConfig
	res     []*regexp.Regexp
	lits    [][]string // strings one of which every match contains (nil for none known)
	folds   []bool     // lits[i] are lower-case, to find in the lower-cased value
}

func newConfigRule(meta check.RuleMeta, configs []LogConfig) (configRule, error) {
	r := configRule{meta: meta, configs: configs}
	for _, l := range configs {
		re, err := regexp.Compile(l.Pattern)
		if err != nil {
			return r, fmt.Errorf("%s %s: %w", meta.ID, l.Name, err)
		}
		r.res = append(r.res, re)
		lit, fold := requiredLiterals(l.Pattern)
		r.lits, r.folds = append(r.lits, lit), append(r.folds, fold)
	}
	return r, nil
}

func logConfigMeta() check.RuleMeta {
	return check.RuleMeta{ID: "docker-log-config", Title: "Log collector configured for Docker's JSON logs", Severity: check.SeverityMedium, Remedy: RemedyLogs}
}

func monitorConfigMeta() check.RuleMeta {
	return check.RuleMeta{ID: "docker-monitor-config", Title: "Node monitor configured to watch the Docker daemon", Severity: check.SeverityMedium,
		Remedy: "Point the monitor at containerd: node-problem-detector's journald source `containerd` (or the containerd unit) instead of `dockerd`, " +
			"and its health checker with --component=cri instead of docker; drop docker-monitor*.json from --system-log-monitors."}
}

func (r configRule) Meta() check.RuleMeta { return r.meta }

func (r configRule) Check(t *check.Target) []check.Hit {
	if t.ConfigMap == nil || len(r.res) == 0 {
		return nil
	}
	keys := make([]string, 0, len(t.ConfigMap.Data))
	for k := range t.ConfigMap.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var hits []check.Hit
	for _, k := range keys {
		v := t.ConfigMap.Data[k]
		lower := ""
		for i, re := range r.res {
			if lits := r.lits[i]; len(lits) > 0 {
				in := v
				if r.folds[i] {
					if lower == "" {
						lower = strings.ToLower(v)
					}
					in = lower
				}
				if !containsAny(in, lits) {
					continue
				}
			}
			if re.MatchString(v) {
				hits = append(hits, check.Hit{Evidence: k + ": " + r.configs[i].Name, Field: "data." + k,
					Message: fmt.Sprintf("configuration %q: %s", k, r.configs[i].Name), Remedy: r.configs[i].Remedy})
			}
		}
	}
	return hits
}
