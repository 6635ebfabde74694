package nodeconf_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/unshim/unshim/cmd/unshim/app"
	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/log"
)

func runCmd(name string, args ...string) (string, error) {
	out, err := osexec.Command(name, args...).CombinedOutput()
	return string(out), err
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/nodes-golden")

// The corpus: one hand-made node tree per real-world Docker setup, under
// testdata/nodes/SHAPE at node paths, written for unshim after the public
// shapes they are named for (RHEL 7's docker 1.13 package, docker-ce with
// drop-ins, Kubespray's docker role, the EKS AMI's daemon.json, NVIDIA and
// sandboxed runtimes, Harbor with certs.d, Artifactory as a mirror, CIS
// hardening). Registry hosts and CAs are placeholders: @PLAIN@, @TLS@,
// @MIRROR@ and @PATHMIRROR@ (host:port), @TLS_CA@ and @MIRROR_CA@ (PEM).
type corpusShape struct {
	name    string
	kubelet string
	// unmapped are keys the conversion must list as not carried over.
	unmapped []string
	// pulls are images the converted node pulls, and the registry each
	// must come from (a lab registry kind).
	pulls []corpusPull
}

type corpusPull struct{ ref, from string }

var corpus = []corpusShape{
	{name: "rhel7-docker-1.13", kubelet: "1.23.17",
		unmapped: []string{"runtimes.docker-runc", "default-runtime", "signature-verification", "add-registry", "log-driver",
			"seccomp-profile", "init-path", "userland-proxy-path", "enable_unprivileged_ports",
			"/etc/sysconfig/docker line 5", "/etc/sysconfig/docker line 7"}},
	{name: "ubuntu-docker-ce-dropins", kubelet: "1.20.15",
		unmapped: []string{"disable-legacy-registry", "log-level", "log-driver"}},
	{name: "kubespray", kubelet: "1.26.15",
		unmapped: []string{"iptables", "dns", "dns-search", "dns-opts"},
		pulls:    []corpusPull{{"@PLAIN@/unshim/pause:3.9", lab.RegistryPlain}}},
	{name: "eks-al2", kubelet: "1.29.3",
		unmapped: []string{"bridge", "live-restore", "iptables"}},
	{name: "gpu-and-sandboxes", kubelet: "1.30.14",
		unmapped: []string{"oom-score-adjust", "runtimes.runsc.runtimeArgs"}},
	{name: "harbor-certsd", kubelet: "1.30.14",
		pulls: []corpusPull{{"@TLS@/unshim/probe:1", lab.RegistryTLS}, {"@PLAIN@/unshim/probe:1", lab.RegistryPlain}}},
	{name: "insecure-on-tls", kubelet: "1.30.14",
		unmapped: []string{"insecure-registries"},
		pulls:    []corpusPull{{"@TLS@/unshim/probe:1", lab.RegistryTLS}}},
	{name: "mirror-with-ca", kubelet: "1.30.14",
		pulls: []corpusPull{{"docker.io/library/probe:1", lab.RegistryMirror}}},
	{name: "artifactory-path-mirror", kubelet: "1.30.14",
		pulls: []corpusPull{{"docker.io/library/probe:1", lab.RegistryMirror}}},
	{name: "data-root-own-disk", kubelet: "1.30.14",
		unmapped: []string{"data-root", "oom-score-adjust", "ip-forward"}},
	{name: "cis-hardened", kubelet: "1.30.14",
		unmapped: []string{"icc", "userns-remap", "no-new-privileges", "log-driver", "log-opts", "tlsverify", "authorization-plugins", "live-restore"}},
}

// corpusVersions are the targets every shape is converted for.
var corpusVersions = []string{"1.6.20", "1.7.28", "2.2.0"}

// fakeHosts fill the placeholders for the golden files.
var fakeHosts = map[string]string{
	"@PLAIN@": "registry.plain.example:5000", "@TLS@": "harbor.example.com:8443",
	"@MIRROR@": "mirror.example.cn", "@PATHMIRROR@": "artifactory.example.com",
	"@TLS_CA@":    "-----BEGIN CERTIFICATE-----\nHARBOR CA\n-----END CERTIFICATE-----\n",
	"@MIRROR_CA@": "-----BEGIN CERTIFICATE-----\nMIRROR CA\n-----END CERTIFICATE-----\n",
}

// materialize copies the shape's tree to a new directory with the
// placeholders (in file names and contents) replaced.
func materialize(t *testing.T, shape string, subst map[string]string) string {
	t.Helper()
	var pairs []string
	for k, v := range subst {
		pairs = append(pairs, k, v)
	}
	r := strings.NewReplacer(pairs...)
	src := filepath.Join("testdata", "nodes", shape)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, r.Replace(rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(r.Replace(string(data))), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

type convertResult struct {
	Files    []string `json:"files"`
	Unmapped []struct {
		Key    string `json:"key"`
		Value  string `json:"value"`
		Reason string `json:"reason"`
		Source string `json:"source"`
	} `json:"unmapped"`
	Kubelet map[string]any `json:"kubelet"`
}

// convertTree runs `unshim convert --root ROOT --out OUT -o json`.
func convertTree(t *testing.T, root, out, version, kubelet string) (*convertResult, []byte) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := app.Run(context.Background(), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}, "unshim",
		[]string{"convert", "--root", root, "--containerd-version", version, "--kubelet-version", kubelet, "--out", out, "-o", "json"})
	if code != 0 {
		t.Fatalf("unshim convert exited %d (a setup dockerd runs must never be refused): %s", code, stderr.String())
	}
	var res convertResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("convert -o json: %v\n%s", err, stdout.String())
	}
	return &res, stdout.Bytes()
}

