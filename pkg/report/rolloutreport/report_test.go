package rolloutreport

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/rollout/record"
)

const hostile = `<script>alert("x")</script>|**bold**`

// fixture is a rollout of four nodes that ended Failed: a canary done, one
// rolled back with a hostile cause, one blocked by a PDB, one never started,
// plus a node the plan skipped and one undone afterwards.
func fixture(t0 time.Time) *record.Record {
	at := func(s int) *metav1.Time { v := metav1.NewTime(t0.Add(time.Duration(s) * time.Second)); return &v }
	m := &v1alpha1.RuntimeMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "to-containerd", CreationTimestamp: *at(-10)},
		Spec: v1alpha1.RuntimeMigrationSpec{TargetRuntime: v1alpha1.TargetContainerd, MaxUnavailable: ptr(intstr.FromInt32(1)),
			Canary: v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1}, FailureBudget: v1alpha1.FailureBudget{Total: 1}},
		Status: v1alpha1.RuntimeMigrationStatus{
			Phase: v1alpha1.PhaseFailed, Message: "2 of 4 nodes switched; 0 failed, 1 rolled back",
			StartTime: at(0), CompletionTime: at(300),
			Waves: []v1alpha1.WaveStatus{
				{Index: 0, Kind: v1alpha1.WaveCanary, Nodes: []string{"n-1"}, StartTime: at(0), CompletionTime: at(100)},
				{Index: 1, Kind: v1alpha1.WaveWorkers, Nodes: []string{"n-2", "n-3", "n-4"}, StartTime: at(100), CompletionTime: at(300)},
			},
			Nodes: []v1alpha1.NodeStatus{
				{Name: "n-1", Wave: 0, State: v1alpha1.NodeUndone, FromRuntime: "docker", StartTime: at(0), CompletionTime: at(90), UndoStartTime: at(400), UndoCompletionTime: at(460)},
				{Name: "n-2", Wave: 1, State: v1alpha1.NodeRolledBack, FromRuntime: "docker", FailedPhase: "verify", Cause: hostile, StartTime: at(100), CompletionTime: at(200)},
				{Name: "n-3", Wave: 1, State: v1alpha1.NodeBlocked, FromRuntime: "docker", FailedPhase: "drain", Cause: "drain of n-3 still blocked",
					Blocking: &v1alpha1.Blocking{PodDisruptionBudget: "db/pg", Pods: []string{"db/pg-0"}}, StartTime: at(100), CompletionTime: at(250)},
				{Name: "n-4", Wave: 1, State: v1alpha1.NodeDone, FromRuntime: "cri-dockerd", StartTime: at(200), CompletionTime: at(300)},
				{Name: "n-5", Wave: 1, State: v1alpha1.NodePending, FromRuntime: "docker"},
			},
			Skipped:    []v1alpha1.SkippedNode{{Name: "n-6", Reason: "already on containerd"}},
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: "Failed", Message: "ended", LastTransitionTime: *at(300)}},
		},
	}
	m.Status.Recount()
	node := func(name, label, version string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"unshim.io/runtime": label}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: version},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	}
	nodes := map[string]*corev1.Node{
		"n-1": node("n-1", "docker", "docker://20.10.24"),
		"n-2": node("n-2", "docker", "docker://20.10.24"),
		"n-3": node("n-3", "docker", "docker://20.10.24"),
		"n-4": node("n-4", "containerd", "containerd://1.7.24"),
		// n-5 was deleted since.
	}
	return record.Join(m, nodes, t0.Add(500*time.Second))
}

func ptr[T any](v T) *T { return &v }

