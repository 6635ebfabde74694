// Package manifest reads Kubernetes manifests (files, directories or stdin;
// multi-document YAML, JSON, `kind: List`, Helm-rendered output) and is the
// check.Source for them, with the file and line of every field kept.
//
// The check streams: files are decoded by a bounded pool of workers (one per
// CPU), each reading only the fields the rules look at, and handed to the
// check in the order given, so the output does not depend on timing and
// memory does not grow with the number of files.
package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/owner"
)

// Source reads manifests from Paths; "-" stands for Stdin.
type Source struct {
	Paths []string
	Stdin io.Reader
	// Workers bounds how many files are decoded at once; 0 means one per CPU.
	Workers int
}

var _ check.ParallelSource = (*Source)(nil)

// ParseError is malformed input, located by file and line.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// item is one target read from a manifest, with the owner references it names.
type item struct {
	t    *check.Target
	refs []metav1.OwnerReference
	err  error   // set on the last item of a file that failed
	doc  *docRef // the fast-path document it was read from, if any
	// ex is what the rules found, when the worker examined the target.
	ex *check.Examined
}

// job is one input to decode; its items arrive on out, in document order.
type job struct {
	name string // file path, or "<stdin>"
	// read returns the input, in buf's space when it fits.
	read func(buf []byte) ([]byte, error)
	out  chan item
	// examined holds the file's items when the worker examined them: only
	// what the rules found, so a whole file's wait, and a worker never
	// stalls on a file of many documents until the consumer reaches it.
	// It is complete once out is closed.
	examined []item
}

// Visit reads every manifest and hands each object to fn: the ones it can
// check with their pod spec or configuration, the others with Skip set to
// the reason. Objects without owner references (nearly all of a manifest's)
// go to fn as soon as their file is decoded; objects with owner references
// are handed over at the end, rolled up to their owners among the objects
// read. Bad input stops the visit with a *ParseError naming file and line.
func (s *Source) Visit(ctx context.Context, fn func(*check.Target) error) error {
	return s.visit(ctx, nil, func(t *check.Target, _ *check.Examined) error { return fn(t) })
}

// VisitExamined is Visit with the rules run by the workers that decode the
// files, right after each object is decoded: only what they found goes
// through the single consumer, and a document's nodes are reused as soon as
// its objects are examined. Objects with owner references are examined at
// the end, once their owner is known, as Visit hands them over.
func (s *Source) VisitExamined(ctx context.Context, examine func(*check.Target) *check.Examined, fn func(*check.Examined) error) error {
	return s.visit(ctx, examine, func(_ *check.Target, e *check.Examined) error { return fn(e) })
}

