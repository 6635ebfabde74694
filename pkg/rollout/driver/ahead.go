package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
)

// A wave's switches first check the node, back up its files and save its
// images: phases that change nothing (preflight through save-images), then
// cordon, drain, stop the runtime, and wait seconds for the kubelet to come
// back. With a HookedSwitcher the driver runs the next wave's switches
// that far while the current wave (not a canary, which switches alone)
// waits on its kubelets, and holds each at
// its first change (nodeswitch.Options.Hold) until its wave starts: the
// next wave begins at the cordon, not with fifty switches reading the
// cluster at once. Nothing changes on the next wave's nodes before their
// wave: they are not cordoned, their status stays Pending, and a wave that
// does not start (a check or gate that fails, a pause, a window that
// closes, an abort, the driver stopping) holds them back: each switch
// rolls back its checks' leftovers and ends, and the node keeps no result
// of it. A driver that dies leaves their journals Waiting, which the next
// switch of the node starts afresh.

// aheadPhase and aheadState are the phase state after which a switch has
// done its share of the wave's burst of requests: it waits on its kubelet.
const (
	aheadPhase = phases.VerifyPhase
	aheadState = journal.Running
)

// aheadSwitch is one switch started ahead of its wave.
type aheadSwitch struct {
	// gate gets the wave's answer: nil to go on, an error to hold it back.
	gate chan error
	done chan struct{}
	err  error
}

// waveProgress counts a wave's switches not yet past their share of the
// wave's burst; fire runs once when none is left.
type waveProgress struct {
	mu   sync.Mutex
	left map[string]bool
	fire func()
}

func (p *waveProgress) past(node string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if !p.left[node] {
		p.mu.Unlock()
		return
	}
	delete(p.left, node)
	fire := len(p.left) == 0 && p.fire != nil
	p.mu.Unlock()
	if fire {
		p.fire()
	}
}

// aheadOK tells whether the switches of wave next may start ahead: it
// switches Linux nodes, has not started, and would start right after the
// current one (no soak time or gates to wait through with its nodes
// locked; not paused, aborted or outside a window). d.mu is held.
func (d *Driver) aheadOK(next int) bool {
	if next >= len(d.st.Waves) {
		return false
	}
	w := d.st.Waves[next]
	spec := d.m.Spec
	if w.Kind == v1alpha1.WaveWindows || w.StartTime != nil || spec.Paused || spec.Abort ||
		v1alpha1.DurationOr(spec.SoakTime, 0) > 0 || len(spec.Gates) > 0 {
		return false
	}
	in, err := InWindow(spec.Windows, d.o.Now())
	return err == nil && in
}

// startAhead starts wave next's Pending nodes' switches, each held at its
// first change until its wave starts (takeAhead) or does not (holdBack).
// Nothing starts once the wave has (its StartTime is set under d.mu
// before its first cordon).
func (d *Driver) startAhead(ctx context.Context, next int) {
	sw, ok := d.o.Switcher.(HookedSwitcher)
	if !ok {
		return
	}
	settings := d.settings()
	d.mu.Lock()
	if d.ahead != nil || !d.aheadOK(next) {
		d.mu.Unlock()
		return
	}
	started := map[string]*aheadSwitch{}
	for _, n := range d.st.Waves[next].Nodes {
		if st := d.node(n).State; st == v1alpha1.NodePending || st == "" {
			started[n] = &aheadSwitch{gate: make(chan error, 1), done: make(chan struct{})}
		}
	}
	if len(started) > 0 {
		d.ahead = started
	}
	waves := len(d.st.Waves)
	d.mu.Unlock()
	if len(started) == 0 {
		return
	}
	d.printf("wave %d/%d: starting its %d switches ahead, up to their first change", next+1, waves, len(started))
	for n, a := range started {
		go func() {
			defer close(a.done)
			a.err = sw.SwitchWith(ctx, n, settings, Hooks{
				Hold: func(hctx context.Context) error {
					select {
					case err := <-a.gate:
						return err
					case <-hctx.Done():
						return hctx.Err()
					}
				},
				OnState: d.onState(n),
			})
		}()
	}
}

// onState is a switch's OnState hook: it tells the node's wave when the
// switch is past its share of the wave's burst.
func (d *Driver) onState(node string) func(phase, state string) {
	return func(phase, state string) {
		if phase == aheadPhase && state == aheadState {
			d.mu.Lock()
			p := d.waveProg
			d.mu.Unlock()
			p.past(node)
		}
	}
}

// takeAhead takes the switches started ahead of the wave now starting.
func (d *Driver) takeAhead() map[string]*aheadSwitch {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.ahead
	d.ahead = nil
	return a
}

// errWaveNotStarted is why switches started ahead are held back.
var errWaveNotStarted = errors.New("its wave did not start")

// holdBack holds back every switch started ahead and not taken, and
// waits until each has rolled back what it did and ended.
func (d *Driver) holdBack(why string) {
	d.holdBackThese(d.takeAhead(), why)
}

func (d *Driver) holdBackThese(left map[string]*aheadSwitch, why string) {
	if len(left) == 0 {
		return
	}
	cause := fmt.Errorf("%w: %s", errWaveNotStarted, why)
	for _, a := range left {
		a.gate <- cause
	}
	var failed []string
	for n, a := range left {
		<-a.done
		var pe *migrate.PhaseError
		if errors.As(a.err, &pe) && !pe.RolledBack {
			failed = append(failed, fmt.Sprintf("%s: %v", n, a.err))
		}
	}
	d.printf("held back the %d switches started ahead: %s", len(left), why)
	if len(failed) > 0 {
		d.warn(fmt.Errorf("switches held back that did not roll back: %s", strings.Join(failed, "; ")))
	}
}
