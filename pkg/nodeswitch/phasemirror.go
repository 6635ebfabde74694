package nodeswitch

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate/phases"
)

// mirrorInterval is the least time between two writes of the phase
// annotation: a switch writes a few times, not twice a phase (a rollout of a
// thousand nodes pays for every write).
const mirrorInterval = 5 * time.Second

// mirrorSettle is how long a write after the first waits for the states
// that follow it.
const mirrorSettle = 100 * time.Millisecond

// phaseMirror mirrors the journal's phase states into the node's
// PhaseAnnotation. The latest state wins: a state set within mirrorInterval
// of the last write is written when the interval is over (so a phase
// shorter than that may never show), and close writes what is left, in one
// patch with the run's other annotations. The journal, not the annotation,
// is the record of what ran.
//
// Writes go in the background: a state is set without waiting for the
// apiserver (at the start of a wave fifty switches write at once, and each
// write took a tenth of a second that every switch waited on). Only the
// first write, which clears the last run's result, is waited for, by the
// next state: nothing after the first phase (the preflight, which changes
// nothing) runs while the node still shows the last run's result. A later
// write waits mirrorSettle for the states that follow it (the last
// phase's end, the result: one write, not two).
type phaseMirror struct {
	c      kubernetes.Interface
	node   string
	logger log.Logger

	mu      sync.Mutex
	pending map[string]*string // annotations not written yet
	// held keeps every state pending, unwritten, until release: a switch
	// started ahead of its wave shows nothing on the node before its
	// go-ahead, and nothing at all if it is held back (drop).
	held   bool
	last   time.Time // of the last write
	timer  *time.Timer
	closed bool
	// first is closed when the first write has landed (nil before it
	// started).
	first chan struct{}
	// writing serialises the writes of set, the timer and close.
	writing sync.Mutex
}

func newPhaseMirror(c kubernetes.Interface, node string, logger log.Logger) *phaseMirror {
	return &phaseMirror{c: c, node: node, logger: logger, pending: map[string]*string{}}
}

// also adds annotations to the next write (clearing the last run's result
// with the first phase state, for one).
func (m *phaseMirror) also(kv map[string]*string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range kv {
		m.pending[k] = v
	}
}

// set records phase/state: the first written now, in the background; a
// later one mirrorSettle from now if the last write is older than
// mirrorInterval, else when it is. A state after the first waits for the
// first write to land.
func (m *phaseMirror) set(phase, state string) {
	v := phase + "/" + state
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	first := m.first
	m.pending[PhaseAnnotation] = &v
	if m.held {
		m.mu.Unlock()
		return
	}
	wait := mirrorInterval - time.Since(m.last)
	switch {
	case first != nil:
		if m.timer == nil {
			m.timer = time.AfterFunc(max(wait, mirrorSettle), m.writePending)
		}
	default:
		// The first write.
		m.last = time.Now() // a state set meanwhile waits for the interval
		done := make(chan struct{})
		m.first = done
		go func() {
			defer close(done)
			m.writePending()
		}()
	}
	m.mu.Unlock()
	if first != nil {
		<-first
	}
}

// hold keeps the states pending until release (before the first state).
func (m *phaseMirror) hold() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held = true
}

// release lets the states be written: the next one shortly, in the
// background, with what is pending. Nothing waits for it: the holder
// cleared the last result (Options.Hold).
func (m *phaseMirror) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held = false
	if m.first == nil {
		landed := make(chan struct{})
		close(landed)
		m.first = landed
	}
}

// drop ends a mirror that was never released: nothing pending is written.
func (m *phaseMirror) drop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.pending = map[string]*string{}
}

// writePending writes the pending annotations, if any, in one patch.
func (m *phaseMirror) writePending() {
	m.writing.Lock()
	defer m.writing.Unlock()
	m.mu.Lock()
	kv := m.pending
	m.pending, m.timer, m.last = map[string]*string{}, nil, time.Now()
	m.mu.Unlock()
	if len(kv) == 0 {
		return
	}
	// Recorded even when the run was interrupted: "failed" and
	// "rolled-back" come after the run's context is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := phases.AnnotateAll(ctx, m.c, m.node, kv); err != nil {
		m.logger.Warnf("record phase on node %s: %v", m.node, err)
	}
}

// close writes what is pending together with kv (the run's result), in one
// patch; later states are not mirrored.
func (m *phaseMirror) close(ctx context.Context, kv map[string]*string) error {
	m.mu.Lock()
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.closed = true
	first := m.first
	m.mu.Unlock()
	if first != nil {
		<-first // the first write lands first
	}
	m.writing.Lock() // and a write of the timer already under way
	defer m.writing.Unlock()
	m.mu.Lock()
	all := m.pending
	m.pending = map[string]*string{}
	m.mu.Unlock()
	for k, v := range kv {
		all[k] = v
	}
	if len(all) == 0 {
		return nil
	}
	return phases.AnnotateAll(ctx, m.c, m.node, all) // it retries through short outages itself
}
