package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/rollout/live"
)

func rm(phase string, state string) *v1alpha1.RuntimeMigration {
	m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "r"},
		Status: v1alpha1.RuntimeMigrationStatus{Phase: phase, Waves: []v1alpha1.WaveStatus{{Nodes: []string{"a"}}},
			Nodes: []v1alpha1.NodeStatus{{Name: "a", State: state}}}}
	m.Status.Recount()
	return m
}

func TestPlain(t *testing.T) {
	events := make(chan live.Event, 4)
	events <- live.Event{Rollout: rm("Running", v1alpha1.NodePending)}
	events <- live.Event{Rollout: rm("Running", v1alpha1.NodeSwitching)}
	events <- live.Event{Rollout: rm("Succeeded", v1alpha1.NodeDone)}
	events <- live.Event{Rollout: rm("Succeeded", v1alpha1.NodeDone)} // never read: it ended
	var out bytes.Buffer
	now := func() time.Time { return time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) }
	if err := plain(t.Context(), &out, live.New(), events, now); err != nil {
		t.Fatal(err)
	}
	want := "10:00:00 rollout r: Running\n10:00:00 node a (wave 1): Switching\n10:00:00 rollout r: Succeeded\n10:00:00 node a (wave 1): Done\n---\nRuntimeMigration r to : Succeeded\n"
	if !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), "1 total, 1 done") {
		t.Errorf("lines:\n%s\nwant:\n%s", out.String(), want)
	}
	if len(events) != 1 {
		t.Errorf("%d events read after the end", 4-len(events))
	}
}

func TestTUIUpdate(t *testing.T) {
	events := make(chan live.Event)
	tu := &tui{md: live.New(), events: events, now: time.Now}
	_, cmd := tu.Update(eventMsg(live.Event{Rollout: rm("Running", v1alpha1.NodeSwitching)}))
	if cmd == nil || tu.done {
		t.Fatal("after an event: want to wait for the next, not quit")
	}
	if v := tu.View(); !strings.Contains(v, "Switching") || !strings.Contains(v, "q: quit") {
		t.Errorf("view:\n%s", v)
	}
	// q quits and sends nothing anywhere: the model has no client.
	_, cmd = tu.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	if cmd == nil || !tu.done {
		t.Fatal("q did not quit")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("q: want tea.Quit")
	}
	// The rollout ending quits too, leaving the final table.
	tu = &tui{md: live.New(), events: events, now: time.Now}
	_, cmd = tu.Update(eventMsg(live.Event{Rollout: rm("Succeeded", v1alpha1.NodeDone)}))
	if _, ok := cmd().(tea.QuitMsg); !ok || !strings.Contains(tu.View(), "Done") || strings.Contains(tu.View(), "q: quit") {
		t.Errorf("after the end: %v\n%s", cmd, tu.View())
	}
}
