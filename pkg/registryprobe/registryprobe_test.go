package registryprobe_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/registryprobe"
	"github.com/unshim/unshim/pkg/transport"
)

// startRegistries starts the lab's registries with one image in each: the
// plain and TLS ones under unshim/probe:1, the Docker Hub mirror under
// library/probe:1 (what docker.io/library/probe:1 is asked as).
func startRegistries(t *testing.T) *lab.Registries {
	t.Helper()
	testutil.RequireBinary(t, lab.RegistryBinary)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := lab.StartRegistries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Stop() })
	for _, p := range []struct {
		r    *lab.Registry
		repo string
	}{{rs.Plain, "unshim/probe"}, {rs.TLS, "unshim/probe"}, {rs.Mirror, "library/probe"}} {
		if _, err := p.r.Push(ctx, p.repo, "1", p.r.Kind); err != nil {
			t.Fatal(err)
		}
	}
	return rs
}

func readCA(t *testing.T, r *lab.Registry) []byte {
	t.Helper()
	b, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// convert writes the containerd files unshim converts daemon (and the
// /etc/docker/certs.d files) to for version, and returns their certs.d.
func convert(t *testing.T, v *version.Version, daemon string, certs map[string][]nodeconf.CertFile) string {
	t.Helper()
	d, err := nodeconf.ParseDaemonJSON("/etc/docker/daemon.json", []byte(daemon))
	if err != nil {
		t.Fatal(err)
	}
	out, err := nodeconf.Convert(&nodeconf.Input{ContainerdVersion: v, Daemon: d, Certs: certs})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := nodefiles.WriteFiles(context.Background(), &transport.Local{Root: dir}, out.Files, nodefiles.RunName(time.Now()), false); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, nodeconf.CertsDir)
}

// TestResolveThroughConvertedHosts resolves, through containerd's resolver,
// an image on each of the lab's registries with the certs.d that unshim
// converts a Docker node's settings to, for containerd 1.6 and 2.2: a
// registry in insecure-registries on plain HTTP, one in insecure-registries
// on TLS with a certificate nobody trusts, a Harbor-style registry whose CA
// is in /etc/docker/certs.d, and a Docker Hub mirror whose CA is in
// /etc/docker/certs.d/<mirror host>.
func TestResolveThroughConvertedHosts(t *testing.T) {
	rs := startRegistries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mirrorCA := map[string][]nodeconf.CertFile{rs.Mirror.Host: {{Name: "ca.crt", Data: readCA(t, rs.Mirror)}}}
	tests := []struct {
		name    string
		daemon  string
		certs   map[string][]nodeconf.CertFile
		ref     string
		viaHost string // the host that must have answered
	}{
		{"insecure on HTTP", `{"insecure-registries":["` + rs.Plain.Host + `"]}`, nil, rs.Plain.Host + "/unshim/probe:1", rs.Plain.Host},
		{"insecure on TLS", `{"insecure-registries":["` + rs.TLS.Host + `"]}`, nil, rs.TLS.Host + "/unshim/probe:1", rs.TLS.Host},
		{"CA in certs.d", `{}`, map[string][]nodeconf.CertFile{rs.TLS.Host: {{Name: "ca.crt", Data: readCA(t, rs.TLS)}}}, rs.TLS.Host + "/unshim/probe:1", rs.TLS.Host},
		{"mirror with its CA", `{"registry-mirrors":["` + rs.Mirror.URL + `"]}`, mirrorCA, "probe:1", rs.Mirror.Host},
	}
	for _, v := range []*version.Version{version.MustParseGeneric("1.6.20"), version.MajorMinor(2, 2)} {
		for _, tt := range tests {
			t.Run(v.String()+"/"+tt.name, func(t *testing.T) {
				certsDir := convert(t, v, tt.daemon, tt.certs)
				res, err := registryprobe.Resolve(ctx, certsDir, tt.ref)
				if err != nil {
					t.Fatal(err)
				}
				last := res.Attempts[len(res.Attempts)-1]
				if !strings.Contains(last.URL, "//"+tt.viaHost+"/") || !strings.HasPrefix(last.Status, "200") {
					t.Errorf("answered by %s %s, want %s: attempts %+v", last.URL, last.Status, tt.viaHost, res.Attempts)
				}
				if !strings.HasPrefix(res.Digest, "sha256:") {
					t.Errorf("digest = %q", res.Digest)
				}
				for _, a := range res.Attempts {
					if a.Method != "HEAD" && a.Method != "GET" {
						t.Errorf("request %s %s: a resolution only reads", a.Method, a.URL)
					}
					if strings.Contains(a.URL, "/blobs/") {
						t.Errorf("request %s: a resolution downloads no blobs", a.URL)
					}
				}
			})
		}
	}
}

