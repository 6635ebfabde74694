package rolloutreport

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/unshim/unshim/pkg/rollout/record"
)

// Markdown writes the report as Markdown (GitHub's tables). Every value
// from the cluster is escaped: a cause holding "<script>" or "|" stays text
// in its cell.
func Markdown(w io.Writer, r *record.Record) error {
	v := newView(r)
	b := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("# Rollout %s\n\n", md(v.Name))
	p("**%s** to %s", md(v.Phase), md(orDash(v.Target)))
	if v.Message != "" {
		p(": %s", md(v.Message))
	}
	p("\n\n")
	p("Started %s, ended %s, took %s. Report generated %s.\n\n", md(orDash(v.Started)), md(orDash(v.Ended)), md(orDash(v.Duration)), md(v.Generated))

	p("## Spec\n\n")
	table(b, []string{"setting", "value"}, kvRows(v.Spec))

	p("## Result\n\n")
	table(b, []string{"nodes", "count"}, kvRows(v.Counts))
	if len(v.Conditions) > 0 {
		var rows [][]string
		for _, c := range v.Conditions {
			rows = append(rows, []string{c.Type, string(c.Status), c.Reason, c.Message, stamp(c.LastTransitionTime.Time)})
		}
		table(b, []string{"condition", "status", "reason", "message", "since"}, rows)
	}

	p("## Waves\n\n")
	if len(v.Waves) == 0 {
		p("No waves: the driver has not planned this rollout.\n\n")
	} else {
		var rows [][]string
		for _, wv := range v.Waves {
			rows = append(rows, []string{fmt.Sprint(wv.Index), wv.Kind, wv.Nodes, orDash(wv.Start), orDash(wv.End), orDash(wv.Duration)})
		}
		table(b, []string{"wave", "kind", "nodes", "started", "completed", "took"}, rows)
	}

	p("## Timeline\n\n")
	if len(v.Nodes) == 0 {
		p("No nodes.\n\n")
	} else {
		var rows [][]string
		for _, n := range v.Nodes {
			rows = append(rows, []string{n.Name, n.Wave, n.State, orDash(n.Start), orDash(n.End), orDash(n.Elapsed), orDash(n.Undo)})
		}
		table(b, []string{"node", "wave", "state", "started", "ended", "took", "undone"}, rows)
	}

	p("## Failures, blocked and skipped nodes\n\n")
	if len(v.Problems) == 0 && len(v.Skipped) == 0 {
		p("None.\n\n")
	} else {
		var rows [][]string
		for _, n := range v.Problems {
			rows = append(rows, []string{n.Name, n.State, orDash(n.FailedPhase), orDash(n.Cause), orDash(n.Blocking)})
		}
		for _, s := range v.Skipped {
			rows = append(rows, []string{s.Name, "Skipped (not planned)", "-", s.Reason, "-"})
		}
		table(b, []string{"node", "state", "phase", "cause", "blocked by"}, rows)
	}

	p("## Inventory: before and after\n\n")
	if len(v.Inventory) == 0 {
		p("No nodes.\n\n")
	} else {
		var rows [][]string
		for _, n := range v.Inventory {
			rows = append(rows, []string{n.Name, n.Before, n.After, n.Version, n.State, n.Ready, n.Schedulable})
		}
		table(b, []string{"node", "before", "now", "containerRuntimeVersion", "rollout state", "Ready", "schedulable"}, rows)
	}
	return b.Flush()
}

func kvRows(kvs []kv) [][]string {
	rows := make([][]string, 0, len(kvs))
	for _, e := range kvs {
		rows = append(rows, []string{e.Key, e.Value})
	}
	return rows
}

func table(w io.Writer, head []string, rows [][]string) {
	cells := func(cs []string) string {
		esc := make([]string, len(cs))
		for i, c := range cs {
			esc[i] = md(c)
		}
		return "| " + strings.Join(esc, " | ") + " |\n"
	}
	io.WriteString(w, cells(head))
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
	}
	io.WriteString(w, "|"+strings.Join(sep, "|")+"|\n")
	for _, r := range rows {
		io.WriteString(w, cells(r))
	}
	io.WriteString(w, "\n")
}

// mdEscaper keeps a value text in Markdown: HTML is entity-escaped (a
// renderer would pass raw HTML through), table pipes and emphasis, link and
// code characters are backslash-escaped, and line breaks become spaces (a
// cell is one line).
var mdEscaper = strings.NewReplacer(
	"&", "&amp;", "<", "&lt;", ">", "&gt;",
	`\`, `\\`, "|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`", "[", `\[`, "]", `\]`,
	"\r\n", " ", "\n", " ", "\r", " ",
)

func md(s string) string { return mdEscaper.Replace(s) }
