package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/unshim/unshim/pkg/check"
)

// FindingsSummary counts findings by severity.
type FindingsSummary struct {
	Total      int            `json:"total"`
	BySeverity map[string]int `json:"bySeverity"`
}

// FindingList is the machine-readable form of `unshim check`.
type FindingList struct {
	Findings []check.Finding `json:"findings"`
	Summary  FindingsSummary `json:"summary"`
	// Scanned counts the objects read, by kind, skipped ones included.
	Scanned map[string]int `json:"scanned"`
	// Skipped lists the objects read but not checked, with file, line and why.
	Skipped []check.Skipped `json:"skipped"`
}

func summarize(fs []check.Finding) FindingsSummary {
	s := FindingsSummary{Total: len(fs), BySeverity: map[string]int{}}
	for _, f := range fs {
		s.BySeverity[f.Severity.String()]++
	}
	return s
}

// Findings writes a check result in format f (table, json, yaml or sarif);
// rules describe the rules that ran, for SARIF's rule table and the remedies.
func Findings(w io.Writer, res *check.Result, rules []check.RuleMeta, f Format) error {
	fs := res.Findings
	if fs == nil {
		fs = []check.Finding{}
	}
	skipped := res.Skipped
	if skipped == nil {
		skipped = []check.Skipped{}
	}
	list := FindingList{Findings: fs, Summary: summarize(fs), Scanned: res.Scanned, Skipped: skipped}
	switch f {
	case JSON:
		return findingsJSON(w, list)
	case YAML:
		return writeYAML(w, list)
	case SARIF:
		return writeJSON(w, toSARIF(fs, rules, skipped))
	case Table, Wide:
		return findingsTable(w, list)
	}
	return fmt.Errorf("findings cannot be written as %s", f)
}

// SkippedText is the one-line warning for an object that was not checked.
func SkippedText(s check.Skipped) string {
	loc := s.File
	if s.Line > 0 {
		loc += ":" + strconv.Itoa(s.Line)
	}
	obj := s.Object.String()
	if s.Object.Kind == "" {
		obj = "document"
	}
	if loc != "" {
		obj += " (" + loc + ")"
	}
	return fmt.Sprintf("WARNING: skipped %s: %s", obj, s.Reason)
}

func findingsTable(w io.Writer, list FindingList) error {
	for _, s := range list.Skipped {
		fmt.Fprintln(w, SkippedText(s))
	}
	if len(list.Skipped) > 0 {
		fmt.Fprintln(w)
	}
	if len(list.Findings) == 0 {
		_, err := fmt.Fprintf(w, "No Docker dependencies found (%s scanned%s).\n", scannedText(list.Scanned), skippedNote(list.Skipped))
		return err
	}
	fromFiles := false
	for _, f := range list.Findings {
		if f.File != "" {
			fromFiles = true
			break
		}
	}
	tw := newTabWriter(w)
	head := "SEVERITY\tOBJECT\tCONTAINER\tRULE\tPODS\tDETAIL"
	if fromFiles {
		head = "SEVERITY\tOBJECT\tCONTAINER\tRULE\tLOCATION\tDETAIL"
	}
	fmt.Fprintln(tw, head)
	for _, f := range list.Findings {
		col := strconv.Itoa(f.Pods)
		if fromFiles {
			col = f.File
			if f.Line > 0 {
				col += ":" + strconv.Itoa(f.Line)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(f.Severity.String()), f.Object, orNone(f.Container), f.Rule, col, f.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nWhat to do:")
	seen := map[string]bool{}
	for _, f := range list.Findings {
		k := f.Rule + "\x00" + f.Remedy
		if seen[k] {
			continue
		}
		seen[k] = true
		fmt.Fprintf(w, "  %s: %s\n", f.Rule, f.Remedy)
	}
	sev := make([]string, 0, len(list.Summary.BySeverity))
	for _, name := range check.SeverityNames() {
		if n := list.Summary.BySeverity[name]; n > 0 {
			sev = append([]string{fmt.Sprintf("%d %s", n, name)}, sev...)
		}
	}
	noun := "findings"
	if list.Summary.Total == 1 {
		noun = "finding"
	}
	_, err := fmt.Fprintf(w, "\n%d %s (%s); %s scanned%s.\n", list.Summary.Total, noun, strings.Join(sev, ", "), scannedText(list.Scanned), skippedNote(list.Skipped))
	return err
}

func skippedNote(s []check.Skipped) string {
	if len(s) == 0 {
		return ""
	}
	return fmt.Sprintf(", %d of them skipped (see the warnings above)", len(s))
}

func scannedText(scanned map[string]int) string {
	kinds := make([]string, 0, len(scanned))
	for k := range scanned {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	if len(kinds) == 0 {
		return "no objects"
	}
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		name := k
		if name == "" {
			name = "without kind"
		}
		parts[i] = fmt.Sprintf("%d %s", scanned[k], name)
	}
	return strings.Join(parts, ", ")
}

// findingsJSON writes list as writeJSON would, one finding at a time, so a
// large result is never held twice more in memory as encoded text.
func findingsJSON(w io.Writer, list FindingList) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if len(list.Findings) == 0 {
		bw.WriteString("{\n  \"findings\": [],")
	} else {
		bw.WriteString("{\n  \"findings\": [")
		for i, f := range list.Findings {
			data, err := json.MarshalIndent(f, "    ", "  ")
			if err != nil {
				return err
			}
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString("\n    ")
			bw.Write(data)
		}
		bw.WriteString("\n  ],")
	}
	rest := []struct {
		key string
		v   any
	}{{"summary", list.Summary}, {"scanned", list.Scanned}, {"skipped", list.Skipped}}
	for i, r := range rest {
		data, err := json.MarshalIndent(r.v, "  ", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "\n  %q: %s", r.key, data)
		if i < len(rest)-1 {
			bw.WriteByte(',')
		}
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
}