// TestResolveFailsWithoutMirrorCA is the defect unshim fixed: with the
// mirror's CA only in the mirror's own hosts.toml and not on the mirror's
// entry in docker.io's hosts.toml, containerd cannot verify the mirror.
func TestResolveFailsWithoutMirrorCA(t *testing.T) {
	rs := startRegistries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	certsDir := convert(t, version.MustParseGeneric("2.2"), `{"registry-mirrors":["`+rs.Mirror.URL+`"]}`,
		map[string][]nodeconf.CertFile{rs.Mirror.Host: {{Name: "ca.crt", Data: readCA(t, rs.Mirror)}}})
	hub := filepath.Join(certsDir, "docker.io", "hosts.toml")
	b, err := os.ReadFile(hub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `ca = ["../`+rs.Mirror.Host+`/ca.crt"]`) {
		t.Fatalf("docker.io/hosts.toml does not attach the mirror's CA:\n%s", b)
	}
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "ca = ") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(hub, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = registryprobe.Resolve(ctx, certsDir, "docker.io/library/probe:1")
	var re *registryprobe.ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("resolved without the mirror's CA: %v", err)
	}
	if len(re.Attempts) == 0 || !strings.Contains(re.Attempts[0].URL, rs.Mirror.Host) || !strings.Contains(re.Attempts[0].Err, "certificate") {
		t.Errorf("first attempt = %+v, want an x509 error from the mirror", re.Attempts)
	}
}

// TestRoutes lists the hosts each reference resolves through, in
// containerd's order: a mirror (with a path) before Docker Hub, an
// insecure registry for containerd 1.6 over HTTPS first, then HTTP.
func TestRoutes(t *testing.T) {
	certsDir := convert(t, version.MustParseGeneric("1.6.20"),
		`{"registry-mirrors":["https://art.example.com/artifactory/api/docker/hub"],"insecure-registries":["reg.local:5000"]}`, nil)
	routes, err := registryprobe.Routes(context.Background(), certsDir, []string{"busybox", "reg.local:5000/app/web:2", "quay.io/x/y:1"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, r := range routes {
		for _, h := range r.Hosts {
			got[r.Namespace] = append(got[r.Namespace], h.URL)
		}
	}
	want := map[string][]string{
		"docker.io":      {"https://art.example.com/artifactory/api/docker/hub/v2", "https://registry-1.docker.io/v2"},
		"reg.local:5000": {"https://reg.local:5000/v2", "http://reg.local:5000/v2"},
		"quay.io":        {"https://quay.io/v2"},
	}
	for ns, w := range want {
		if strings.Join(got[ns], " ") != strings.Join(w, " ") {
			t.Errorf("%s hosts = %v, want %v", ns, got[ns], w)
		}
	}
	if routes[0].Name != "docker.io/library/busybox:latest" || routes[0].Hosts[0].Resolve != true || routes[0].Hosts[0].Push {
		t.Errorf("busybox route = %+v", routes[0])
	}
	if regs := registryprobe.Registries(routes); strings.Join(regs, " ") != "art.example.com quay.io reg.local:5000 registry-1.docker.io" {
		t.Errorf("Registries = %v", regs)
	}
	// The same routes from the converted files, before they are on any node.
	d, _ := nodeconf.ParseDaemonJSON("/etc/docker/daemon.json", []byte(`{"registry-mirrors":["https://art.example.com/artifactory/api/docker/hub"],"insecure-registries":["reg.local:5000"]}`))
	out, err := nodeconf.Convert(&nodeconf.Input{ContainerdVersion: version.MustParseGeneric("1.6.20"), Daemon: d})
	if err != nil {
		t.Fatal(err)
	}
	fromFiles, err := registryprobe.RoutesForFiles(context.Background(), out.Files, []string{"busybox", "reg.local:5000/app/web:2", "quay.io/x/y:1"})
	if err != nil || len(fromFiles) != 3 || strings.Join(registryprobe.Registries(fromFiles), " ") != strings.Join(registryprobe.Registries(routes), " ") {
		t.Errorf("RoutesForFiles = %+v, %v; want %+v", fromFiles, err, routes)
	}
	if _, err := registryprobe.Routes(context.Background(), certsDir, []string{"bad ref!"}); err == nil {
		t.Error("bad reference: no error")
	}
}
