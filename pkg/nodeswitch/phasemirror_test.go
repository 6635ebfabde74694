package nodeswitch

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
)

// countPatches counts the PATCH requests a client sends; with hold set, each
// waits until hold is closed before it is sent.
type countPatches struct {
	rt   http.RoundTripper
	n    *atomic.Int32
	hold chan struct{}
}

func (c countPatches) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPatch {
		c.n.Add(1)
		if c.hold != nil {
			<-c.hold
		}
	}
	return c.rt.RoundTrip(r)
}

// patchCountingClient is a client of the lab's apiserver, and the count of
// the PATCH requests it sent.
func patchCountingClient(t *testing.T) (kubernetes.Interface, *atomic.Int32) {
	t.Helper()
	l := labtest.Require(t)
	rc, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	patches := &atomic.Int32{}
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countPatches{rt: rt, n: patches} })
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c, patches
}

// TestPhaseMirror runs against the lab's real apiserver: a burst of phase
// states costs one write now and one when the interval is over, the latest
// state winning; a state set later is written at once, without waiting for
// close; the last states of a run after the interval and its result go in
// one patch.
func TestPhaseMirror(t *testing.T) {
	c, patches := patchCountingClient(t)
	ctx := context.Background()
	name := "mirror-" + time.Now().Format("150405.000000")
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Annotations: map[string]string{ResultAnnotation: "succeeded"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) }()
	annotations := func() map[string]string {
		t.Helper()
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Annotations
	}

	m := newPhaseMirror(c, name, log.NoopLogger())
	m.also(map[string]*string{ResultAnnotation: nil})
	for _, p := range []string{"preflight", "backup", "cordon", "drain"} {
		m.set(p, "running")
		m.set(p, "done")
	}
	m.set("stop-kubelet", "running")
	if got := patches.Load(); got != 1 {
		t.Errorf("a burst of 9 states: %d writes so far, want 1 (the first)", got)
	}
	// The first write goes in the background: it carries the latest state
	// when it is sent, one of the burst's.
	burst := []string{"preflight/running", "preflight/done", "backup/running", "backup/done", "cordon/running",
		"cordon/done", "drain/running", "drain/done", "stop-kubelet/running"}
	if a := annotations(); !slices.Contains(burst, a[PhaseAnnotation]) || a[ResultAnnotation] != "" {
		t.Errorf("after the first write: %v; want a state of the burst and the last result cleared", a)
	}
	time.Sleep(mirrorInterval + 500*time.Millisecond)
	if got := patches.Load(); got != 2 {
		t.Errorf("after the interval: %d writes, want 2", got)
	}
	if a := annotations(); a[PhaseAnnotation] != "stop-kubelet/running" {
		t.Errorf("after the interval: phase %q, want the latest state, stop-kubelet/running", a[PhaseAnnotation])
	}
	time.Sleep(mirrorInterval)    // since the last write
	m.set("stop-kubelet", "done") // after the interval: written at once, in the background
	for deadline := time.Now().Add(mirrorInterval / 2); annotations()[PhaseAnnotation] != "stop-kubelet/done"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a state after the interval not written within %s", mirrorInterval/2)
		}
	}
	if got := patches.Load(); got != 3 {
		t.Errorf("a state after the interval: %d writes in all, want 3", got)
	}
	// The last states of a run and its result, after the interval: one
	// write for them all.
	time.Sleep(mirrorInterval)
	m.set("verify", "failed")
	m.set("verify", "rolled-back")
	result := "rolled-back: phase verify: timeout"
	if err := m.close(ctx, map[string]*string{ResultAnnotation: &result}); err != nil {
		t.Fatal(err)
	}
	if got := patches.Load(); got != 4 {
		t.Errorf("close: %d writes in all, want 4", got)
	}
	if a := annotations(); a[PhaseAnnotation] != "verify/rolled-back" || a[ResultAnnotation] != result {
		t.Errorf("after close: %v", a)
	}
	m.set("uncordon", "running") // after close: not mirrored
	time.Sleep(mirrorInterval + 500*time.Millisecond)
	if got := patches.Load(); got != 4 {
		t.Errorf("a state after close was written (%d writes)", got)
	}
}

