package status

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/report"
	"github.com/unshim/unshim/pkg/rollout/live"
)

// plain prints one line per change until the rollout ends (then the
// final table), the events stop, or ctx ends (quietly).
func plain(ctx context.Context, out io.Writer, md *live.Model, events <-chan live.Event, now func() time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			for _, line := range md.Apply(ev) {
				fmt.Fprintf(out, "%s %s\n", now().Format("15:04:05"), line)
			}
			if md.Ended() {
				if m := md.Rollout(); m != nil && m.Ended() {
					fmt.Fprintln(out, "---")
					return report.RolloutStatus(out, m, report.Table)
				}
				return nil
			}
		}
	}
}

// tui is the live view on a terminal: the totals and ETA, then one row per
// node, redrawn on every change and every second (the elapsed times).
// q or Ctrl-C quits; it never changes the rollout.
type tui struct {
	md     *live.Model
	events <-chan live.Event
	now    func() time.Time
	done   bool
}

type eventMsg live.Event

type tickMsg struct{}

type closedMsg struct{}

func (t *tui) wait() tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-t.events
		if !ok {
			return closedMsg{}
		}
		return eventMsg(ev)
	}
}

func tick() tea.Cmd { return tea.Tick(time.Second, func(time.Time) tea.Msg { return tickMsg{} }) }

func (t *tui) Init() tea.Cmd { return tea.Batch(t.wait(), tick()) }

func (t *tui) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			t.done = true
			return t, tea.Quit
		}
	case eventMsg:
		t.md.Apply(live.Event(msg))
		if t.md.Ended() {
			t.done = true
			return t, tea.Quit
		}
		return t, t.wait()
	case closedMsg:
		t.done = true
		return t, tea.Quit
	case tickMsg:
		return t, tick()
	}
	return t, nil
}

var (
	bold   = lipgloss.NewStyle().Bold(true)
	faint  = lipgloss.NewStyle().Faint(true)
	colors = map[string]lipgloss.Style{
		v1alpha1.NodeDone:       lipgloss.NewStyle().Foreground(lipgloss.Color("2")),
		v1alpha1.NodeSwitching:  lipgloss.NewStyle().Foreground(lipgloss.Color("4")).Bold(true),
		v1alpha1.NodeFailed:     lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		v1alpha1.NodeRolledBack: lipgloss.NewStyle().Foreground(lipgloss.Color("1")),
		v1alpha1.NodeBlocked:    lipgloss.NewStyle().Foreground(lipgloss.Color("3")),
		v1alpha1.NodeSkipped:    lipgloss.NewStyle().Faint(true),
		v1alpha1.NodeUndone:     lipgloss.NewStyle().Foreground(lipgloss.Color("5")),
	}
)

func (t *tui) View() string {
	now := t.now()
	var b strings.Builder
	b.WriteString(bold.Render(t.md.Summary(now)) + "\n\n")
	rows := t.md.Rows(now)
	head := []string{"NODE", "WAVE", "STATE", "PHASE", "ELAPSED", "RESULT"}
	width := make([]int, len(head))
	cells := make([][]string, 0, len(rows))
	for i, h := range head {
		width[i] = len(h)
	}
	for _, r := range rows {
		c := []string{r.Node, r.Wave, r.State, r.Phase, r.Elapsed, r.Result}
		for i, v := range c[:5] {
			width[i] = max(width[i], len(v))
		}
		cells = append(cells, c)
	}
	line := func(c []string, style func(i int, s string) string) string {
		var parts []string
		for i, v := range c {
			pad := v
			if i < len(c)-1 {
				pad = fmt.Sprintf("%-*s", width[i], v)
			}
			parts = append(parts, style(i, pad))
		}
		return strings.Join(parts, "  ") + "\n"
	}
	b.WriteString(line(head, func(_ int, s string) string { return bold.Render(s) }))
	for _, c := range cells {
		state := c[2]
		b.WriteString(line(c, func(i int, s string) string {
			if st, ok := colors[state]; ok && i == 2 {
				return st.Render(s)
			}
			return s
		}))
	}
	if !t.done {
		b.WriteString("\n" + faint.Render("q: quit (the rollout goes on)") + "\n")
	}
	return b.String()
}
