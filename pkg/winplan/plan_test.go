package winplan

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/nodeconf"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// dockerFlags is a kubeadm-flags.env of a Windows node that runs on Docker,
// as kubeadm and sig-windows-tools wrote it.
const dockerFlags = `KUBELET_KUBEADM_ARGS="--cgroups-per-qos=false --enforce-node-allocatable= --network-plugin=cni --pod-infra-container-image=mcr.microsoft.com/oss/kubernetes/pause:3.6 --hostname-override=win-1 --cni-bin-dir=c:/opt/cni/bin --cni-conf-dir=c:/etc/cni/net.d --image-pull-progress-deadline=20m --node-ip=10.0.0.7"` + "\n"

// dockerFlags124 is one of a node already on kubelet 1.24+ (dockershim-only
// flags gone, but still the runtime flags of a remote runtime).
const dockerFlags124 = `KUBELET_KUBEADM_ARGS="--container-runtime=remote --container-runtime-endpoint=npipe:////./pipe/cri-dockerd --pod-infra-container-image=registry.k8s.io/pause:3.9 --hostname-override=win-1"` + "\n"

func parseFlags(t *testing.T, env string) []nodeconf.KubeletFlag {
	t.Helper()
	fs, err := nodeconf.ParseKubeletFlags("kubeadm-flags.env", []byte(env))
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func mustVersion(t *testing.T, s string) *version.Version {
	t.Helper()
	v, err := version.ParseGeneric(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// embeddedTOML returns the text of the script's single-quoted here-string.
func embeddedTOML(t *testing.T, script []byte) []byte {
	t.Helper()
	lines := strings.Split(string(script), "\n")
	start := -1
	for i, l := range lines {
		if l == "$toml = @'" {
			start = i + 1
			continue
		}
		if start >= 0 && l == "'@" {
			return []byte(strings.Join(lines[start:i], "\n") + "\n")
		}
	}
	t.Fatal("no here-string with the containerd config in the script")
	return nil
}

// kubeadmArgs returns the KUBELET_KUBEADM_ARGS words the script writes.
func kubeadmArgs(t *testing.T, script []byte) []string {
	t.Helper()
	for _, l := range strings.Split(string(script), "\n") {
		if rest, ok := strings.CutPrefix(l, `$line = 'KUBELET_KUBEADM_ARGS="`); ok {
			return strings.Fields(strings.TrimSuffix(rest, `"'`))
		}
	}
	t.Fatal("no KUBELET_KUBEADM_ARGS line in the script")
	return nil
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

func TestGolden(t *testing.T) {
	for _, kv := range []string{"1.23.17", "1.26.15", "1.29.14"} {
		for _, cv := range []string{"1.7.34", "2.2.7"} {
			name := fmt.Sprintf("kubelet-%s-containerd-%s", kv[:4], cv[:3])
			t.Run(name, func(t *testing.T) {
				in := Input{
					NodeName:     "win-1",
					Kubelet:      mustVersion(t, kv),
					Containerd:   mustVersion(t, cv),
					KubeletFlags: parseFlags(t, dockerFlags),
				}
				if in.Kubelet.AtLeast(version.MustParseGeneric("1.24")) {
					in.KubeletFlags = parseFlags(t, dockerFlags124)
				}
				s, err := Plan(in)
				if err != nil {
					t.Fatal(err)
				}
				compareGolden(t, name, s.Render())
			})
		}
	}
	// Unknown flags, an air-gapped archive with a checksum, the default
	// containerd for the kubelet.
	t.Run("airgap-unknown-flags", func(t *testing.T) {
		s, err := Plan(Input{
			NodeName:      "win-2",
			Kubelet:       mustVersion(t, "v1.31.4"),
			ArchiveURL:    `\\fileserver\k8s\containerd-{version}-windows-amd64.tar.gz`,
			ArchiveSHA256: strings.Repeat("ab", 32),
		})
		if err != nil {
			t.Fatal(err)
		}
		compareGolden(t, "airgap-unknown-flags", s.Render())
	})
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", name+".ps1")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("script differs from %s (run go test -update and review the diff):\n%s", golden, got)
	}
}

func TestRuntimeFlagsPerKubeletVersion(t *testing.T) {
	tests := []struct {
		kubelet          string
		flags            string
		wantRuntime      bool // --container-runtime=remote
		wantPodInfra     bool
		wantDropped      []string
		wantPodInfraWord string
	}{
		{kubelet: "1.23.17", flags: dockerFlags, wantRuntime: true, wantPodInfra: true,
			wantDropped:      []string{"network-plugin", "cni-bin-dir", "cni-conf-dir", "image-pull-progress-deadline"},
			wantPodInfraWord: "--pod-infra-container-image=mcr.microsoft.com/oss/kubernetes/pause:3.6"},
		{kubelet: "1.26.15", flags: dockerFlags124, wantRuntime: true, wantPodInfra: true},
		{kubelet: "1.27.0", flags: dockerFlags124, wantRuntime: false, wantPodInfra: true},
		{kubelet: "1.29.14", flags: dockerFlags124, wantRuntime: false, wantPodInfra: true},
		{kubelet: "1.34.2", flags: dockerFlags124, wantRuntime: false, wantPodInfra: true},
		{kubelet: "1.35.0", flags: dockerFlags124, wantRuntime: false, wantPodInfra: false},
		{kubelet: "1.36.1", flags: dockerFlags124, wantRuntime: false, wantPodInfra: false},
	}
	for _, tt := range tests {
		t.Run(tt.kubelet, func(t *testing.T) {
			s, err := Plan(Input{NodeName: "n", Kubelet: mustVersion(t, tt.kubelet), KubeletFlags: parseFlags(t, tt.flags)})
			if err != nil {
				t.Fatal(err)
			}
			args := kubeadmArgs(t, s.Render())
			if strings.Join(args, " ") != strings.Join(s.KubeletArgs, " ") {
				t.Errorf("script writes %q, Script.KubeletArgs is %q", args, s.KubeletArgs)
			}
			if got := hasFlag(args, "container-runtime"); got != tt.wantRuntime {
				t.Errorf("--container-runtime present = %v, want %v: %q", got, tt.wantRuntime, args)
			}
			if tt.wantRuntime && !strings.Contains(strings.Join(args, " "), "--container-runtime=remote") {
				t.Errorf("want --container-runtime=remote: %q", args)
			}
			if got := hasFlag(args, "pod-infra-container-image"); got != tt.wantPodInfra {
				t.Errorf("--pod-infra-container-image present = %v, want %v: %q", got, tt.wantPodInfra, args)
			}
			n := 0
			for _, a := range args {
				if strings.HasPrefix(a, "--container-runtime-endpoint=") {
					n++
					if a != "--container-runtime-endpoint="+Endpoint {
						t.Errorf("endpoint %q", a)
					}
				}
			}
			if n != 1 {
				t.Errorf("want one --container-runtime-endpoint, got %d: %q", n, args)
			}
			for _, d := range tt.wantDropped {
				if hasFlag(args, d) {
					t.Errorf("--%s kept: %q", d, args)
				}
			}
			if tt.wantPodInfraWord != "" && !strings.Contains(strings.Join(args, " "), tt.wantPodInfraWord) {
				t.Errorf("want %s: %q", tt.wantPodInfraWord, args)
			}
			if !hasFlag(args, "hostname-override") {
				t.Errorf("--hostname-override lost: %q", args)
			}
		})
	}
}

// The same rules where the script edits the flags on the node: the drop
// list it carries follows the kubelet version.
func TestUnknownFlagsDropList(t *testing.T) {
	tests := []struct {
		kubelet             string
		dropsRuntimeFlag    bool // container-runtime is always in the drop list; re-added only < 1.27
		addsRuntimeRemote   bool
		dropsPodInfra       bool
		rewritesPodInfraTag bool
	}{
		{"1.26.0", true, true, false, true},
		{"1.27.0", true, false, false, true},
		{"1.35.0", true, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.kubelet, func(t *testing.T) {
			s, err := Plan(Input{NodeName: "n", Kubelet: mustVersion(t, tt.kubelet)})
			if err != nil {
				t.Fatal(err)
			}
			if s.KubeletArgs != nil {
				t.Fatalf("KubeletArgs = %q, want nil for unknown flags", s.KubeletArgs)
			}
			var drop, add string
			script := string(s.Render())
			for _, l := range strings.Split(script, "\n") {
				if v, ok := strings.CutPrefix(l, "$drop = "); ok {
					drop = v
				}
				if v, ok := strings.CutPrefix(l, "$add = "); ok {
					add = v
				}
			}
			if strings.Contains(drop, "'container-runtime'") != tt.dropsRuntimeFlag {
				t.Errorf("drop list %s", drop)
			}
			if strings.Contains(add, "'--container-runtime=remote'") != tt.addsRuntimeRemote {
				t.Errorf("add list %s", add)
			}
			if !strings.Contains(add, "'--container-runtime-endpoint="+Endpoint+"'") {
				t.Errorf("add list %s lacks the endpoint", add)
			}
			if strings.Contains(drop, "'pod-infra-container-image'") != tt.dropsPodInfra {
				t.Errorf("drop list %s", drop)
			}
			if strings.Contains(script, "-like '--pod-infra-container-image=*'") != tt.rewritesPodInfraTag {
				t.Errorf("pod-infra rewrite present = %v", !tt.rewritesPodInfraTag)
			}
		})
	}
}

func TestEmbeddedConfigParses(t *testing.T) {
	tests := []struct {
		containerd  string
		wantVersion int64
		sandbox     []string // key path to the sandbox image
		cni         []string // key path to the CNI table
		binKey      string
	}{
		{"1.6.39", 2, []string{"plugins", "io.containerd.grpc.v1.cri", "sandbox_image"}, []string{"plugins", "io.containerd.grpc.v1.cri", "cni"}, "bin_dir"},
		{"1.7.34", 2, []string{"plugins", "io.containerd.grpc.v1.cri", "sandbox_image"}, []string{"plugins", "io.containerd.grpc.v1.cri", "cni"}, "bin_dir"},
		{"2.0.11", 3, []string{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"}, []string{"plugins", "io.containerd.cri.v1.runtime", "cni"}, "bin_dir"},
		{"2.2.7", 3, []string{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"}, []string{"plugins", "io.containerd.cri.v1.runtime", "cni"}, "bin_dirs"},
	}
	for _, tt := range tests {
		t.Run(tt.containerd, func(t *testing.T) {
			// A sandbox image and directories that need TOML escaping.
			const img = `registry.example:5000/pause:3.9`
			const bin = `C:\Program Files\cni\bin`
			const conf = `c:/etc/cni/it's "here"`
			s, err := Plan(Input{NodeName: "n", Kubelet: mustVersion(t, "1.30.2"), Containerd: mustVersion(t, tt.containerd),
				SandboxImage: img, CNIBinDir: bin, CNIConfDir: conf})
			if err != nil {
				t.Fatal(err)
			}
			text := embeddedTOML(t, s.Render())
			if !bytes.Equal(text, s.ContainerdConfig) {
				t.Errorf("embedded config differs from Script.ContainerdConfig:\n%s\n---\n%s", text, s.ContainerdConfig)
			}
			var m map[string]any
			if err := toml.Unmarshal(text, &m); err != nil {
				t.Fatalf("embedded config does not parse: %v\n%s", err, text)
			}
			if m["version"] != tt.wantVersion {
				t.Errorf("version = %v, want %d", m["version"], tt.wantVersion)
			}
			if got := lookup(m, tt.sandbox...); got != img {
				t.Errorf("%s = %v, want %s", strings.Join(tt.sandbox, "."), got, img)
			}
			cni, _ := lookup(m, tt.cni...).(map[string]any)
			if cni["conf_dir"] != conf {
				t.Errorf("conf_dir = %v", cni["conf_dir"])
			}
			switch b := cni[tt.binKey].(type) {
			case string:
				if b != bin {
					t.Errorf("%s = %q", tt.binKey, b)
				}
			case []any:
				if len(b) != 1 || b[0] != bin {
					t.Errorf("%s = %q", tt.binKey, b)
				}
			default:
				t.Errorf("%s = %#v", tt.binKey, cni[tt.binKey])
			}
		})
	}
}

func lookup(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		kubelet, wantContainerd, wantSandbox string
	}{
		{"1.23.17", "1.7.34", "registry.k8s.io/pause:3.6"},
		{"1.29.1", "1.7.34", "registry.k8s.io/pause:3.9"},
		{"1.30.0", "2.2.7", "registry.k8s.io/pause:3.9"},
		{"1.35.0", "2.2.7", "registry.k8s.io/pause:3.10.1"},
	}
	for _, tt := range tests {
		t.Run(tt.kubelet, func(t *testing.T) {
			kv := mustVersion(t, tt.kubelet)
			s, err := Plan(Input{NodeName: "n", Kubelet: kv})
			if err != nil {
				t.Fatal(err)
			}
			if s.Containerd.String() != tt.wantContainerd {
				t.Errorf("containerd %s, want %s", s.Containerd, tt.wantContainerd)
			}
			if s.SandboxImage != tt.wantSandbox || s.SandboxImage != nodeconf.PauseImage(kv) {
				t.Errorf("sandbox %s, want %s", s.SandboxImage, tt.wantSandbox)
			}
			wantURL := "https://github.com/containerd/containerd/releases/download/v" + tt.wantContainerd +
				"/containerd-" + tt.wantContainerd + "-windows-amd64.tar.gz"
			if s.ArchiveURL != wantURL {
				t.Errorf("archive %s, want %s", s.ArchiveURL, wantURL)
			}
			if !strings.Contains(string(s.Render()), "curl.exe --fail --silent --show-error --location --retry 3 --output $archive '"+wantURL+"'") {
				t.Error("script does not download the archive")
			}
			if s.CNIBinDir != DefaultCNIBinDir || s.CNIConfDir != DefaultCNIConfDir {
				t.Errorf("CNI dirs %s %s", s.CNIBinDir, s.CNIConfDir)
			}
		})
	}
}

func TestCNIDirsFromKubeletFlags(t *testing.T) {
	flags := parseFlags(t, `KUBELET_KUBEADM_ARGS="--network-plugin=cni --cni-bin-dir=d:/cni/bin,d:/more --cni-conf-dir=d:/cni/conf"`)
	s, err := Plan(Input{NodeName: "n", Kubelet: mustVersion(t, "1.23.0"), KubeletFlags: flags})
	if err != nil {
		t.Fatal(err)
	}
	if s.CNIBinDir != "d:/cni/bin" || s.CNIConfDir != "d:/cni/conf" {
		t.Errorf("CNI dirs %s %s", s.CNIBinDir, s.CNIConfDir)
	}
	s, err = Plan(Input{NodeName: "n", Kubelet: mustVersion(t, "1.23.0"), KubeletFlags: flags, CNIBinDir: "e:/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if s.CNIBinDir != "e:/bin" {
		t.Errorf("explicit CNI bin dir lost: %s", s.CNIBinDir)
	}
}

// The sandbox image: the kubelet's own pause image unless one is given; a
// given one is written to containerd and to --pod-infra-container-image.
func TestSandboxImage(t *testing.T) {
	flags := parseFlags(t, dockerFlags)
	s, err := Plan(Input{NodeName: "n", Kubelet: mustVersion(t, "1.23.0"), KubeletFlags: flags})
	if err != nil {
		t.Fatal(err)
	}
	if s.SandboxImage != "mcr.microsoft.com/oss/kubernetes/pause:3.6" {
		t.Errorf("sandbox %s, want the kubelet's", s.SandboxImage)
	}
	const mirror = "mirror.local/pause:3.6"
	s, err = Plan(Input{NodeName: "n", Kubelet: mustVersion(t, "1.23.0"), KubeletFlags: flags, SandboxImage: mirror})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(s.ContainerdConfig), mirror) {
		t.Errorf("config lacks %s:\n%s", mirror, s.ContainerdConfig)
	}
	if !strings.Contains(strings.Join(kubeadmArgs(t, s.Render()), " "), "--pod-infra-container-image="+mirror) {
		t.Errorf("kubelet args %q", s.KubeletArgs)
	}
}

func TestStepOrder(t *testing.T) {
	s, err := Plan(Input{NodeName: "n", Kubelet: mustVersion(t, "1.28.0"), KubeletFlags: []nodeconf.KubeletFlag{}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range s.Steps {
		names = append(names, st.Name)
	}
	want := "drain stop-kubelet stop-docker install-containerd configure-containerd start-containerd kubelet-flags start-kubelet cri-socket"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("steps %s\nwant %s", got, want)
	}
	script := string(s.Render())
	if !strings.Contains(script, "\n$ErrorActionPreference = 'Stop'\n") {
		t.Error("no $ErrorActionPreference = 'Stop'")
	}
	for _, l := range []string{"Set-Service -Name 'docker' -StartupType Disabled", "Stop-Service -Name 'kubelet'", "Start-Service -Name 'kubelet'", "--register-service", "Start-Service -Name 'containerd'"} {
		if !strings.Contains(script, l) {
			t.Errorf("script lacks %q", l)
		}
	}
	// An empty but known flag list: only the runtime flags are written.
	if got := strings.Join(s.KubeletArgs, " "); got != "--container-runtime-endpoint="+Endpoint {
		t.Errorf("KubeletArgs %q", got)
	}
}

func TestPlanErrors(t *testing.T) {
	k := version.MustParseGeneric("1.29.1")
	tests := []struct {
		name    string
		in      Input
		wantErr error
		wantMsg string
	}{
		{name: "cri-dockerd", in: Input{NodeName: "n", Kubelet: k, Target: TargetCRIDockerd}, wantErr: ErrUnsupportedTarget, wantMsg: "not supported"},
		{name: "other target", in: Input{NodeName: "n", Kubelet: k, Target: "cri-o"}, wantErr: ErrUnsupportedTarget},
		{name: "no node", in: Input{Kubelet: k}, wantMsg: "node name"},
		{name: "no kubelet version", in: Input{NodeName: "n"}, wantMsg: "kubelet version unknown"},
		{name: "old kubelet", in: Input{NodeName: "n", Kubelet: version.MustParseGeneric("1.19")}, wantMsg: "1.20"},
		{name: "containerd 1.5", in: Input{NodeName: "n", Kubelet: k, Containerd: version.MustParseGeneric("1.5")}, wantMsg: "containerd 1.5"},
		{name: "containerd 3", in: Input{NodeName: "n", Kubelet: k, Containerd: version.MustParseGeneric("3.0")}, wantMsg: "containerd 3.0"},
		{name: "newline in node name", in: Input{NodeName: "n\nStop-Computer", Kubelet: k}, wantMsg: "printable ASCII"},
		{name: "non-ASCII image", in: Input{NodeName: "n", Kubelet: k, SandboxImage: "pause\u2019"}, wantMsg: "printable ASCII"},
		{name: "control char in URL", in: Input{NodeName: "n", Kubelet: k, ArchiveURL: "https://x/\r\ny"}, wantMsg: "printable ASCII"},
		{name: "bad checksum", in: Input{NodeName: "n", Kubelet: k, ArchiveSHA256: "abc"}, wantMsg: "64 hex digits"},
		{name: "quote in flag value", in: Input{NodeName: "n", Kubelet: k,
			KubeletFlags: []nodeconf.KubeletFlag{{Name: "node-labels", Value: `a='b'`, HasValue: true}}}, wantMsg: "kubeadm-flags.env"},
		{name: "blank in flag value", in: Input{NodeName: "n", Kubelet: k,
			KubeletFlags: []nodeconf.KubeletFlag{{Name: "node-labels", Value: "a b", HasValue: true}}}, wantMsg: "kubeadm-flags.env"},
		{name: "flag from another variable", in: Input{NodeName: "n", Kubelet: k,
			KubeletFlags: []nodeconf.KubeletFlag{{Name: "v", Value: "2", HasValue: true, Var: "KUBELET_EXTRA_ARGS"}}}, wantMsg: "only KUBELET_KUBEADM_ARGS"},
		{name: "newline in flag value", in: Input{NodeName: "n", Kubelet: k,
			KubeletFlags: []nodeconf.KubeletFlag{{Name: "node-labels", Value: "a\nb", HasValue: true}}}, wantMsg: "printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Plan(tt.in)
			if err == nil {
				t.Fatalf("no error; script:\n%s", s.Render())
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

// Hostile but printable values end up only inside single-quoted strings
// (or the here-string), never as code.
func TestHostileValuesStayQuoted(t *testing.T) {
	const name = `n'; Remove-Item -Recurse C:\ ; '$(whoami)`
	const img = `evil/pause:1'; Stop-Computer; '`
	const url = `https://x/'+$(iex 'calc')+'{version}.tgz`
	s, err := Plan(Input{NodeName: name, Kubelet: mustVersion(t, "1.29.0"), SandboxImage: img, ArchiveURL: url,
		KubeletFlags: []nodeconf.KubeletFlag{{Name: "node-labels", Value: "x=$(calc)`;y", HasValue: true}}})
	if err != nil {
		t.Fatal(err)
	}
	script := string(s.Render())
	for _, want := range []string{psQuote(name), psQuote(img), psQuote(strings.ReplaceAll(url, "{version}", "1.7.34"))} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %s", want)
		}
	}
	for _, bad := range []string{"'" + name + "'", "'" + img + "'"} {
		if strings.Contains(script, bad) {
			t.Errorf("script contains unescaped %s", bad)
		}
	}
	// The sandbox image also reaches the TOML, escaped by go-toml.
	var m map[string]any
	if err := toml.Unmarshal(embeddedTOML(t, []byte(script)), &m); err != nil {
		t.Fatal(err)
	}
	if got := lookup(m, "plugins", "io.containerd.grpc.v1.cri", "sandbox_image"); got != img {
		t.Errorf("sandbox_image %v", got)
	}
}
