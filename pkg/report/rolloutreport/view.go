// Package rolloutreport renders a rollout's record (pkg/rollout/record) as
// Markdown, or as one self-contained HTML page (inline CSS, an inline SVG
// timeline, no scripts, fonts or images: it opens offline). It only
// formats: it never reads the cluster.
package rolloutreport

import (
	"fmt"
	"math"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/rollout/record"
)

// view is what both formats show, worked out once.
type view struct {
	Name, Target, Phase, Message string
	Generated, Started, Ended    string
	Duration                     string
	Spec                         []kv
	Conditions                   []metav1.Condition
	Counts                       []kv
	Waves                        []waveRow
	Nodes                        []nodeRow
	Problems                     []nodeRow
	Skipped                      []v1alpha1.SkippedNode
	Inventory                    []invRow
	Timeline                     timeline
}

type kv struct{ Key, Value string }

type waveRow struct {
	Index          int32
	Kind, Nodes    string
	Start, End     string
	Duration       string
	NodeCount      int
	CompletionTime *metav1.Time
}

type nodeRow struct {
	Name, Wave, State, FailedPhase, Cause string
	Blocking                              string
	Start, End, Elapsed                   string
	Undo                                  string
	Class                                 string // CSS class of the state
}

type invRow struct {
	Name, Before, After, Version, Ready, Schedulable, State string
}

// timeline is the SVG's geometry: one row per node, x in pixels.
type timeline struct {
	Width, Height, LabelWidth, PlotWidth int
	Rows                                 []barRow
	Ticks                                []tick
	Empty                                bool
	AxisY                                int
}

type barRow struct {
	Name, State, Class, Title string
	Y, TextY, UY              int
	// X, W: the switch's bar (W 0: never started); UX, UW: the undo's.
	X, W, UX, UW float64
	HasBar       bool
	HasUndo      bool
}

type tick struct {
	X     float64
	Label string
}

const (
	rowHeight  = 22
	labelWidth = 220
	plotWidth  = 640
	topPad     = 8
	axisHeight = 28
)

func newView(r *record.Record) view {
	st := r.Status
	v := view{
		Name: r.Name, Target: r.Spec.TargetRuntime, Phase: orDash(st.Phase), Message: st.Message,
		Generated: stamp(r.Generated), Started: stampOf(st.StartTime), Ended: stampOf(st.CompletionTime),
		Conditions: st.Conditions, Skipped: st.Skipped,
	}
	if st.StartTime != nil {
		end := r.Generated
		if st.CompletionTime != nil {
			end = st.CompletionTime.Time
		}
		v.Duration = dur(end.Sub(st.StartTime.Time))
	}
	v.Spec = specSummary(r.Spec)
	c := st.Counts
	v.Counts = []kv{{"total", itoa(c.Total)}, {"done", itoa(c.Done)}, {"switching", itoa(c.Switching)}, {"pending", itoa(c.Pending)},
		{"failed", itoa(c.Failed)}, {"blocked", itoa(c.Blocked)}, {"rolled back", itoa(c.RolledBack)}, {"skipped", itoa(c.Skipped)}, {"undone", itoa(c.Undone)}}
	for _, w := range st.Waves {
		row := waveRow{Index: w.Index + 1, Kind: w.Kind, Nodes: strings.Join(w.Nodes, ", "), NodeCount: len(w.Nodes),
			Start: stampOf(w.StartTime), End: stampOf(w.CompletionTime)}
		if w.StartTime != nil && w.CompletionTime != nil {
			row.Duration = dur(w.CompletionTime.Sub(w.StartTime.Time))
		}
		v.Waves = append(v.Waves, row)
	}
	for _, n := range r.Nodes {
		row := nodeRow{Name: n.Name, Wave: fmt.Sprintf("%d (%s)", n.Wave+1, orDash(n.WaveKind)), State: orDash(n.State),
			FailedPhase: n.FailedPhase, Cause: n.Cause, Class: class(n.State)}
		if n.Blocking != nil {
			row.Blocking = fmt.Sprintf("PDB %s; pods %s", orDash(n.Blocking.PodDisruptionBudget), orDash(strings.Join(n.Blocking.Pods, ", ")))
		}
		if s, e, ok := n.Span(r.Generated); ok {
			row.Start, row.End, row.Elapsed = stamp(s), stampOf(n.CompletionTime), dur(e.Sub(s))
		}
		if s, e, ok := n.UndoSpan(r.Generated); ok {
			row.Undo = fmt.Sprintf("%s (%s)", stamp(s), dur(e.Sub(s)))
		}
		v.Nodes = append(v.Nodes, row)
		if n.Problem() {
			v.Problems = append(v.Problems, row)
		}
		inv := invRow{Name: n.Name, Before: orDash(n.FromRuntime), After: n.Now(), Version: orDash(n.RuntimeVersion), State: orDash(n.State),
			Ready: yesNo(n.Ready), Schedulable: yesNo(n.Schedulable)}
		if n.Gone {
			inv.Ready, inv.Schedulable = "-", "-"
		}
		v.Inventory = append(v.Inventory, inv)
	}
	v.Timeline = newTimeline(r)
	return v
}

