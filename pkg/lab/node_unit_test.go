package lab

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestCapBit(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    bool
		wantErr bool
	}{
		{name: "sandbox without CAP_SYS_RESOURCE", status: "Name:\tx\nCapBnd:\t000001fffeffffff\n", want: false},
		{name: "full set", status: "CapBnd:\t000001ffffffffff\n", want: true},
		{name: "no field", status: "Name:\tx\n", wantErr: true},
		{name: "garbage", status: "CapBnd:\tzz\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := capBit(tt.status, "CapBnd", capSysResource)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("capBit = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b/c`); got != "/a b/c" {
		t.Errorf("unescapeMount = %q", got)
	}
}

func TestNodeConfig(t *testing.T) {
	tests := []struct {
		name        string
		cfg         nodeConfig
		wantRuntime string
	}{
		{name: "with wrapper", cfg: nodeConfig{Name: "n1", NodeIP: "127.0.0.1", KubeletPort: 1, HealthzPort: 2, PodCIDR: "10.200.1.0/24", RuntimeWrapper: true}, wantRuntime: RuntimeWrapperName},
		{name: "plain runc", cfg: nodeConfig{Name: "n1", NodeIP: "127.0.0.1", KubeletPort: 1, HealthzPort: 2, PodCIDR: "10.200.1.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := string(tt.cfg.kubeadmFlags())
			for _, want := range []string{"KUBELET_KUBEADM_ARGS=\"", "--container-runtime=docker", "--network-plugin=cni", "--pod-infra-container-image=" + PauseImage} {
				if !strings.Contains(flags, want) {
					t.Errorf("kubeadm-flags.env %q lacks %q", flags, want)
				}
			}
			raw, err := tt.cfg.kubeletConfig()
			if err != nil {
				t.Fatal(err)
			}
			var kc map[string]any
			if err := yaml.Unmarshal(raw, &kc); err != nil {
				t.Fatal(err)
			}
			if kc["kind"] != "KubeletConfiguration" || kc["cgroupDriver"] != "systemd" || kc["cgroupsPerQOS"] != false {
				t.Errorf("config.yaml: %s", raw)
			}
			raw, err = tt.cfg.daemonJSON()
			if err != nil {
				t.Fatal(err)
			}
			var dj map[string]any
			if err := json.Unmarshal(raw, &dj); err != nil {
				t.Fatal(err)
			}
			got, _ := dj["default-runtime"].(string)
			if got != tt.wantRuntime {
				t.Errorf("default-runtime = %q, want %q", got, tt.wantRuntime)
			}
			if tt.wantRuntime != "" {
				rt, _ := dj["runtimes"].(map[string]any)[tt.wantRuntime].(map[string]any)
				if rt["path"] != RuntimeWrapperPath {
					t.Errorf("runtimes = %v", dj["runtimes"])
				}
			}
		})
	}
}

func TestWriteDockerArchive(t *testing.T) {
	var buf bytes.Buffer
	files := []imageFile{{Path: "bin/busybox", Mode: 0o755, Data: []byte("bb")}, {Path: "bin/sh", Link: "busybox"}}
	if err := writeDockerArchive(&buf, "busybox:test", imageConfig{Cmd: []string{"sh"}}, files); err != nil {
		t.Fatal(err)
	}
	entries := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		entries[h.Name] = data
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || manifest[0].RepoTags[0] != "busybox:test" || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest = %+v", manifest)
	}
	if _, ok := entries[manifest[0].Config]; !ok {
		t.Errorf("config %s missing", manifest[0].Config)
	}
	layer := tar.NewReader(bytes.NewReader(entries[manifest[0].Layers[0]]))
	var names []string
	for {
		h, err := layer.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got, want := strings.Join(names, ","), "bin/,bin/busybox,bin/sh"; got != want {
		t.Errorf("layer = %s, want %s", got, want)
	}
}

func TestProcStartTime(t *testing.T) {
	st, err := procStartTime(os.Getpid())
	if err != nil || st == 0 {
		t.Fatalf("procStartTime(self) = %d, %v", st, err)
	}
	if _, err := procStartTime(0); err == nil {
		t.Error("procStartTime(0) succeeded")
	}
	// This process's children (none) are not a container's init.
	if pid := containerInit(os.Getpid()); pid != 0 {
		t.Errorf("containerInit(self) = %d", pid)
	}
}

func TestFreePodCIDR(t *testing.T) {
	cidr, err := freePodCIDR()
	if err != nil {
		t.Fatal(err)
	}
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if ones, _ := ipnet.Mask.Size(); ones != 24 || !ip.Equal(ipnet.IP) {
		t.Errorf("freePodCIDR = %s, want a /24 network", cidr)
	}
	if _, lab, _ := net.ParseCIDR("10.200.0.0/13"); !lab.Contains(ip) {
		t.Errorf("freePodCIDR = %s, outside 10.200.0.0/13", cidr)
	}
}