// timelineNodes parses the page and returns, for each <g data-node> of the
// SVG timeline, its name and whether it has a bar; and every text node of
// the document, and every element name.
func parse(t *testing.T, page []byte) (bars map[string]string, texts []string, elems map[string]int) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	bars, elems = map[string]string{}, map[string]int{}
	var inSVG bool
	var walk func(n *html.Node, svg bool)
	walk = func(n *html.Node, svg bool) {
		switch n.Type {
		case html.TextNode:
			texts = append(texts, n.Data)
		case html.ElementNode:
			elems[n.Data]++
			if n.Data == "svg" && attr(n, "id") == "timeline" {
				svg, inSVG = true, true
			}
			if svg && n.Data == "g" && attr(n, "class") == "node" {
				bar := "none"
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && c.Data == "rect" && strings.HasPrefix(attr(c, "class"), "bar ") && attr(c, "class") != "bar undo" {
						bar = strings.TrimPrefix(attr(c, "class"), "bar ") + "@" + attr(c, "x") + "+" + attr(c, "width")
					}
				}
				bars[attr(n, "data-node")] = bar
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, svg)
		}
	}
	walk(doc, false)
	if !inSVG {
		t.Fatal("no <svg id=timeline> in the page")
	}
	return bars, texts, elems
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestHTML(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r := fixture(t0)
	var buf bytes.Buffer
	if err := HTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	bars, texts, elems := parse(t, buf.Bytes())

	// Every node of the run is on the timeline; a node that ran has a bar
	// coloured by its outcome, in time order (the plot starts at 220 px and
	// spans 640 px over the 460 s from the first start to the last undo).
	want := map[string]string{
		"n-1": "undone@220+125.2", // 0..90 s
		"n-2": "rolledback@359.1+139.1",
		"n-3": "blocked@359.1+208.7",
		"n-4": "done@498.3+139.1",
		"n-5": "none",
	}
	for name, bar := range want {
		if got, ok := bars[name]; !ok || got != bar {
			t.Errorf("timeline row %s: %q (present %v); want %q", name, got, ok, bar)
		}
	}
	if len(bars) != len(want) {
		t.Errorf("timeline rows %v; want one per planned node", bars)
	}

	// Self-contained: no script, no external reference.
	for _, e := range []string{"script", "img", "link", "iframe", "object"} {
		if elems[e] > 0 {
			t.Errorf("%d <%s> elements: the page must not load or run anything", elems[e], e)
		}
	}
	for _, bad := range []string{"http://", "https://", "src=", "@import", "url("} {
		if s := strings.ReplaceAll(buf.String(), `xmlns="http://www.w3.org/2000/svg"`, ""); strings.Contains(s, bad) {
			t.Errorf("page refers to %q outside itself", bad)
		}
	}
	// The hostile cause is text, not markup: it parses back as the same text.
	found := false
	for _, s := range texts {
		if strings.Contains(s, `<script>alert("x")</script>`) {
			found = true
		}
	}
	if !found {
		t.Errorf("the cause %q is not shown as text", hostile)
	}
	if strings.Contains(buf.String(), "<script>") {
		t.Error("raw <script> in the page")
	}
	// Failures name the phase, the PDB and the pods; the inventory says
	// what each ran before and runs now.
	page := strings.Join(texts, "\n")
	for _, s := range []string{"PDB db/pg; pods db/pg-0", "verify", "already on containerd", "containerd://1.7.24", "cri-dockerd", "gone", "Failed"} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

func TestHTMLNothingStarted(t *testing.T) {
	r := record.Join(&v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "new"},
		Status: v1alpha1.RuntimeMigrationStatus{Nodes: []v1alpha1.NodeStatus{{Name: "a", State: v1alpha1.NodePending}}}}, nil, time.Now())
	var buf bytes.Buffer
	if err := HTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	bars, _, _ := parse(t, buf.Bytes())
	if bars["a"] != "none" || len(bars) != 1 {
		t.Errorf("bars %v: want a, not started", bars)
	}
}

// cells returns the rows of the Markdown table under heading h (split on
// unescaped pipes).
func cells(t *testing.T, doc, h string) [][]string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "## "+h+"\n\n")
	if !ok {
		t.Fatalf("no section %q in\n%s", h, doc)
	}
	var rows [][]string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		line = strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |")
		var row []string
		var cur strings.Builder
		for i := 0; i < len(line); i++ {
			switch {
			case line[i] == '\\' && i+1 < len(line):
				cur.WriteByte(line[i])
				cur.WriteByte(line[i+1])
				i++
			case line[i] == '|':
				row = append(row, strings.TrimSpace(cur.String()))
				cur.Reset()
			default:
				cur.WriteByte(line[i])
			}
		}
		rows = append(rows, append(row, strings.TrimSpace(cur.String())))
	}
	return rows
}

func TestMarkdown(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	if err := Markdown(&buf, fixture(t0)); err != nil {
		t.Fatal(err)
	}
	doc := buf.String()
	tests := []struct {
		description string
		section     string
		row         int // 0 is the header, 1 the separator
		want        []string
	}{
		{"timeline: the canary, undone", "Timeline", 2, []string{"n-1", "1 (Canary)", "Undone", "2026-03-01 10:00:00Z", "2026-03-01 10:01:30Z", "1m30s", "2026-03-01 10:06:40Z (1m0s)"}},
		{"timeline: never started", "Timeline", 6, []string{"n-5", "2 (Workers)", "Pending", "-", "-", "-", "-"}},
		{"failures: hostile cause escaped, one cell", "Failures, blocked and skipped nodes", 2,
			[]string{"n-2", "RolledBack", "verify", `&lt;script&gt;alert("x")&lt;/script&gt;\|\*\*bold\*\*`, "-"}},
		{"failures: the PDB and pods", "Failures, blocked and skipped nodes", 3, []string{"n-3", "Blocked", "drain", "drain of n-3 still blocked", "PDB db/pg; pods db/pg-0"}},
		{"failures: skipped by the plan", "Failures, blocked and skipped nodes", 4, []string{"n-6", "Skipped (not planned)", "-", "already on containerd", "-"}},
		{"inventory: switched", "Inventory: before and after", 5, []string{"n-4", "cri-dockerd", "containerd", "containerd://1.7.24", "Done", "yes", "yes"}},
		{"inventory: deleted", "Inventory: before and after", 6, []string{"n-5", "docker", "gone", "-", "Pending", "-", "-"}},
		{"waves", "Waves", 3, []string{"2", "Workers", "n-2, n-3, n-4", "2026-03-01 10:01:40Z", "2026-03-01 10:05:00Z", "3m20s"}},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			rows := cells(t, doc, tt.section)
			if tt.row >= len(rows) {
				t.Fatalf("%d rows in %s", len(rows), tt.section)
			}
			if got := strings.Join(rows[tt.row], " ¦ "); got != strings.Join(tt.want, " ¦ ") {
				t.Errorf("row %d:\n got %s\nwant %s", tt.row, got, strings.Join(tt.want, " ¦ "))
			}
		})
	}
	if strings.Contains(doc, "<script>") {
		t.Error("raw <script> in the Markdown")
	}
	if !strings.HasPrefix(doc, "# Rollout to-containerd\n\n**Failed** to containerd: 2 of 4 nodes switched; 0 failed, 1 rolled back") {
		t.Errorf("heading:\n%s", doc[:200])
	}
}
