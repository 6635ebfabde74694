package agentimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/agentimage"
)

// fixture writes a stand-in for the unshim binary and the image holding it.
type fixture struct {
	dir, tarball, ref string
	payload           []byte
	digest, id        string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, ref: "unshim-agent:test", payload: []byte("\x7fELF not really unshim " + t.Name() + "\n")}
	bin := filepath.Join(dir, "unshim")
	if err := os.WriteFile(bin, f.payload, 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := agentimage.Build(agentimage.Options{Binary: bin, OS: "linux", Arch: "amd64", Labels: map[string]string{"test": t.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	tag, err := agentimage.ParseRef(f.ref)
	if err != nil {
		t.Fatal(err)
	}
	f.tarball = filepath.Join(dir, "agent.tar")
	out, err := os.Create(f.tarball)
	if err != nil {
		t.Fatal(err)
	}
	if err := agentimage.Write(out, tag, img); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	id, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	f.digest, f.id = d.String(), id.String()
	return f
}

// TestBuild: the image is what the agent pod needs (podagent runs /unshim),
// and the same binary always gives the same digest.
func TestBuild(t *testing.T) {
	f := newFixture(t)
	img, err := tarball.ImageFromPath(f.tarball, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || strings.Join(cf.Config.Entrypoint, " ") != "/unshim" {
		t.Errorf("config: os %s arch %s entrypoint %q", cf.OS, cf.Architecture, cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(tr)
	if hdr.Name != "unshim" || hdr.Mode != 0o755 || hdr.Uid != 0 || !bytes.Equal(data, f.payload) {
		t.Errorf("layer entry %s mode %o uid %d, %d bytes; want unshim 0755 root with the binary", hdr.Name, hdr.Mode, hdr.Uid, len(data))
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("more than the binary in the layer: %v", err)
	}
	if d, _ := img.Digest(); d.String() != f.digest {
		t.Errorf("read back: digest %s; built %s", d, f.digest)
	}

	again, err := agentimage.Build(agentimage.Options{Binary: filepath.Join(f.dir, "unshim"), OS: "linux", Arch: "amd64", Labels: map[string]string{"test": t.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := again.Digest(); d.String() != f.digest {
		t.Errorf("built twice: digests %s and %s", f.digest, d)
	}
}

func TestBuildBadInput(t *testing.T) {
	tests := []struct {
		name string
		o    agentimage.Options
		want string
	}{
		{"missing binary", agentimage.Options{Binary: "/nonexistent/unshim", OS: "linux", Arch: "amd64"}, "no such file"},
		{"no platform", agentimage.Options{Binary: "/nonexistent/unshim"}, "no platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := agentimage.Build(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build: %v; want an error with %q", err, tt.want)
			}
		})
	}
	if _, err := agentimage.ParseRef("Not A Name"); err == nil {
		t.Error("ParseRef accepted an invalid name")
	}
}

// TestPushedDigest: pushed to a registry (go-containerregistry's own, in
// memory) from the tarball as `crane push FILE REF` does, the image keeps
// the digest Build printed, so operators can pin it by that digest.
func TestPushedDigest(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/unshim-agent:test")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(f.tarball, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != f.digest {
		t.Errorf("registry digest %s; Build's %s", desc.Digest, f.digest)
	}
}

// TestDockerLoad loads the tarball into Debian's dockerd (a private one on
// its own socket and roots) and reads the binary back out of a container.
func TestDockerLoad(t *testing.T) {
	testutil.RequireRoot(t)
	dockerd := testutil.RequireBinary(t, "dockerd")
	docker := testutil.RequireBinary(t, "docker")
	f := newFixture(t)
	dir := t.TempDir()
	sock := "unix://" + filepath.Join(dir, "d.sock")
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StartDaemon(t, filepath.Join(dir, "dockerd.log"), 30*time.Second, dockerd,
		"-H", sock, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--config-file", filepath.Join(dir, "daemon.json"),
		"--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none")
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(docker, append([]string{"-H", sock}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	waitFor(t, "dockerd", func() error { _, err := cli("version"); return err })

	out, err := cli("load", "--input", f.tarball)
	if err != nil || !strings.Contains(out, "Loaded image: "+f.ref) {
		t.Fatalf("docker load: %v: %s", err, out)
	}
	id, err := cli("image", "inspect", "--format", "{{.ID}} {{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}}", f.ref)
	if want := f.id + ` linux/amd64 ["/unshim"]`; err != nil || id != want {
		t.Errorf("docker image inspect: %q %v; want %q", id, err, want)
	}
	out, err = cli("create", f.ref)
	if err != nil {
		t.Fatalf("docker create: %v: %s", err, out)
	}
	ctr := out[strings.LastIndex(out, "\n")+1:] // the ID follows any warnings
	copied := filepath.Join(dir, "copied")
	if out, err := cli("cp", ctr+":/unshim", copied); err != nil {
		t.Fatalf("docker cp: %v: %s", err, out)
	}
	got, err := os.ReadFile(copied)
	if err != nil || !bytes.Equal(got, f.payload) {
		t.Errorf("/unshim from the container: %q %v; want the binary", got, err)
	}
	if st, err := os.Stat(copied); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("/unshim mode %v %v; want 0755", st.Mode(), err)
	}
}

// TestContainerdImport imports the tarball with `ctr images import` into
// Debian's containerd (a private one on its own socket and roots), in the
// namespace the kubelet's CRI uses.
//
// containerd 1.6 reads a docker-archive's manifest.json and writes a
// manifest of its own for it (images/archive/importer.go), so the manifest
// digest differs from the registry's; the config, and so the image ID the
// CRI names the image by, is the same.
func TestContainerdImport(t *testing.T) {
	testutil.RequireRoot(t)
	containerd := testutil.RequireBinary(t, "containerd")
	ctrBin := testutil.RequireBinary(t, "ctr")
	f := newFixture(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "c.sock")
	// No config: the defaults, with the CRI plugin; NRI off (its socket is host-global).
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("version = 2\ndisabled_plugins = [\"io.containerd.nri.v1.nri\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StartDaemon(t, filepath.Join(dir, "containerd.log"), 15*time.Second, containerd,
		"--config", cfg, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--address", sock)
	ctr := func(args ...string) (string, error) {
		out, err := exec.Command(ctrBin, append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	waitFor(t, "containerd", func() error { _, err := ctr("version"); return err })

	if out, err := ctr("images", "import", f.tarball); err != nil {
		t.Fatalf("ctr images import: %v: %s", err, out)
	}
	ls, err := ctr("images", "ls")
	if err != nil {
		t.Fatal(err)
	}
	var manifest string
	for _, l := range strings.Split(ls, "\n") {
		fields := strings.Fields(l)
		if len(fields) > 2 && fields[0] == "docker.io/library/"+f.ref {
			manifest = fields[2]
			if !strings.Contains(l, "linux/amd64") {
				t.Errorf("image listed without its platform: %s", l)
			}
		}
	}
	if manifest == "" {
		t.Fatalf("ctr images ls has no docker.io/library/%s:\n%s", f.ref, ls)
	}
	raw, err := ctr("content", "get", manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config struct{ Digest string } `json:"config"`
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Config.Digest != f.id {
		t.Errorf("containerd's manifest names config %q (%v); want the image ID %s", m.Config.Digest, err, f.id)
	}
	// Unpacked for the CRI's snapshotter: the layer is usable, not only stored.
	if out, err := ctr("images", "check"); err != nil || !strings.Contains(out, "complete") {
		t.Errorf("ctr images check: %v: %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := ctr("images", "mount", "docker.io/library/"+f.ref, mnt); err != nil {
		t.Fatalf("ctr images mount: %v: %s", err, out)
	}
	defer ctr("images", "unmount", "--rm", mnt)
	got, err := os.ReadFile(filepath.Join(mnt, "unshim"))
	if err != nil || !bytes.Equal(got, f.payload) {
		t.Errorf("/unshim in containerd's snapshot: %q %v; want the binary", got, err)
	}
}

func waitFor(t *testing.T, what string, ok func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := ok()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s does not answer: %v", what, err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}