// TestCorpusConverts converts every shape for containerd 1.6, 1.7 and 2.x:
// none is refused, each lists what it did not carry over, and the files
// match testdata/nodes-golden.
func TestCorpusConverts(t *testing.T) {
	for _, sh := range corpus {
		for _, v := range corpusVersions {
			t.Run(sh.name+"/"+v, func(t *testing.T) {
				root := materialize(t, sh.name, fakeHosts)
				out := t.TempDir()
				res, js := convertTree(t, root, out, v, sh.kubelet)
				keys := map[string]bool{}
				for _, u := range res.Unmapped {
					keys[u.Key] = true
					if u.Reason == "" {
						t.Errorf("unmapped %s has no reason", u.Key)
					}
				}
				for _, k := range sh.unmapped {
					if !keys[k] {
						t.Errorf("unmapped lacks %q: %v", k, res.Unmapped)
					}
				}
				got := renderTree(t, out, js)
				golden := filepath.Join("testdata", "nodes-golden", sh.name+"-"+v+".golden")
				if *updateCorpus {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -run TestCorpusConverts -update-corpus)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("output differs from %s (rerun with -update-corpus and review the diff):\n%s", golden, got)
				}
			})
		}
	}
}

// renderTree renders every file under out (cri-base.json by its size: it is
// containerd's default spec) and the JSON result.
func renderTree(t *testing.T, out string, js []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var files []string
	_ = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	sort.Strings(files)
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel := "/" + strings.TrimPrefix(p, out+"/")
		if strings.HasSuffix(rel, "cri-base.json") {
			var spec struct {
				Process struct {
					Rlimits []any `json:"rlimits"`
				} `json:"process"`
			}
			if err := json.Unmarshal(data, &spec); err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			rl, _ := json.Marshal(spec.Process.Rlimits)
			fmt.Fprintf(&b, "==> %s <== (containerd's default spec, rlimits %s)\n\n", rel, rl)
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", rel, data)
	}
	var res map[string]any
	_ = json.Unmarshal(js, &res)
	delete(res, "files")
	pretty, _ := json.MarshalIndent(res, "", "  ")
	b.Write(pretty)
	b.WriteByte('\n')
	return b.Bytes()
}

// corpusRegistries starts the lab's registries, pushes the corpus's images
// and an Artifactory-like front for the mirror that serves it under a path
// prefix. It returns the placeholder values and the digest each registry
// serves.
func corpusRegistries(t *testing.T) (map[string]string, map[string]string) {
	t.Helper()
	testutil.RequireBinary(t, lab.RegistryBinary)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := lab.StartRegistries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Stop() })
	digests := map[string]string{}
	for _, p := range []struct {
		r         *lab.Registry
		repo, tag string
	}{{rs.Plain, "unshim/probe", "1"}, {rs.Plain, "unshim/pause", "3.9"}, {rs.TLS, "unshim/probe", "1"}, {rs.Mirror, "library/probe", "1"}} {
		d, err := p.r.Push(ctx, p.repo, p.tag, p.r.Kind) // content names the registry: distinct digests
		if err != nil {
			t.Fatal(err)
		}
		digests[p.r.Kind] = d
	}
	ca := func(r *lab.Registry) string {
		b, err := os.ReadFile(r.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Artifactory serves a remote repository under
	// /artifactory/api/docker/REPO/v2/: a TLS front with the mirror's
	// certificate strips the prefix and hands the rest to the mirror.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ca(rs.Mirror)))
	target, _ := url.Parse(rs.Mirror.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	const prefix = "/artifactory/api/docker/docker-remote"
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix+"/v2") {
			http.NotFound(w, r)
			return
		}
		r.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
		proxy.ServeHTTP(w, r)
	}))
	pkiDir := filepath.Dir(rs.Mirror.CAFile)
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "registry.crt"), filepath.Join(pkiDir, "registry.key"))
	if err != nil {
		t.Fatal(err)
	}
	front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	front.StartTLS()
	t.Cleanup(front.Close)
	return map[string]string{
		"@PLAIN@": rs.Plain.Host, "@TLS@": rs.TLS.Host, "@MIRROR@": rs.Mirror.Host,
		"@PATHMIRROR@": strings.TrimPrefix(front.URL, "https://"),
		"@TLS_CA@":     ca(rs.TLS), "@MIRROR_CA@": ca(rs.Mirror),
	}, digests
}

