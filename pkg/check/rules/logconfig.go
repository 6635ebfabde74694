package rules

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/unshim/unshim/pkg/check"
)

// configMapRule reports log-collector configuration that reads Docker's JSON logs.
type configMapRule struct {
	configs []LogConfig
	res     []*regexp.Regexp
}

func newConfigMapRule(c *Catalog) (configMapRule, error) {
	r := configMapRule{configs: c.LogConfigs}
	for _, l := range c.LogConfigs {
		re, err := regexp.Compile(l.Pattern)
		if err != nil {
			return r, fmt.Errorf("log config %s: %w", l.Name, err)
		}
		r.res = append(r.res, re)
	}
	return r, nil
}

func (configMapRule) Meta() check.RuleMeta {
	return check.RuleMeta{ID: "docker-log-config", Title: "Log collector configured for Docker's JSON logs", Severity: check.SeverityMedium, Remedy: RemedyLogs}
}

func (r configMapRule) Check(t *check.Target) []check.Hit {
	if t.ConfigMap == nil {
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
		for i, re := range r.res {
			if re.MatchString(v) {
				hits = append(hits, check.Hit{Evidence: k + ": " + r.configs[i].Name, Field: "data." + k,
					Message: fmt.Sprintf("configuration %q: %s", k, r.configs[i].Name), Remedy: r.configs[i].Remedy})
			}
		}
	}
	return hits
}