// visit runs the workers and hands the targets over in order; with examine
// set, the workers examine every target without owner references themselves.
func (s *Source) visit(ctx context.Context, examine func(*check.Target) *check.Examined, fn func(*check.Target, *check.Examined) error) error {
	jobs, err := s.jobs()
	if err != nil {
		return err
	}
	workers := s.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(jobs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The producer hands jobs to the workers and, in the same order, to the
	// consumer below; order's capacity bounds how many files are in flight.
	// Examined files hold only what the rules found in them, so more of
	// them may wait: a worker done with a small file then never idles while
	// the consumer waits for a large one.
	inFlight := workers + 1
	if examine != nil {
		inFlight = 8 * workers
	}
	todo := make(chan *job)
	order := make(chan *job, inFlight)
	go func() {
		defer close(todo)
		defer close(order)
		for i, j := range jobs {
			jobs[i] = nil // a job is the workers' and the consumer's now, and freed once consumed
			// A few decoded documents wait per file while the check works on an earlier one.
			j.out = make(chan item, 4)
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
			select {
			case todo <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	for w := 0; w < workers; w++ {
		go func() {
			var sc *scratch
			if examine != nil {
				sc = newScratch()
			}
			for j := range todo {
				decodeJob(ctx, j, sc, examine)
			}
		}()
	}

	ix := owner.NewIndex()
	var owned []item
	take := func(it item) error {
		if it.err != nil {
			return it.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(it.refs) > 0 {
			ix.Add(it.t.Object.Kind, it.t.Object.Namespace, it.t.Object.Name, it.refs)
			owned = append(owned, it)
			return nil
		}
		if err := fn(it.t, it.ex); err != nil {
			return err
		}
		it.doc.done()
		return nil
	}
	for j := range order {
		for it := range j.out {
			if err := take(it); err != nil {
				return err
			}
		}
		for _, it := range j.examined {
			if err := take(it); err != nil {
				return err
			}
		}

	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, it := range owned {
		it.t.Owner = ix.Top(it.t.Object.Kind, it.t.Object.Namespace, it.t.Object.Name, it.refs)
		if examine != nil {
			it.ex = examine(it.t)
		}
		if err := fn(it.t, it.ex); err != nil {
			return err
		}
	}
	return nil
}

// jobs expands the paths into the inputs to decode, in order.
func (s *Source) jobs() ([]*job, error) {
	if len(s.Paths) == 0 {
		return nil, errors.New("no manifest given")
	}
	var jobs []*job
	for _, p := range s.Paths {
		if p == "-" {
			if s.Stdin == nil {
				return nil, errors.New("read stdin: no input")
			}
			in := s.Stdin
			jobs = append(jobs, &job{name: "<stdin>", read: func([]byte) ([]byte, error) {
				data, err := io.ReadAll(in)
				if err != nil {
					return nil, fmt.Errorf("read stdin: %w", err)
				}
				return data, nil
			}})
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			jobs = append(jobs, &job{name: f, read: func(buf []byte) ([]byte, error) {
				data, err := readInto(f, buf)
				if err != nil {
					return nil, fmt.Errorf("read manifests: %w", err)
				}
				return data, nil
			}})
		}
	}
	return jobs, nil
}

// decodeJob decodes one input onto j.out and closes it; with examine set,
// each target without owner references is examined here and its document
// released before it is sent, and the file is read into the worker's
// buffer (sc.file), which the next file reuses unless a target kept for
// later (one with owner references) still points into it.
func decodeJob(ctx context.Context, j *job, sc *scratch, examine func(*check.Target) *check.Examined) {
	defer close(j.out)
	var buf []byte
	if sc != nil {
		buf = sc.file
	}
	kept := false
	send := func(it item) bool {
		if examine != nil {
			if it.err == nil && len(it.refs) == 0 {
				it.ex = examine(it.t)
				it.doc.done()
				it.t, it.doc = nil, nil
			}
			kept = kept || len(it.refs) > 0
			if j.examined == nil {
				j.examined = make([]item, 0, 8)
			}
			j.examined = append(j.examined, it)
			return ctx.Err() == nil
		}
		select {
		case j.out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	data, err := j.read(buf)
	if err != nil {
		send(item{err: err})
		return
	}
	if sc != nil {
		defer func() {
			if kept {
				sc.file = nil // the kept targets' nodes point into data
			} else {
				sc.file = data[:0]
			}
		}()
	}
	if err := decodeStream(j.name, data, sc, send); err != nil {
		send(item{err: err})
	}
}

// expand returns p itself for a file, or the YAML and JSON files under a directory, sorted.
func expand(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read manifests in %s: %w", p, err)
	}
	sort.Strings(files)
	return files, nil
}

// yamlError splits a yaml.v3 error ("yaml: line 8: did not find expected
// ',' or ']'") into its 1-based line (0 when unknown) and its message.
// yaml.v3 reports parser errors that carry a context mark ("did not find
// expected ...") with a 0-based line and everything else 1-based; the line
// is corrected here so it points at the file's real line.
func yamlError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, "invalid YAML: " + msg
	}
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, convErr := strconv.Atoi(rest[:j])
	if convErr != nil {
		return 0, "invalid YAML: " + msg
	}
	text := strings.TrimPrefix(rest[j:], ": ")
	if strings.HasPrefix(text, "did not find expected") {
		n++
	}
	return n, "invalid YAML: " + text
}
