package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

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
		return findingsYAML(w, list)
	case SARIF:
		return findingsSARIF(w, fs, rules, skipped)
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
		var buf []byte
		for i := range list.Findings {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString("\n    ")
			buf = appendFindingJSON(buf[:0], &list.Findings[i])
			bw.Write(buf)
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

// findingsYAML writes list as writeYAML would, one finding (and one skipped
// object) at a time. sigs.k8s.io/yaml writes a mapping's keys sorted, so the
// document is findings, scanned, skipped, summary; each item is marshaled
// as the only item of a list under its key, so it is indented, and its long
// strings folded, exactly as in the whole document, and the key's line is dropped.
func findingsYAML(w io.Writer, list FindingList) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := yamlList(bw, "findings", list.Findings); err != nil {
		return err
	}
	if err := yamlEntry(bw, "scanned", list.Scanned); err != nil {
		return err
	}
	if err := yamlList(bw, "skipped", list.Skipped); err != nil {
		return err
	}
	if err := yamlEntry(bw, "summary", list.Summary); err != nil {
		return err
	}
	return bw.Flush()
}

// yamlEntry writes the one-key mapping key: v.
func yamlEntry(w *bufio.Writer, key string, v any) error {
	data, err := yaml.Marshal(map[string]any{key: v})
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// yamlList writes key: and the items of a list, one at a time.
func yamlList[T any](w *bufio.Writer, key string, items []T) error {
	if len(items) == 0 {
		return yamlEntry(w, key, items)
	}
	w.WriteString(key + ":\n")
	for i := range items {
		data, err := yaml.Marshal(map[string][]T{key: items[i : i+1]})
		if err != nil {
			return err
		}
		head := key + ":\n"
		if !bytes.HasPrefix(data, []byte(head)) {
			return fmt.Errorf("yaml of %s[%d] does not start with %q", key, i, head)
		}
		if _, err := w.Write(data[len(head):]); err != nil {
			return err
		}
	}
	return nil
}

// findingsSARIF writes the SARIF log writeJSON would write for the whole
// log, one result and one notification at a time.
func findingsSARIF(w io.Writer, fs []check.Finding, rules []check.RuleMeta, skipped []check.Skipped) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	log := newSARIFLog(rules)
	run := log.Runs[0]
	fmt.Fprintf(bw, "{\n  \"$schema\": %s,\n  \"version\": %s,\n  \"runs\": [\n    {\n      \"tool\": ", jsonString(log.Schema), jsonString(log.Version))
	if err := jsonIndent(bw, run.Tool, "      "); err != nil {
		return err
	}
	bw.WriteString(",\n")
	if len(skipped) > 0 {
		bw.WriteString("      \"invocations\": [\n        {\n          \"executionSuccessful\": true,\n          \"toolExecutionNotifications\": [")
		for i, s := range skipped {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString("\n            ")
			if err := jsonIndent(bw, sarifNotificationOf(s), "            "); err != nil {
				return err
			}
		}
		bw.WriteString("\n          ]\n        }\n      ],\n")
	}
	bw.WriteString("      \"results\": [")
	for i, f := range fs {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n        ")
		if err := jsonIndent(bw, sarifResultOf(f), "        "); err != nil {
			return err
		}
	}
	if len(fs) > 0 {
		bw.WriteString("\n      ")
	}
	bw.WriteString("]\n    }\n  ]\n}\n")
	return bw.Flush()
}

func jsonIndent(w *bufio.Writer, v any, prefix string) error {
	data, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

func jsonString(s string) string {
	data, _ := json.Marshal(s)
	return string(data)
}

// appendFindingJSON appends f as json.MarshalIndent(f, "    ", "  ") writes
// it, without reflection or a second pass to indent: a large result has
// thousands of findings, and writing them is the one step of the check that
// runs on a single CPU. TestFindingsStreamOnCorpus holds it to the encoder.
func appendFindingJSON(b []byte, f *check.Finding) []byte {
	const in = "\n      "
	b = append(b, "{"+in+`"object": `...)
	b = appendObjectRefJSON(b, f.Object, in)
	b = appendField(b, in, "rule", f.Rule, false)
	b = appendField(b, in, "severity", f.Severity.String(), false)
	b = appendField(b, in, "message", f.Message, false)
	b = appendField(b, in, "remedy", f.Remedy, false)
	b = appendField(b, in, "container", f.Container, true)
	b = appendField(b, in, "evidence", f.Evidence, true)
	b = appendField(b, in, "field", f.Field, true)
	if f.Pods != 0 {
		b = append(b, ","+in+`"pods": `...)
		b = strconv.AppendInt(b, int64(f.Pods), 10)
	}
	if f.Via != nil {
		b = append(b, ","+in+`"via": `...)
		b = appendObjectRefJSON(b, *f.Via, in)
	}
	b = appendField(b, in, "file", f.File, true)
	if f.Line != 0 {
		b = append(b, ","+in+`"line": `...)
		b = strconv.AppendInt(b, int64(f.Line), 10)
	}
	return append(b, "\n    }"...)
}

// appendObjectRefJSON appends o as an object one level deeper than in.
func appendObjectRefJSON(b []byte, o check.ObjectRef, in string) []byte {
	inner := in + "  "
	b = append(b, '{')
	b = append(b, inner...)
	b = append(b, `"kind": `...)
	b = appendJSONString(b, o.Kind)
	b = appendField(b, inner, "namespace", o.Namespace, true)
	b = appendField(b, inner, "name", o.Name, false)
	b = append(b, in...)
	return append(b, '}')
}

// appendField appends ,<in>"key": "value"; omitEmpty leaves out an empty value.
func appendField(b []byte, in, key, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',')
	b = append(b, in...)
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `": `...)
	return appendJSONString(b, value)
}

// appendJSONString appends s quoted as encoding/json quotes it: printable
// ASCII other than " \\ < > & as it is, anything else through the encoder.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			data, _ := json.Marshal(s)
			return append(b, data...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