func newTimeline(r *record.Record) timeline {
	t := timeline{LabelWidth: labelWidth, PlotWidth: plotWidth, Width: labelWidth + plotWidth + 40} // room for the last tick's label
	t.Height = topPad + rowHeight*max(len(r.Nodes), 1) + axisHeight
	t.AxisY = topPad + rowHeight*max(len(r.Nodes), 1)
	start, end, ok := r.Bounds()
	t.Empty = !ok
	span := end.Sub(start)
	if span <= 0 {
		span = time.Second
	}
	x := func(at time.Time) float64 {
		return round1(float64(labelWidth) + float64(plotWidth)*float64(at.Sub(start))/float64(span))
	}
	width := func(s, e time.Time) float64 {
		return math.Max(round1(float64(plotWidth)*float64(e.Sub(s))/float64(span)), 2) // a bar stays visible
	}
	for i, n := range r.Nodes {
		y := topPad + i*rowHeight
		row := barRow{Name: n.Name, State: orDash(n.State), Class: class(n.State), Y: y + 3, UY: y + 16, TextY: y + 14}
		title := n.Name + ": " + orDash(n.State)
		if s, e, has := n.Span(r.Generated); has && ok {
			row.HasBar, row.X, row.W = true, x(s), width(s, e)
			title += fmt.Sprintf(", %s from %s", dur(e.Sub(s)), stamp(s))
		} else {
			title += ", not started"
		}
		if n.FailedPhase != "" {
			title += ", in phase " + n.FailedPhase
		}
		if n.Cause != "" {
			title += ": " + n.Cause
		}
		if s, e, has := n.UndoSpan(r.Generated); has && ok {
			row.HasUndo, row.UX, row.UW = true, x(s), width(s, e)
			title += fmt.Sprintf("; undone in %s", dur(e.Sub(s)))
		}
		row.Title = title
		t.Rows = append(t.Rows, row)
	}
	if ok {
		for i := 0; i <= 4; i++ {
			at := start.Add(time.Duration(float64(span) * float64(i) / 4))
			t.Ticks = append(t.Ticks, tick{X: x(at), Label: at.UTC().Format("15:04:05")})
		}
	}
	return t
}

func specSummary(s v1alpha1.RuntimeMigrationSpec) []kv {
	nodes := "every node still on Docker"
	var sel []string
	if s.Nodes.Selector != nil {
		if ls, err := metav1.LabelSelectorAsSelector(s.Nodes.Selector); err == nil {
			sel = append(sel, "selector "+ls.String())
		}
	}
	if len(s.Nodes.Names) > 0 {
		sel = append(sel, "names "+strings.Join(s.Nodes.Names, ", "))
	}
	if len(sel) > 0 {
		nodes = strings.Join(sel, "; ")
	}
	maxUn := "1"
	if s.MaxUnavailable != nil {
		maxUn = s.MaxUnavailable.String()
	}
	canary := s.CanaryMode()
	if canary == v1alpha1.CanaryCount {
		canary += fmt.Sprintf(" (%d)", s.Canary.Count)
	}
	out := []kv{
		{"target runtime", orDash(s.TargetRuntime)},
		{"nodes", nodes},
		{"maxUnavailable", maxUn},
		{"canary", canary},
		{"failure budget", fmt.Sprintf("%d per wave, %d in all", s.FailureBudget.PerWave, s.FailureBudget.Total)},
	}
	for _, l := range []struct {
		what string
		lim  *v1alpha1.TopologyLimit
	}{{"per zone", s.Zone}, {"per pool", s.Pool}} {
		if l.lim != nil {
			out = append(out, kv{"maxUnavailable " + l.what, fmt.Sprintf("%s (label %s)", l.lim.MaxUnavailable.String(), orDash(l.lim.LabelKey))})
		}
	}
	if len(s.Windows) > 0 {
		var ws []string
		for _, w := range s.Windows {
			days := "every day"
			if len(w.Days) > 0 {
				var ds []string
				for _, d := range w.Days {
					ds = append(ds, string(d))
				}
				days = strings.Join(ds, ",")
			}
			tz := w.TimeZone
			if tz == "" {
				tz = "UTC"
			}
			ws = append(ws, fmt.Sprintf("%s %s-%s %s", days, w.Start, w.End, tz))
		}
		out = append(out, kv{"windows", strings.Join(ws, "; ")})
	}
	if len(s.Gates) > 0 {
		var gs []string
		for _, g := range s.Gates {
			gs = append(gs, g.Name+" ("+g.Type+")")
		}
		out = append(out, kv{"gates", strings.Join(gs, ", ")})
	}
	if s.SoakTime != nil {
		out = append(out, kv{"soak time", s.SoakTime.Duration.String()})
	}
	out = append(out,
		kv{"drain timeout", v1alpha1.DurationOr(s.DrainTimeout, v1alpha1.DefaultDrainTimeout).String()},
		kv{"verify timeout", v1alpha1.DurationOr(s.VerifyTimeout, v1alpha1.DefaultVerifyTimeout).String()})
	via := s.Transport.Via
	if via == "" {
		via = v1alpha1.TransportPod
	}
	out = append(out, kv{"transport", via})
	var ctl []string
	if s.Paused {
		ctl = append(ctl, "paused")
	}
	if s.Abort {
		ctl = append(ctl, "abort")
	}
	if s.AllowLastDockerNodes {
		ctl = append(ctl, "allowLastDockerNodes")
	}
	if len(ctl) > 0 {
		out = append(out, kv{"set", strings.Join(ctl, ", ")})
	}
	return out
}

// class is the CSS class (and legend entry) of a node state.
func class(state string) string {
	switch state {
	case v1alpha1.NodeDone:
		return "done"
	case v1alpha1.NodeFailed:
		return "failed"
	case v1alpha1.NodeRolledBack:
		return "rolledback"
	case v1alpha1.NodeBlocked:
		return "blocked"
	case v1alpha1.NodeSwitching:
		return "switching"
	case v1alpha1.NodeSkipped:
		return "skipped"
	case v1alpha1.NodeUndone:
		return "undone"
	}
	return "pending"
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func stampOf(t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return stamp(t.Time)
}

func dur(d time.Duration) string { return d.Round(time.Second).String() }

func itoa(i int32) string { return fmt.Sprint(i) }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