// TestCorpusRealContainerd starts a real containerd 1.6.20 (Debian's) and
// 2.2.0 (built from Go modules) on every shape's converted config, on a
// private root, state and socket, checks that its CRI comes up, and pulls
// the shape's images through the CRI from the lab's registries: an
// insecure registry on plain HTTP and one on TLS, a registry whose CA is in
// certs.d, a Docker Hub mirror with its own CA, and one behind a path.
func TestCorpusRealContainerd(t *testing.T) {
	testutil.RequireRoot(t)
	hosts, digests := corpusRegistries(t)
	bins := []struct {
		version string
		bin     func(t *testing.T) string
	}{
		{"1.6.20", func(t *testing.T) string {
			bin := testutil.RequireBinary(t, "containerd")
			out, _ := runCmd(bin, "--version")
			if !strings.Contains(out, "1.6.20") {
				testutil.Missing(t, "containerd 1.6.20 (Debian 12's package), got %q", out)
			}
			return bin
		}},
		{"2.2.0", func(t *testing.T) string {
			testutil.RequireBinary(t, "go")
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			bin, err := lab.EnsureContainerd(ctx, log.NoopLogger(), lab.DefaultContainerdVersion)
			if err != nil {
				testutil.Missing(t, "containerd %s from the Go module proxy: %v", lab.DefaultContainerdVersion, err)
			}
			return bin
		}},
	}
	for _, b := range bins {
		t.Run(b.version, func(t *testing.T) {
			bin := b.bin(t)
			for _, sh := range corpus {
				t.Run(sh.name, func(t *testing.T) {
					runShape(t, bin, b.version, sh, hosts, digests)
				})
			}
		})
	}
}

func runShape(t *testing.T, bin, version string, sh corpusShape, hosts, digests map[string]string) {
	root := materialize(t, sh.name, hosts)
	tmp, err := os.MkdirTemp("", "unshim-corpus-") // short: the socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	out := filepath.Join(tmp, "out")
	convertTree(t, root, out, version, sh.kubelet)
	cfg, err := os.ReadFile(filepath.Join(out, "etc/containerd/config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cniConf, cniBin := filepath.Join(tmp, "cni-conf"), filepath.Join(tmp, "cni-bin")
	for _, d := range []string{cniConf, cniBin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The config names node paths; this containerd runs beside the host's,
	// so they point into the test's directories (root and state come from
	// the command line), and NRI (a host-global socket) is off.
	runCfg := strings.NewReplacer(
		`"/etc/containerd/certs.d"`, `"`+filepath.Join(out, "etc/containerd/certs.d")+`"`,
		`"/etc/containerd/cri-base.json"`, `"`+filepath.Join(out, "etc/containerd/cri-base.json")+`"`,
		`"/etc/cni/net.d"`, `"`+cniConf+`"`, `"/opt/cni/bin"`, `"`+cniBin+`"`, `"/usr/lib/cni"`, `"`+cniBin+`"`,
		"disabled_plugins = []", `disabled_plugins = ["io.containerd.nri.v1.nri"]`,
	).Replace(string(cfg))
	cfgPath := filepath.Join(tmp, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(runCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if dump, err := runCmd(bin, "--config", cfgPath, "config", "dump"); err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, dump)
	}
	sock := filepath.Join(tmp, "c.sock")
	testutil.StartDaemon(t, filepath.Join(tmp, "containerd.log"), 15*time.Second, bin,
		"--config", cfgPath, "--root", filepath.Join(tmp, "root"), "--state", filepath.Join(tmp, "state"), "--address", sock)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt, img := runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deadline := time.Now().Add(60 * time.Second)
	for {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		status, err := rt.Status(sctx, &runtimeapi.StatusRequest{})
		scancel()
		if err == nil && ready(status, runtimeapi.RuntimeReady) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI not ready after 60s: %v %v", status.GetStatus(), err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, p := range sh.pulls {
		ref := strings.NewReplacer("@PLAIN@", hosts["@PLAIN@"], "@TLS@", hosts["@TLS@"]).Replace(p.ref)
		pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
		_, err := img.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		pcancel()
		if err != nil {
			hostsToml, _ := runCmd("sh", "-c", "cat "+filepath.Join(out, "etc/containerd/certs.d")+"/*/hosts.toml")
			t.Errorf("CRI PullImage %s: %v\nhosts.toml files:\n%s", ref, err, hostsToml)
			continue
		}
		st, err := img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil || st.Image == nil {
			t.Fatalf("CRI ImageStatus %s: %v %v", ref, st, err)
		}
		if want := "@" + digests[p.from]; !anyContains(st.Image.RepoDigests, want) {
			t.Errorf("%s pulled %v, want the %s registry's %s", ref, st.Image.RepoDigests, p.from, digests[p.from])
		}
	}
}
