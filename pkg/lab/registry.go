package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RegistryBinary is the registry the lab runs: Debian's docker-registry
// package (the CNCF distribution registry, 2.8), listed in
// hack/apt-packages.txt.
const RegistryBinary = "docker-registry"

// Registry kinds.
const (
	// RegistryPlain serves plain HTTP: a Docker node lists it in
	// insecure-registries.
	RegistryPlain = "plain"
	// RegistryTLS serves HTTPS with a certificate of its own CA, which no
	// node trusts: a Docker node lists it in insecure-registries, or holds
	// the CA in /etc/docker/certs.d/HOST/ca.crt.
	RegistryTLS = "tls"
	// RegistryMirror is a Docker Hub mirror (registry-mirrors) on HTTPS with
	// a certificate of another CA of its own, trusted through
	// /etc/docker/certs.d/MIRRORHOST/ca.crt.
	RegistryMirror = "mirror"
)

// Registry is one image registry the lab runs on loopback.
type Registry struct {
	Kind string `json:"kind"`
	// Host is 127.0.0.1:PORT, as image references and certs.d name it.
	Host string `json:"host"`
	// URL is http://HOST or https://HOST.
	URL string `json:"url"`
	// CAFile is the PEM CA its certificate was issued by ("" for plain HTTP).
	CAFile string `json:"caFile,omitempty"`
	// PID is the registry process.
	PID int `json:"pid"`
	// Log is the registry's log file.
	Log string `json:"log"`
}

// Registries are the lab's three registries.
type Registries struct {
	Dir    string    `json:"dir"`
	Plain  *Registry `json:"plain"`
	TLS    *Registry `json:"tls"`
	Mirror *Registry `json:"mirror"`
}

// All returns the three registries.
func (r *Registries) All() []*Registry { return []*Registry{r.Plain, r.TLS, r.Mirror} }

// StartRegistries starts the three registries under dir (storage, configs,
// certificates, logs), each on a free port of 127.0.0.1, and waits until
// each answers /v2/. Each TLS registry gets a CA of its own: trusting one
// does not trust the other.
func StartRegistries(ctx context.Context, dir string) (*Registries, error) {
	bin, err := exec.LookPath(RegistryBinary)
	if err != nil {
		return nil, fmt.Errorf("%s not found (install Debian's docker-registry package: hack/install-deps.sh): %w", RegistryBinary, err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	rs := &Registries{Dir: dir}
	started := []*Registry{}
	for i, kind := range []string{RegistryPlain, RegistryTLS, RegistryMirror} {
		r, err := startRegistry(ctx, bin, filepath.Join(dir, kind), kind, ports[i])
		if err != nil {
			for _, s := range started {
				_ = s.Stop()
			}
			return nil, err
		}
		started = append(started, r)
	}
	rs.Plain, rs.TLS, rs.Mirror = started[0], started[1], started[2]
	data, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return nil, err
	}
	return rs, os.WriteFile(filepath.Join(dir, "registries.json"), data, 0o644)
}

// LoadRegistries reads the registries StartRegistries recorded in dir.
func LoadRegistries(dir string) (*Registries, error) {
	data, err := os.ReadFile(filepath.Join(dir, "registries.json"))
	if err != nil {
		return nil, err
	}
	var rs Registries
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "registries.json"), err)
	}
	return &rs, nil
}

// Stop stops the three registries.
func (r *Registries) Stop() error {
	var errs []error
	for _, x := range r.All() {
		if x != nil {
			errs = append(errs, x.Stop())
		}
	}
	return errors.Join(errs...)
}

func startRegistry(ctx context.Context, bin, dir, kind string, port int) (*Registry, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	r := &Registry{Kind: kind, Host: host, URL: "http://" + host, Log: filepath.Join(dir, "registry.log")}
	tlsBlock := ""
	if kind != RegistryPlain {
		p, err := newCA(filepath.Join(dir, "pki"), "unshim-lab-registry-"+kind+"-ca")
		if err != nil {
			return nil, err
		}
		if err := p.issue("registry", "unshim-lab-registry-"+kind, nil, true, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
			return nil, err
		}
		r.URL, r.CAFile = "https://"+host, p.path("ca.crt")
		tlsBlock = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", p.path("registry.crt"), p.path("registry.key"))
	}
	// No auth, no health checks: the registry serves /v2/ as soon as it listens.
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n%s",
		filepath.Join(dir, "data"), host, tlsBlock)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(r.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s registry: %w", kind, err)
	}
	r.PID = cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it when it stops
	hc, err := r.client()
	if err != nil {
		_ = r.Stop()
		return nil, err
	}
	if err := waitHTTP(ctx, hc, r.URL+"/v2/", 20*time.Second); err != nil {
		_ = r.Stop()
		b, _ := os.ReadFile(r.Log)
		return nil, fmt.Errorf("%s registry on %s does not answer: %w\n%s", kind, host, err, tailLines(string(b), 20))
	}
	return r, nil
}

