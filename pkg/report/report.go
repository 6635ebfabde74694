// Package report renders unshim's results (node inventories, check findings)
// as tables, JSON, YAML or SARIF. It never talks to a cluster or a node.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Format is an output format name given with -o.
type Format string

// Output formats.
const (
	Table Format = "table"
	Wide  Format = "wide"
	JSON  Format = "json"
	YAML  Format = "yaml"
	SARIF Format = "sarif"
	Text  Format = "text"
)

// ParseFormat checks name against the formats a command accepts; "" means table.
func ParseFormat(name string, accepted ...Format) (Format, error) {
	if name == "" {
		name = string(Table)
	}
	names := make([]string, len(accepted))
	for i, f := range accepted {
		if string(f) == name {
			return f, nil
		}
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown output format %q: want one of %s", name, strings.Join(names, ", "))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeYAML(w io.Writer, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
