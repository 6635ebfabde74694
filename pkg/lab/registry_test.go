package lab_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/lab"
)

// TestRegistries starts the lab's three registries and checks what each
// serves: plain HTTP only on the plain one; on the TLS ones a certificate
// that only their own CA verifies (not the other registry's, not the
// system's); and images pushed to each come back by digest.
func TestRegistries(t *testing.T) {
	testutil.RequireBinary(t, lab.RegistryBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rs, err := lab.StartRegistries(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rs.Stop(); err != nil {
			t.Errorf("stop registries: %v", err)
		}
	})
	loaded, err := lab.LoadRegistries(dir)
	if err != nil || loaded.TLS.Host != rs.TLS.Host {
		t.Fatalf("LoadRegistries = %+v, %v", loaded, err)
	}

	get := func(url string, roots *x509.CertPool) (*http.Response, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots}}}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	pool := func(file string) *x509.CertPool {
		p := x509.NewCertPool()
		b, err := os.ReadFile(file)
		if err != nil || !p.AppendCertsFromPEM(b) {
			t.Fatalf("CA %s: %v", file, err)
		}
		return p
	}

	if rs.Plain.CAFile != "" || !strings.HasPrefix(rs.Plain.URL, "http://127.0.0.1:") {
		t.Errorf("plain registry = %+v", rs.Plain)
	}
	if resp, err := get(rs.Plain.URL+"/v2/", nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("plain registry /v2/: %v %v", resp, err)
	}
	if _, err := get("https://"+rs.Plain.Host+"/v2/", nil); err == nil {
		t.Errorf("plain registry answers HTTPS")
	}
	for _, r := range []*lab.Registry{rs.TLS, rs.Mirror} {
		other := rs.Mirror
		if r == rs.Mirror {
			other = rs.TLS
		}
		if resp, err := get(r.URL+"/v2/", pool(r.CAFile)); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%s registry with its CA: %v %v", r.Kind, resp, err)
		}
		var uerr *tls.CertificateVerificationError
		if _, err := get(r.URL+"/v2/", nil); !errors.As(err, &uerr) {
			t.Errorf("%s registry verified without its CA: %v", r.Kind, err)
		}
		if _, err := get(r.URL+"/v2/", pool(other.CAFile)); !errors.As(err, &uerr) {
			t.Errorf("%s registry verified with the %s registry's CA: %v", r.Kind, other.Kind, err)
		}
		if resp, err := get("http://"+r.Host+"/v2/", nil); err == nil && resp.StatusCode == http.StatusOK {
			t.Errorf("%s registry answers plain HTTP with 200", r.Kind)
		}
	}

	for _, r := range rs.All() {
		d1, err := r.Push(ctx, "unshim/probe", "1", "hello "+r.Kind)
		if err != nil {
			t.Fatalf("push to %s: %v", r.Kind, err)
		}
		d2, err := r.Push(ctx, "unshim/probe", "2", "hello "+r.Kind)
		if err != nil || d2 != d1 {
			t.Errorf("same content pushed again: %s, %v; want %s", d2, err, d1)
		}
		var roots *x509.CertPool
		if r.CAFile != "" {
			roots = pool(r.CAFile)
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots}}}
		req, _ := http.NewRequest(http.MethodHead, r.URL+"/v2/unshim/probe/manifests/1", nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("HEAD manifest on %s: %v", r.Kind, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != http.StatusOK || got != d1 {
			t.Errorf("HEAD manifest on %s: %s digest %s, want 200 %s", r.Kind, resp.Status, got, d1)
		}
	}
}

// TestLabRegistries: a lab starts its registries once, records them, and
// `lab down` stops them.
func TestLabRegistries(t *testing.T) {
	testutil.RequireBinary(t, lab.RegistryBinary)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := &lab.Lab{Dir: filepath.Join(t.TempDir(), "lab")}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	rs, err := l.Registries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Registries(ctx)
	if err != nil || again.Mirror.Host != rs.Mirror.Host {
		t.Errorf("second Registries = %+v, %v; want the running ones", again, err)
	}
	saved, err := lab.Load(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range saved.Processes {
		if p.Name == lab.RegistryBinary {
			n++
		}
	}
	if n != 3 {
		t.Errorf("lab.json records %d registries, want 3: %+v", n, saved.Processes)
	}
	if err := saved.Down(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.All() {
		if err := syscall.Kill(r.PID, 0); err == nil {
			t.Errorf("%s registry (pid %d) still runs after Down", r.Kind, r.PID)
		}
	}
}
