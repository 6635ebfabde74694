package nodeplan

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/nodeconf"
)

const daemonJSON = `{"exec-opts":["native.cgroupdriver=systemd"],"log-opts":{"max-size":"10m","max-file":"3"},"registry-mirrors":["https://mirror.example.com"]}`

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# kept as it is
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
`

// The version table of shared/research/migration.md 1.3, one row per
// kubelet version a Docker node can have: what the flags file holds before,
// and what the switch must leave in it.
func TestPlanFollowsTheKubeletVersionTable(t *testing.T) {
	cases := []struct {
		kubelet  string
		flags    string // KUBELET_KUBEADM_ARGS before
		instance bool   // kubeadm 1.32+ instance-config.yaml present
		target   string
		want     []string // flags after, in order
		annotate bool
	}{
		{
			kubelet: "1.23.17", target: Containerd, annotate: true,
			flags: "--container-runtime=docker --network-plugin=cni --pod-infra-container-image=k8s.gcr.io/pause:3.6",
			// dockershim flags go; remote runtime and the endpoint are flags before 1.24.
			want: []string{"--container-runtime=remote", "--pod-infra-container-image=k8s.gcr.io/pause:3.6", "--container-runtime-endpoint=unix:///run/containerd/containerd.sock"},
		},
		{
			kubelet: "1.23.17", target: CRIDockerd, annotate: true,
			flags: "--network-plugin=cni --pod-infra-container-image=k8s.gcr.io/pause:3.6",
			want:  []string{"--pod-infra-container-image=k8s.gcr.io/pause:3.6", "--container-runtime-endpoint=unix:///var/run/cri-dockerd.sock", "--container-runtime=remote"},
		},
		{
			// 1.24-1.26 with Docker means cri-dockerd; --container-runtime=remote is still accepted and kept.
			kubelet: "1.26.15", target: Containerd, annotate: true,
			flags: "--container-runtime=remote --container-runtime-endpoint=unix:///var/run/cri-dockerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9",
			want:  []string{"--container-runtime=remote", "--container-runtime-endpoint=unix:///run/containerd/containerd.sock", "--pod-infra-container-image=registry.k8s.io/pause:3.9"},
		},
		{
			// 1.27+: --container-runtime is gone (the kubelet would exit).
			kubelet: "1.29.10", target: Containerd, annotate: true,
			flags: "--container-runtime=remote --container-runtime-endpoint=unix:///var/run/cri-dockerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9",
			want:  []string{"--container-runtime-endpoint=unix:///run/containerd/containerd.sock", "--pod-infra-container-image=registry.k8s.io/pause:3.9"},
		},
		{
			// 1.35: --pod-infra-container-image is gone too; kubeadm keeps the socket in instance-config.yaml.
			kubelet: "1.35.0", target: Containerd, instance: true,
			flags: "--pod-infra-container-image=registry.k8s.io/pause:3.10.1",
			want:  []string{},
		},
	}
	for _, c := range cases {
		t.Run(c.kubelet+"/"+c.target, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{
				"/etc/docker/daemon.json":      daemonJSON,
				KubeadmFlagsFile:               "KUBELET_KUBEADM_ARGS=\"" + c.flags + "\"\n",
				"/var/lib/kubelet/config.yaml": kubeletConfig,
				"/etc/cni/net.d/10-x.conflist": "{}",
				"/opt/cni/bin/bridge":          "",
			}
			if c.instance {
				files[InstanceConfigFile] = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///var/run/cri-dockerd.sock\n"
			}
			testutil.WriteTree(t, root, files, 0o644)
			kv := version.MustParseGeneric(c.kubelet)
			old := "/var/run/dockershim.sock"
			if kv.AtLeast(version.MajorMinor(1, 24)) {
				old = "unix:///var/run/cri-dockerd.sock"
			}
			p, err := Build(Input{Root: root, Target: c.target, KubeletVersion: kv, ContainerdVersion: version.MustParseGeneric("1.7.20"), CRISocket: old})
			if err != nil {
				t.Fatal(err)
			}
			var flagsAfter string
			var instanceAfter string
			for _, f := range p.Kubelet {
				switch f.Path {
				case KubeadmFlagsFile:
					flagsAfter = string(f.New)
				case InstanceConfigFile:
					instanceAfter = string(f.New)
				}
			}
			if flagsAfter == "" && len(c.want) > 0 {
				t.Fatalf("no change planned for %s; plan: %+v", KubeadmFlagsFile, p.Paths())
			}
			if flagsAfter != "" {
				vars, err := nodeconf.ParseKubeletFlags(KubeadmFlagsFile, []byte(flagsAfter))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range vars {
					got = append(got, "--"+f.Name+"="+f.Value)
				}
				if strings.Join(got, " ") != strings.Join(c.want, " ") {
					t.Errorf("flags after:\n got  %s\n want %s", strings.Join(got, " "), strings.Join(c.want, " "))
				}
			}
			if c.instance {
				if !strings.Contains(instanceAfter, "containerRuntimeEndpoint: "+p.Endpoint) {
					t.Errorf("instance-config.yaml after: %q; want the endpoint %s", instanceAfter, p.Endpoint)
				}
				if p.Annotation != "" {
					t.Errorf("annotation planned (%q) though kubeadm reads instance-config.yaml", p.Annotation)
				}
			}
			if c.annotate && p.Annotation != p.Endpoint {
				t.Errorf("annotation = %q, want %s", p.Annotation, p.Endpoint)
			}
			if c.target == CRIDockerd && len(p.Containerd) > 0 {
				t.Errorf("cri-dockerd plan writes containerd files: %v", p.Paths())
			}
			if c.target == Containerd {
				var conf string
				for _, f := range p.Containerd {
					if f.Path == "/etc/containerd/config.toml" {
						conf = string(f.New)
					}
				}
				if conf == "" {
					t.Fatalf("no config.toml planned: %v", p.Paths())
				}
				want := nodeconf.PauseImage(kv)
				if !kv.AtLeast(version.MajorMinor(1, 35)) && strings.Contains(c.flags, "pod-infra") {
					want = strings.SplitN(strings.SplitN(c.flags, "pod-infra-container-image=", 2)[1], " ", 2)[0]
				}
				if p.SandboxImage != want || !strings.Contains(conf, want) {
					t.Errorf("sandbox image %q, want %q in config.toml", p.SandboxImage, want)
				}
				// Docker's log-opts move to the kubelet's configuration, comments kept.
				var kc string
				for _, f := range p.Kubelet {
					if f.Path == "/var/lib/kubelet/config.yaml" {
						kc = string(f.New)
					}
				}
				if !strings.Contains(kc, "containerLogMaxSize: 10M") || !strings.Contains(kc, "containerLogMaxFiles: 3") || !strings.Contains(kc, "# kept as it is") {
					t.Errorf("config.yaml after:\n%s", kc)
				}
			}
		})
	}
}

func TestEditFlagsVarKeepsOtherLines(t *testing.T) {
	in := "# written by kubeadm\nFOO=bar\nKUBELET_KUBEADM_ARGS=\"--a=1 \\\n  --network-plugin=cni --b=2\"\n"
	out, err := nodeconf.EditFlagsVar("f", []byte(in), "KUBELET_KUBEADM_ARGS", []nodeconf.FlagEdit{
		{Name: "network-plugin", Remove: true}, {Name: "b", Value: "3"}, {Name: "c", Value: "4"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "# written by kubeadm\nFOO=bar\nKUBELET_KUBEADM_ARGS=\"--a=1 --b=3 --c=4\"\n"
	if string(out) != want {
		t.Errorf("got %q\nwant %q", out, want)
	}
	if _, err := nodeconf.EditFlagsVar("f", []byte(in), "KUBELET_KUBEADM_ARGS", []nodeconf.FlagEdit{{Name: "x", Value: "a b"}}); err == nil {
		t.Error("a value with a space was accepted")
	}
	if _, err := nodeconf.EditFlagsVar("f", []byte("KUBELET_KUBEADM_ARGS=\"--a=1\n"), "KUBELET_KUBEADM_ARGS", nil); err == nil {
		t.Error("an unterminated quote was accepted")
	}
}

func TestUnknownTargetAndBadInputFail(t *testing.T) {
	root := t.TempDir()
	if _, err := Build(Input{Root: root, Target: "crio"}); err == nil {
		t.Error("target crio accepted")
	}
	testutil.WriteTree(t, root, map[string]string{"/etc/docker/daemon.json": "{bad"}, 0o644)
	_, err := Build(Input{Root: root, Target: Containerd, KubeletVersion: version.MustParseGeneric("1.23"), ContainerdVersion: version.MustParseGeneric("1.6")})
	if err == nil || !strings.Contains(err.Error(), "daemon.json") {
		t.Errorf("malformed daemon.json: %v", err)
	}
}

// The kubelet's config keeps its bytes: only the changed fields' lines move.
func TestSetYAMLFieldsEditsLines(t *testing.T) {
	in := "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n# kept\ncgroupDriver: cgroupfs # old\nclusterDNS:\n- 10.96.0.10\n"
	out, err := nodeconf.SetYAMLFields("c", []byte(in), [][2]any{{"cgroupDriver", "systemd"}, {"containerLogMaxSize", "10M"}, {"containerLogMaxFiles", 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n# kept\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\ncontainerLogMaxSize: 10M\ncontainerLogMaxFiles: 3\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	// A field whose value is a block is re-encoded, keeping the others.
	in2 := "kind: KubeletConfiguration\ncgroupDriver:\n  systemd\nclusterDNS:\n- 10.96.0.10\n"
	out, err = nodeconf.SetYAMLFields("c", []byte(in2), [][2]any{{"cgroupDriver", "cgroupfs"}})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := nodeconf.ParseKubeletConfig("c", out)
	if err != nil || kc.CgroupDriver != "cgroupfs" || !strings.Contains(string(out), "10.96.0.10") {
		t.Errorf("re-encoded: %q, %v", out, err)
	}
	if _, err := nodeconf.SetYAMLFields("c", []byte("a: [\n"), [][2]any{{"x", 1}}); err == nil {
		t.Error("malformed YAML accepted")
	}
}
