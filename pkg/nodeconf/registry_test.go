package nodeconf_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// fakeRegistry is a real (if tiny) OCI distribution registry over plain
// HTTP: it serves one single-layer image under any name and tag, and records
// every request, so a test can tell which registry host containerd used.
type fakeRegistry struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
	blobs    map[string][]byte
	manifest []byte
	digest   string
}

func newFakeRegistry() *fakeRegistry {
	r := &fakeRegistry{blobs: map[string][]byte{}}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	body := []byte("unshim\n")
	_ = tw.WriteHeader(&tar.Header{Name: "unshim.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(body)
	_ = tw.Close()
	diffID := digestOf(tarBuf.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(tarBuf.Bytes())
	_ = zw.Close()
	layer := gz.Bytes()
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"/pause"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	r.blobs[digestOf(layer)] = layer
	r.blobs[digestOf(config)] = config
	r.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digestOf(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digestOf(layer), "size": len(layer)}},
	})
	r.digest = digestOf(r.manifest)
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func (r *fakeRegistry) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, req.Method+" "+req.URL.RequestURI())
	r.mu.Unlock()
	p := req.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		w.WriteHeader(http.StatusOK)
	case strings.Contains(p, "/manifests/"):
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", r.digest)
		w.Header().Set("Content-Length", fmt.Sprint(len(r.manifest)))
		if req.Method != http.MethodHead {
			_, _ = w.Write(r.manifest)
		}
	case strings.Contains(p, "/blobs/"):
		b, ok := r.blobs[p[strings.LastIndex(p, "/")+1:]]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if req.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	default:
		http.NotFound(w, req)
	}
}

// Requests returns the requests seen so far.
func (r *fakeRegistry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// Host is the registry's host:port.
func (r *fakeRegistry) Host() string { return strings.TrimPrefix(r.URL, "http://") }
