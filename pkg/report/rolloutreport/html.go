package rolloutreport

import (
	"html/template"
	"io"

	"github.com/unshim/unshim/pkg/rollout/record"
)

// HTML writes the report as one self-contained page: inline CSS and an
// inline SVG timeline (one row per node, a bar from its switch's start to
// its end coloured by how it ended; a thin bar under it for an undo). No
// script, font, image or link leaves the page, so it opens offline and
// cannot run anything. html/template escapes every value from the cluster.
func HTML(w io.Writer, r *record.Record) error {
	return page.Execute(w, newView(r))
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rollout {{.Name}}: {{.Phase}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #1b1f24; max-width: 1100px; }
h1 { margin-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; text-align: left; vertical-align: top; font-size: .9em; }
th { background: #f6f8fa; }
.phase { font-weight: bold; padding: .1em .4em; border-radius: 4px; background: #eaeef2; }
.legend span { display: inline-block; margin-right: 1em; font-size: .85em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: middle; }
svg text { font-size: 12px; font-family: ui-monospace, monospace; }
.done { fill: #2da44e; background: #2da44e; }
.failed { fill: #cf222e; background: #cf222e; }
.rolledback { fill: #bc4c00; background: #bc4c00; }
.blocked { fill: #d4a72c; background: #d4a72c; }
.switching { fill: #0969da; background: #0969da; }
.skipped { fill: #8c959f; background: #8c959f; }
.undone { fill: #8250df; background: #8250df; }
.pending { fill: #d0d7de; background: #d0d7de; }
.undo { fill: #8250df; }
.grid { stroke: #d0d7de; stroke-width: 1; }
</style>
</head>
<body>
<h1>Rollout {{.Name}}</h1>
<p><span class="phase" id="phase">{{.Phase}}</span> to {{if .Target}}{{.Target}}{{else}}-{{end}}{{if .Message}}: {{.Message}}{{end}}</p>
<p>Started {{if .Started}}{{.Started}}{{else}}-{{end}}, ended {{if .Ended}}{{.Ended}}{{else}}-{{end}}{{if .Duration}}, took {{.Duration}}{{end}}. Report generated {{.Generated}}.</p>

<h2>Spec</h2>
<table id="spec">
{{range .Spec}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}</table>

<h2>Result</h2>
<table id="counts"><tr>{{range .Counts}}<th>{{.Key}}</th>{{end}}</tr>
<tr>{{range .Counts}}<td>{{.Value}}</td>{{end}}</tr></table>
{{if .Conditions}}<table id="conditions"><tr><th>condition</th><th>status</th><th>reason</th><th>message</th></tr>
{{range .Conditions}}<tr><td>{{.Type}}</td><td>{{.Status}}</td><td>{{.Reason}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{end}}

<h2>Timeline</h2>
<div class="legend"><span><i class="done"></i>Done</span><span><i class="rolledback"></i>RolledBack</span><span><i class="failed"></i>Failed</span><span><i class="blocked"></i>Blocked</span><span><i class="switching"></i>Switching</span><span><i class="skipped"></i>Skipped</span><span><i class="undone"></i>undone (thin bar: the undo)</span></div>
{{with .Timeline}}<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="per-node timeline">
{{range .Ticks}}<line class="grid" x1="{{.X}}" x2="{{.X}}" y1="0" y2="{{$.Timeline.AxisY}}"></line><text x="{{.X}}" y="{{$.Timeline.AxisY}}" dy="16" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Rows}}<g class="node" data-node="{{.Name}}" data-state="{{.State}}"><title>{{.Title}}</title><text class="name" x="4" y="{{.TextY}}">{{.Name}}</text>{{if .HasBar}}<rect class="bar {{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="12" rx="2"></rect>{{else}}<text class="none" x="{{$.Timeline.LabelWidth}}" y="{{.TextY}}">not started</text>{{end}}{{if .HasUndo}}<rect class="bar undo" x="{{.UX}}" y="{{.UY}}" width="{{.UW}}" height="4"></rect>{{end}}</g>
{{end}}{{if .Empty}}<text x="{{.LabelWidth}}" y="{{.AxisY}}">no node has started</text>{{end}}</svg>{{end}}

<h2>Waves</h2>
{{if .Waves}}<table id="waves"><tr><th>wave</th><th>kind</th><th>nodes</th><th>started</th><th>completed</th><th>took</th></tr>
{{range .Waves}}<tr><td>{{.Index}}</td><td>{{.Kind}}</td><td>{{.Nodes}}</td><td>{{.Start}}</td><td>{{.End}}</td><td>{{.Duration}}</td></tr>
{{end}}</table>{{else}}<p>No waves: the driver has not planned this rollout.</p>{{end}}

<h2>Nodes</h2>
<table id="nodes"><tr><th>node</th><th>wave</th><th>state</th><th>started</th><th>ended</th><th>took</th><th>undone</th></tr>
{{range .Nodes}}<tr><td>{{.Name}}</td><td>{{.Wave}}</td><td>{{.State}}</td><td>{{.Start}}</td><td>{{.End}}</td><td>{{.Elapsed}}</td><td>{{.Undo}}</td></tr>
{{end}}</table>

<h2>Failures, blocked and skipped nodes</h2>
{{if or .Problems .Skipped}}<table id="problems"><tr><th>node</th><th>state</th><th>phase</th><th>cause</th><th>blocked by</th></tr>
{{range .Problems}}<tr><td>{{.Name}}</td><td>{{.State}}</td><td>{{.FailedPhase}}</td><td>{{.Cause}}</td><td>{{.Blocking}}</td></tr>
{{end}}{{range .Skipped}}<tr><td>{{.Name}}</td><td>Skipped (not planned)</td><td></td><td>{{.Reason}}</td><td></td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}

<h2>Inventory: before and after</h2>
<table id="inventory"><tr><th>node</th><th>before</th><th>now</th><th>containerRuntimeVersion</th><th>rollout state</th><th>Ready</th><th>schedulable</th></tr>
{{range .Inventory}}<tr><td>{{.Name}}</td><td>{{.Before}}</td><td>{{.After}}</td><td>{{.Version}}</td><td>{{.State}}</td><td>{{.Ready}}</td><td>{{.Schedulable}}</td></tr>
{{end}}</table>
</body>
</html>
`))
