package rolloutreport

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/unshim/unshim/internal/testutil"
)

// browser opens file pages in a headless Debian chromium and collects the
// console errors, uncaught exceptions and browser log errors (a resource
// that failed to load, a blocked request) of each.
type browser struct {
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := testutil.RequireBinary(t, "chromium")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		// The tests run as root, and chromium refuses to start as root with
		// its sandbox. Acceptable here: a test browser reading a local file
		// this test wrote, with no network page to contain.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	// The first run starts the browser for the life of bctx.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{ctx: bctx}
}

// open loads the page and runs the actions; it returns the errors the
// page's console and the browser's log saw.
func (b *browser) open(t *testing.T, page []byte, actions ...chromedp.Action[chromedp.Void]) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, page, 0o644); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(b.ctx)
	msgs := chromedp.Console(cctx) // subscribed now: nothing the page logs is lost
	var (
		mu   sync.Mutex
		errs []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Type == "assert" {
				mu.Lock()
				errs = append(errs, m.String())
				mu.Unlock()
			}
		}
	}()
	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate("file://" + path)}, actions...)
	// Errors arrive as events: give late ones a moment.
	steps = append(steps, chromedp.Sleep(300*time.Millisecond))
	err := chromedp.Do(b.ctx, steps...)
	cancel()
	<-done
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(errs)
}

// eval evaluates a JavaScript expression in the page open now.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

type renderedRow struct {
	Node  string  `json:"node"`
	Label string  `json:"label"`
	State string  `json:"state"`
	BarW  float64 `json:"barW"`
	BarH  float64 `json:"barH"`
	Fill  string  `json:"fill"`
}

// TestHTMLInBrowser renders the report in a real headless chromium: no
// console error or exception, and every node of the run is drawn on the
// timeline (its name a rendered SVG text, a bar of real size for each node
// that ran, filled with its outcome's colour).
func TestHTMLInBrowser(t *testing.T) {
	b := newBrowser(t)

	// The collector sees errors at all: a page that logs one and throws.
	errs := b.open(t, []byte(`<!DOCTYPE html><html><body><script>console.error("seen"); throw new Error("thrown")</script></body></html>`))
	if got := strings.Join(errs, "\n"); !strings.Contains(got, "seen") || !strings.Contains(got, "thrown") {
		t.Fatalf("the error collector missed a console error and an exception: %q", errs)
	}

	r := fixture(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	var page strings.Builder
	if err := HTML(&page, r); err != nil {
		t.Fatal(err)
	}
	errs = b.open(t, []byte(page.String()), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	rows := eval[[]renderedRow](t, b, `Array.from(document.querySelectorAll('svg#timeline g.node')).map(g => {
		const bar = g.querySelector('rect.bar:not(.undo)');
		const box = bar ? bar.getBBox() : {width: 0, height: 0};
		return {node: g.getAttribute('data-node'), label: g.querySelector('text.name').textContent,
			state: g.getAttribute('data-state'), barW: box.width, barH: box.height,
			fill: bar ? getComputedStyle(bar).fill : ''};
	})`)
	scripts := eval[int](t, b, `document.scripts.length`)
	title := eval[string](t, b, `document.title`)
	if len(errs) > 0 {
		t.Errorf("console errors or exceptions:\n%s", strings.Join(errs, "\n"))
	}
	if scripts != 0 {
		t.Errorf("%d scripts in the page", scripts)
	}
	if !strings.Contains(title, "to-containerd") {
		t.Errorf("title %q", title)
	}
	var names []string
	fills := map[string]string{}
	for _, row := range rows {
		names = append(names, row.Label)
		if row.Node != row.Label {
			t.Errorf("row %q shows %q", row.Node, row.Label)
		}
		ran := row.State != "Pending"
		if ran && (row.BarW < 2 || row.BarH < 10) {
			t.Errorf("%s (%s): bar %vx%v; want a visible bar", row.Node, row.State, row.BarW, row.BarH)
		}
		fills[row.State] = row.Fill
	}
	var want []string
	for _, n := range r.Nodes {
		want = append(want, n.Name)
	}
	sort.Strings(names)
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("timeline shows %v; want every node of the run %v", names, want)
	}
	// Outcomes are told apart by colour.
	seen := map[string]string{}
	for state, fill := range fills {
		if state == "Pending" {
			continue
		}
		if other, dup := seen[fill]; dup || fill == "" {
			t.Errorf("%s and %s share the fill %q", state, other, fill)
		}
		seen[fill] = state
	}
}