// TestPhaseMirrorWritesInTheBackground: with the apiserver slow to answer, a
// switch's first state returns before its write lands, and the next state
// waits for it (nothing after the first phase runs while the node still
// shows the last run's result); close writes the result after both.
func TestPhaseMirrorWritesInTheBackground(t *testing.T) {
	l := labtest.Require(t)
	rc, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	var patches atomic.Int32
	hold := make(chan struct{})
	held := rest.CopyConfig(rc)
	held.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countPatches{rt: rt, n: &patches, hold: hold} })
	hc, err := kubernetes.NewForConfig(held)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := "mirror-bg-" + time.Now().Format("150405.000000")
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Annotations: map[string]string{ResultAnnotation: "succeeded"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) }()

	m := newPhaseMirror(hc, name, log.NoopLogger())
	m.also(map[string]*string{ResultAnnotation: nil})
	returned := make(chan string, 2)
	go func() { m.set("preflight", "running"); returned <- "preflight/running" }()
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		close(hold)
		t.Fatal("the first state did not return while its write was held")
	}
	for deadline := time.Now().Add(30 * time.Second); patches.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first state's write was never sent")
		}
	}
	go func() { m.set("preflight", "done"); returned <- "preflight/done" }()
	select {
	case s := <-returned:
		t.Errorf("%s returned while the first write (the last result cleared) had not landed", s)
	case <-time.After(500 * time.Millisecond):
	}
	n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations[ResultAnnotation] != "succeeded" {
		t.Fatalf("the held write landed: %v", n.Annotations)
	}
	close(hold)
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("the second state did not return once the first write landed")
	}
	result := "succeeded"
	if err := m.close(ctx, map[string]*string{ResultAnnotation: &result}); err != nil {
		t.Fatal(err)
	}
	n, err = c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := n.Annotations; a[PhaseAnnotation] != "preflight/done" || a[ResultAnnotation] != result {
		t.Errorf("after close: %v; want preflight/done and the new result", a)
	}
}

// TestPhaseMirrorHeld: a held mirror (a switch started ahead of its wave)
// writes nothing until released, then its next state is the first write,
// the last result cleared with it; one dropped before its release never
// writes: the node keeps its annotations as they were.
func TestPhaseMirrorHeld(t *testing.T) {
	c, patches := patchCountingClient(t)
	ctx := context.Background()
	for _, release := range []bool{true, false} {
		name := fmt.Sprintf("mirror-held-%t-%s", release, time.Now().Format("150405.000000"))
		if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{ResultAnnotation: "rolled-back: an earlier run"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) }()
		patches.Store(0)
		m := newPhaseMirror(c, name, log.NoopLogger())
		m.hold()
		m.also(map[string]*string{ResultAnnotation: nil})
		for _, p := range []string{"preflight", "rehearse", "backup", "save-images"} {
			m.set(p, "running")
			m.set(p, "done")
		}
		time.Sleep(mirrorInterval + 500*time.Millisecond)
		if got := patches.Load(); got != 0 {
			t.Errorf("held: %d writes, want none", got)
		}
		if !release {
			m.set("save-images", "rolled-back")
			m.drop()
			n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := n.Annotations[PhaseAnnotation]; ok || n.Annotations[ResultAnnotation] != "rolled-back: an earlier run" || patches.Load() != 0 {
				t.Errorf("dropped: %d writes, annotations %v; want none, as they were", patches.Load(), n.Annotations)
			}
			continue
		}
		m.release()
		m.set("cordon", "running")
		// Written in the background, shortly: the latest state, the last
		// result cleared.
		for deadline := time.Now().Add(mirrorInterval / 2); ; time.Sleep(20 * time.Millisecond) {
			n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, result := n.Annotations[ResultAnnotation]
			if n.Annotations[PhaseAnnotation] == "cordon/running" && !result {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("released: annotations %v %s after the first state; want cordon/running, no result", n.Annotations, mirrorInterval/2)
			}
		}
		result := "succeeded"
		if err := m.close(ctx, map[string]*string{ResultAnnotation: &result}); err != nil {
			t.Fatal(err)
		}
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := patches.Load(); got != 2 || n.Annotations[ResultAnnotation] != result {
			t.Errorf("released: %d writes, annotations %v; want 2 (the state, then close's) and the new result", got, n.Annotations)
		}
	}
}
