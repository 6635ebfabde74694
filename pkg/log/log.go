// Package log owns unshim's small leveled logger: progress and warnings for
// humans, written to stderr, kept apart from results on stdout.
package log

import (
	"fmt"
	"io"
	"sync"
)

// Logger is what commands and libraries use to tell a person what is happening.
type Logger interface {
	Warnf(format string, args ...any)
	Errorf(format string, args ...any)
	V(level int) InfoLogger
}

// InfoLogger prints informational lines when its level is enabled.
type InfoLogger interface {
	Infof(format string, args ...any)
	Enabled() bool
}

// NoopLogger returns a Logger that discards everything.
func NoopLogger() Logger { return New(io.Discard, -1) }

// New returns a Logger writing to w that prints V(level) lines up to verbosity.
func New(w io.Writer, verbosity int) *WriterLogger {
	return &WriterLogger{w: w, verbosity: verbosity, mu: &sync.Mutex{}}
}

// WriterLogger is the Logger behind unshim's commands; its verbosity is set once flags are parsed.
type WriterLogger struct {
	w         io.Writer
	verbosity int
	mu        *sync.Mutex
}

func (l *WriterLogger) print(prefix, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	fmt.Fprint(l.w, prefix+msg)
}

func (l *WriterLogger) Warnf(format string, args ...any) {
	if l.verbosity >= 0 {
		l.print("WARNING: ", format, args...)
	}
}

func (l *WriterLogger) Errorf(format string, args ...any) {
	l.print("ERROR: ", format, args...)
}

func (l *WriterLogger) V(level int) InfoLogger {
	return infoLogger{l: l, enabled: level <= l.verbosity}
}

type infoLogger struct {
	l       *WriterLogger
	enabled bool
}

func (i infoLogger) Infof(format string, args ...any) {
	if i.enabled {
		i.l.print("", format, args...)
	}
}

func (i infoLogger) Enabled() bool { return i.enabled }

// SetVerbosity changes which V levels print; -1 silences warnings too.
func (l *WriterLogger) SetVerbosity(v int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verbosity = v
}
