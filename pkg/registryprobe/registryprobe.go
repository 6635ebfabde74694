// Package registryprobe asks image registries what containerd will ask them,
// configured the way containerd is: from a certs.d directory of hosts.toml
// files (containerd's config_path). Routes lists the registry hosts each
// image reference resolves through; Resolve resolves one reference (a
// manifest HEAD, not a pull) through containerd's own resolver
// (core/remotes/docker with config.ConfigureHosts), so a reference that
// resolves here resolves for the node's containerd 2.x with the same files.
package registryprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	clog "github.com/containerd/log"
	"github.com/distribution/reference"
	"github.com/sirupsen/logrus"

	"github.com/unshim/unshim/pkg/nodeconf"
)

// quiet keeps containerd's resolver from logging to the process's stderr:
// what it tried is returned in Attempts and errors instead.
func quiet(ctx context.Context) context.Context {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return clog.WithLogger(ctx, logrus.NewEntry(l))
}

// Host is one registry host a reference may be fetched from, in the order
// containerd tries them.
type Host struct {
	// URL is scheme://host/path (path ends in /v2 unless overridden).
	URL string `json:"url"`
	// Resolve tells whether the host may resolve tags (else pull only).
	Resolve bool `json:"resolve"`
	Push    bool `json:"push,omitempty"`
}

// Route is how one image reference is resolved.
type Route struct {
	// Ref is the reference as given; Name is its normalized form.
	Ref  string `json:"ref"`
	Name string `json:"name"`
	// Namespace is the registry host of the reference (docker.io,
	// HOST[:PORT]): the certs.d directory containerd reads for it.
	Namespace string `json:"namespace"`
	// Hosts are the hosts tried, in order.
	Hosts []Host `json:"hosts"`
}

// hostsFor configures registry hosts from certsDir as containerd's CRI does
// (config_path: config.HostDirFromRoot), with an optional client hook.
func hostsFor(ctx context.Context, certsDir string, update config.UpdateClientFunc) docker.RegistryHosts {
	return config.ConfigureHosts(ctx, config.HostOptions{
		HostDir:      config.HostDirFromRoot(certsDir),
		UpdateClient: update,
	})
}

// Routes returns, for each image reference, the registry hosts containerd
// configured from certsDir resolves it through. Bad references are errors.
func Routes(ctx context.Context, certsDir string, refs []string) ([]Route, error) {
	ctx = quiet(ctx)
	hosts := hostsFor(ctx, certsDir, nil)
	var out []Route
	for _, ref := range refs {
		named, err := reference.ParseDockerRef(ref)
		if err != nil {
			return nil, fmt.Errorf("image reference %q: %w", ref, err)
		}
		ns := reference.Domain(named)
		hs, err := hosts(ns)
		if err != nil {
			return nil, fmt.Errorf("registry hosts of %s (%s): %w", ns, certsDir, err)
		}
		r := Route{Ref: ref, Name: named.String(), Namespace: ns}
		for _, h := range hs {
			r.Hosts = append(r.Hosts, Host{URL: h.Scheme + "://" + h.Host + h.Path,
				Resolve: h.Capabilities.Has(docker.HostCapabilityResolve), Push: h.Capabilities.Has(docker.HostCapabilityPush)})
		}
		out = append(out, r)
	}
	return out, nil
}

// Registries returns the distinct hosts (host[:port]) the references go to,
// sorted: what a rehearsal checks.
func Registries(routes []Route) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range routes {
		for _, h := range r.Hosts {
			u := strings.TrimPrefix(strings.TrimPrefix(h.URL, "https://"), "http://")
			u, _, _ = strings.Cut(u, "/")
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Attempt is one request the resolver made.
type Attempt struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	// Status is the HTTP status ("" when the request failed).
	Status string `json:"status,omitempty"`
	Err    string `json:"error,omitempty"`
}

// Result is a resolved reference.
type Result struct {
	Ref       string    `json:"ref"`
	Name      string    `json:"name"`
	Digest    string    `json:"digest"`
	MediaType string    `json:"mediaType"`
	Attempts  []Attempt `json:"attempts"`
}

// ResolveError is a reference that did not resolve, with every request tried.
type ResolveError struct {
	Ref      string
	Attempts []Attempt
	Err      error
}

func (e *ResolveError) Error() string {
	var tried []string
	for _, a := range e.Attempts {
		s := a.Method + " " + a.URL + ": "
		if a.Err != "" {
			s += a.Err
		} else {
			s += a.Status
		}
		tried = append(tried, s)
	}
	msg := fmt.Sprintf("resolve %s: %v", e.Ref, e.Err)
	if len(tried) > 0 {
		msg += " (tried " + strings.Join(tried, "; ") + ")"
	}
	return msg
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Resolve resolves ref (a manifest HEAD, falling back to GET as containerd
// does) through containerd's resolver configured from certsDir, and records
// every request made. It downloads no layers.
func Resolve(ctx context.Context, certsDir, ref string) (*Result, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	ctx = quiet(ctx)
	rec := &recorder{}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: hostsFor(ctx, certsDir, func(c *http.Client) error {
			c.Transport = &recordingTransport{next: c.Transport, rec: rec}
			return nil
		}),
	})
	name, desc, err := resolver.Resolve(ctx, named.String())
	if err != nil {
		return nil, &ResolveError{Ref: ref, Attempts: rec.list(), Err: err}
	}
	return &Result{Ref: ref, Name: name, Digest: desc.Digest.String(), MediaType: desc.MediaType, Attempts: rec.list()}, nil
}

// ResolveAll resolves every reference and returns the results and the
// failures joined (each a *ResolveError).
func ResolveAll(ctx context.Context, certsDir string, refs []string) ([]*Result, error) {
	var out []*Result
	var errs []error
	for _, ref := range refs {
		r, err := Resolve(ctx, certsDir, ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

type recorder struct {
	mu       sync.Mutex
	attempts []Attempt
}

func (r *recorder) add(a Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, a)
}

func (r *recorder) list() []Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Attempt(nil), r.attempts...)
}

// recordingTransport records each request and its answer.
type recordingTransport struct {
	next http.RoundTripper
	rec  *recorder
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	a := Attempt{Method: req.Method, URL: req.URL.String()}
	if err != nil {
		a.Err = err.Error()
	} else {
		a.Status = resp.Status
	}
	t.rec.add(a)
	return resp, err
}

// RoutesForFiles is Routes for a conversion not yet written to any node:
// the certs.d files among files (nodeconf.Output.Files, at their node paths
// under nodeconf.CertsDir) are laid out in a temporary directory, read as
// containerd would read them, and removed.
func RoutesForFiles(ctx context.Context, files []nodeconf.File, refs []string) ([]Route, error) {
	dir, err := os.MkdirTemp("", "unshim-certs.d-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, f := range files {
		rel, ok := strings.CutPrefix(f.Path, nodeconf.CertsDir+"/")
		if !ok {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(path.Clean("/"+rel)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return nil, err
		}
	}
	return Routes(ctx, dir, refs)
}
