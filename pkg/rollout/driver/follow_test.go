package driver

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/nodeswitch"
)

// TestWaveWatchFollowsPhases runs the wave's one watch of every node on the
// lab's apiserver: started from the revision of the LIST before the wave,
// it sees a phase set between that LIST and its own start, follows the
// wave's node through its phases into the status and the output, keeps the
// node as last seen, and leaves alone a node outside the wave.
func TestWaveWatchFollowsPhases(t *testing.T) {
	l := labtest.Require(t)
	rc, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	c := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	suffix := time.Now().Format("150405.000000")
	in, out := "follow-in-"+suffix, "follow-out-"+suffix
	for _, n := range []string{in, out} {
		// Node objects only: no kubelet runs them.
		if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}) })
	}
	buf := &bytes.Buffer{}
	d := newDriver(Options{Client: c, Out: buf, Now: time.Now})
	// The driver writes its lines under outMu.
	output := func() string {
		d.outMu.Lock()
		defer d.outMu.Unlock()
		return buf.String()
	}
	d.st.Nodes = []v1alpha1.NodeStatus{{Name: in, State: v1alpha1.NodeSwitching}, {Name: out, State: v1alpha1.NodeSwitching}}
	phase := func(node, p string) {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, nodeswitch.PhaseAnnotation, p)
		if _, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	_, rv, err := d.listNodes(ctx, true)
	if err != nil || rv == "" {
		t.Fatalf("list nodes: revision %q, %v", rv, err)
	}
	phase(in, "drain/running") // after the LIST, before the watch
	w := d.watchWave(ctx, "wave 1/1", []string{in}, rv)
	phase(out, "drain/running")
	phase(in, "verify/running")

	deadline := time.Now().Add(30 * time.Second)
	for {
		d.mu.Lock()
		got := d.node(in).Phase
		d.mu.Unlock()
		if got == "verify/running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status phase of %s: %q, want verify/running; output:\n%s", in, got, output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := w.node(in); n == nil || n.Annotations[nodeswitch.PhaseAnnotation] != "verify/running" {
		t.Errorf("the node as last seen: %v", n)
	}
	// The switch's last write, its result, comes a moment after it returned.
	if n := w.ended(in, 50*time.Millisecond); n == nil || n.Annotations[nodeswitch.ResultAnnotation] != "" {
		t.Errorf("before the result: %v", n)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"succeeded"}}}`, nodeswitch.ResultAnnotation)
		_, _ = c.CoreV1().Nodes().Patch(ctx, in, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	}()
	if n := w.ended(in, 20*time.Second); n == nil || n.Annotations[nodeswitch.ResultAnnotation] != "succeeded" {
		t.Errorf("the node once its result came: %v", n)
	}
	w.stop()
	text := output()
	for _, want := range []string{in + ": drain/running", in + ": verify/running"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, out+":") || strings.Contains(text, "warning") {
		t.Errorf("output names the node outside the wave, or warns:\n%s", text)
	}
	d.mu.Lock()
	if p := d.node(out).Phase; p != "" {
		t.Errorf("the node outside the wave got phase %q", p)
	}
	d.mu.Unlock()
	if n := w.node(out); n != nil {
		t.Errorf("the wave's watch kept a node outside the wave: %s", n.Name)
	}
}