// Stop stops the registry process.
func (r *Registry) Stop() error {
	if r == nil || r.PID == 0 || !processAlive(r.PID, RegistryBinary) {
		return nil
	}
	return stopProcess(r.PID, RegistryBinary)
}

// client returns an HTTP client that trusts the registry's CA.
func (r *Registry) client() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", r.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// Push uploads a small single-layer image (one file, /unshim.txt, holding
// content) as REPO:TAG through the distribution API and returns its
// manifest digest. The same content gives the same digest.
func (r *Registry) Push(ctx context.Context, repo, tag, content string) (string, error) {
	hc, err := r.client()
	if err != nil {
		return "", err
	}
	layerTarData, err := layerTar([]imageFile{{Path: "unshim.txt", Mode: 0o644, Data: []byte(content + "\n")}})
	if err != nil {
		return "", err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.ModTime = time.Unix(0, 0)
	if _, err := zw.Write(layerTarData); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": time.Unix(0, 0).UTC(),
		"config": map[string]any{"Cmd": []string{"/unshim.txt"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layerTarData)}},
	})
	if err != nil {
		return "", err
	}
	for _, blob := range [][]byte{gz.Bytes(), config} {
		if err := r.pushBlob(ctx, hc, repo, blob); err != nil {
			return "", err
		}
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(gz.Bytes()), "size": gz.Len()}},
	})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(manifest))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if err := do(hc, req, http.StatusCreated); err != nil {
		return "", fmt.Errorf("push %s/%s:%s: %w", r.Host, repo, tag, err)
	}
	return digest(manifest), nil
}

func (r *Registry) pushBlob(ctx context.Context, hc *http.Client, repo string, blob []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("start blob upload to %s/%s: %w", r.Host, repo, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start blob upload to %s/%s: %s", r.Host, repo, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("blob upload location: %w", err)
	}
	base, _ := url.Parse(r.URL)
	loc = base.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", digest(blob))
	loc.RawQuery = q.Encode()
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(blob))
	if err != nil {
		return err
	}
	put.Header.Set("Content-Type", "application/octet-stream")
	if err := do(hc, put, http.StatusCreated); err != nil {
		return fmt.Errorf("upload blob to %s/%s: %w", r.Host, repo, err)
	}
	return nil
}

func do(hc *http.Client, req *http.Request, want int) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Registries returns the lab's three registries, starting them the first
// time under DIR/registries. Their processes are recorded in the lab's
// state, so `unshim lab down` stops them. The lab's nodes share the host's
// network and reach them on 127.0.0.1. Note that Docker treats 127.0.0.0/8
// as insecure by default, and containerd without a hosts.toml for a
// loopback host tries it without TLS verification: a test of certs.d on
// these registries must write hosts.toml for them, as unshim convert does.
func (l *Lab) Registries(ctx context.Context) (*Registries, error) {
	dir := filepath.Join(l.Dir, "registries")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if rs, err := LoadRegistries(dir); err == nil {
		alive := true
		for _, r := range rs.All() {
			alive = alive && r != nil && processAlive(r.PID, RegistryBinary)
		}
		if alive {
			return rs, nil
		}
		_ = rs.Stop()
	}
	rs, err := StartRegistries(ctx, dir)
	if err != nil {
		return nil, err
	}
	// Record them in lab.json (re-read: another process may have saved it since).
	cur, err := Load(l.Dir)
	if err != nil {
		cur = l
	}
	kept := cur.Processes[:0]
	for _, p := range cur.Processes {
		if p.Name != RegistryBinary || processAlive(p.PID, RegistryBinary) {
			kept = append(kept, p) // drop registries that stopped
		}
	}
	cur.Processes = kept
	for _, r := range rs.All() {
		cur.Processes = append(cur.Processes, Process{Name: RegistryBinary, PID: r.PID, Log: r.Log})
	}
	if err := cur.save(); err != nil {
		return nil, err
	}
	l.Processes = cur.Processes
	return rs, nil
}
