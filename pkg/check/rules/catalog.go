package rules

import (
	_ "embed"
	"fmt"
	"os"
	"path"
	"regexp"

	"sigs.k8s.io/yaml"
)

//go:embed catalog.yaml
var builtinCatalog []byte

// Catalog lists known Docker-dependent agents and log-collector configurations.
type Catalog struct {
	Agents     []Agent     `json:"agents"`
	LogConfigs []LogConfig `json:"logConfigs"`
}

// Agent is a telemetry or security agent known to have used Docker.
type Agent struct {
	Name   string   `json:"name"`
	Images []string `json:"images"`
	Note   string   `json:"note"`
	Remedy string   `json:"remedy"`
}

// LogConfig is a log-collector setting that reads Docker's JSON logs.
type LogConfig struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
	Remedy  string `json:"remedy"`
}

// BuiltinCatalog returns the catalog shipped with unshim.
func BuiltinCatalog() (*Catalog, error) {
	return ParseCatalog(builtinCatalog, "built-in catalog")
}

// ParseCatalog decodes and validates a catalog; name is used in errors.
func ParseCatalog(data []byte, name string) (*Catalog, error) {
	var c Catalog
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("parse catalog %s: %w", name, err)
	}
	for i, a := range c.Agents {
		if a.Name == "" || len(a.Images) == 0 {
			return nil, fmt.Errorf("catalog %s: agents[%d] needs a name and at least one image pattern", name, i)
		}
		for _, p := range a.Images {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("catalog %s: agents[%d] (%s): bad image pattern %q: %w", name, i, a.Name, p, err)
			}
		}
	}
	for i, l := range c.LogConfigs {
		if l.Name == "" || l.Pattern == "" {
			return nil, fmt.Errorf("catalog %s: logConfigs[%d] needs a name and a pattern", name, i)
		}
		if _, err := regexp.Compile(l.Pattern); err != nil {
			return nil, fmt.Errorf("catalog %s: logConfigs[%d] (%s): bad pattern: %w", name, i, l.Name, err)
		}
	}
	return &c, nil
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
	}
	return c, nil
}
