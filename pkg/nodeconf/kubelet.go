package nodeconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/yaml"
)

// KubeletFlag is one kubelet command-line flag and where it was set.
type KubeletFlag struct {
	Name  string // without dashes
	Value string
	// HasValue is false for a bare boolean flag (--foo).
	HasValue bool
	File     string
	Line     int
	// Var is the environment variable that carried it (KUBELET_KUBEADM_ARGS).
	Var string
}

// ParseKubeletFlags parses an environment file that carries kubelet flags
// (kubeadm-flags.env with KUBELET_KUBEADM_ARGS, /etc/default/kubelet or
// /etc/sysconfig/kubelet with KUBELET_EXTRA_ARGS): every variable's value is
// split into words and read as flags. file names it in errors.
func ParseKubeletFlags(file string, data []byte) ([]KubeletFlag, error) {
	vars, err := ParseEnvFile(file, data)
	if err != nil {
		return nil, err
	}
	var flags []KubeletFlag
	for _, v := range vars {
		words, err := splitWords(v.Value)
		if err != nil {
			return nil, &InputError{File: file, Key: v.Name, Err: fmt.Errorf("line %d: %v", v.Line, err)}
		}
		fs, err := ParseKubeletArgs(file, words)
		if err != nil {
			return nil, err
		}
		for i := range fs {
			fs[i].Line, fs[i].Var = v.Line, v.Name
		}
		flags = append(flags, fs...)
	}
	return flags, nil
}

// ParseKubeletArgs parses kubelet arguments. The kubelet takes no positional
// arguments, so a word that is not a flag is the value of the flag before it.
func ParseKubeletArgs(file string, args []string) ([]KubeletFlag, error) {
	var flags []KubeletFlag
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || strings.Trim(a, "-") == "" {
			return nil, &InputError{File: file, Err: fmt.Errorf("kubelet takes no arguments, got %q", clip(a))}
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "" {
			return nil, &InputError{File: file, Err: fmt.Errorf("flag without a name: %q", clip(a))}
		}
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			val, hasVal = args[i], true
		}
		flags = append(flags, KubeletFlag{Name: name, Value: val, HasValue: hasVal, File: file})
	}
	return flags, nil
}

// KubeletConfig is what unshim reads of a KubeletConfiguration file.
type KubeletConfig struct {
	File                     string
	CgroupDriver             string
	ContainerLogMaxSize      string
	ContainerLogMaxFiles     int64
	ContainerRuntimeEndpoint string
	// CgroupsPerQOS is false when the kubelet runs pods without QoS cgroups
	// (nil: the default, true).
	CgroupsPerQOS *bool
}

// ParseKubeletConfig reads the fields unshim needs from a
// KubeletConfiguration (YAML or JSON). Other fields are left alone; a field
// of the wrong type is an error naming it.
func ParseKubeletConfig(file string, data []byte) (*KubeletConfig, error) {
	kc := &KubeletConfig{File: file}
	var m map[string]json.RawMessage
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &InputError{File: file, Err: fmt.Errorf("invalid YAML: %v", err)}
	}
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, &InputError{File: file, Err: errors.New("want a KubeletConfiguration object")}
	}
	if kindRaw, ok := m["kind"]; ok {
		var k string
		if json.Unmarshal(kindRaw, &k) != nil || k != "KubeletConfiguration" {
			return nil, &InputError{File: file, Key: "kind", Err: fmt.Errorf("want KubeletConfiguration, got %s", kindRaw)}
		}
	}
	str := func(key string, dst *string) error {
		if raw, ok := m[key]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, dst); err != nil {
				return &InputError{File: file, Key: key, Err: fmt.Errorf("want a string, got %s", jsonKind(raw))}
			}
		}
		return nil
	}
	for key, dst := range map[string]*string{
		"cgroupDriver":             &kc.CgroupDriver,
		"containerLogMaxSize":      &kc.ContainerLogMaxSize,
		"containerRuntimeEndpoint": &kc.ContainerRuntimeEndpoint,
	} {
		if err := str(key, dst); err != nil {
			return nil, err
		}
	}
	if raw, ok := m["containerLogMaxFiles"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &kc.ContainerLogMaxFiles); err != nil {
			return nil, &InputError{File: file, Key: "containerLogMaxFiles", Err: fmt.Errorf("want an integer, got %s", jsonKind(raw))}
		}
	}
	if raw, ok := m["cgroupsPerQOS"]; ok && string(raw) != "null" {
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, &InputError{File: file, Key: "cgroupsPerQOS", Err: fmt.Errorf("want true or false, got %s", jsonKind(raw))}
		}
		kc.CgroupsPerQOS = &b
	}
	if kc.CgroupDriver != "" && kc.CgroupDriver != "systemd" && kc.CgroupDriver != "cgroupfs" {
		return nil, &InputError{File: file, Key: "cgroupDriver", Err: fmt.Errorf("want systemd or cgroupfs, got %q", kc.CgroupDriver)}
	}
	return kc, nil
}

// PauseImage returns the pause image kubeadm of the kubelet's minor version
// uses (cmd/kubeadm/app/constants PauseVersion).
func PauseImage(kubelet *version.Version) string {
	tag := "3.10.1"
	switch {
	case !kubelet.AtLeast(version.MajorMinor(1, 22)):
		tag = "3.4.1"
	case !kubelet.AtLeast(version.MajorMinor(1, 23)):
		tag = "3.5"
	case !kubelet.AtLeast(version.MajorMinor(1, 24)):
		tag = "3.6"
	case !kubelet.AtLeast(version.MajorMinor(1, 25)):
		tag = "3.7"
	case !kubelet.AtLeast(version.MajorMinor(1, 26)):
		tag = "3.8"
	case !kubelet.AtLeast(version.MajorMinor(1, 31)):
		tag = "3.9"
	case !kubelet.AtLeast(version.MajorMinor(1, 34)):
		tag = "3.10"
	}
	return "registry.k8s.io/pause:" + tag
}

// RemovedFlag is a kubelet flag some kubelet version no longer accepts.
type RemovedFlag struct {
	Name    string
	Removed *version.Version
	Reason  string
}

// removedKubeletFlags lists the flags that make a kubelet exit with
// "unknown flag" from the given version on.
var removedKubeletFlags = []RemovedFlag{
	{"network-plugin", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24 (kubernetes#106907); CNI is configured in containerd"},
	{"cni-conf-dir", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24; set containerd's CNI conf_dir instead"},
	{"cni-bin-dir", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24; set containerd's CNI bin_dir instead"},
	{"cni-cache-dir", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24"},
	{"network-plugin-mtu", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24"},
	{"docker-endpoint", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24"},
	{"image-pull-progress-deadline", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24"},
	{"experimental-dockershim-root-directory", version.MajorMinor(1, 24), "dockershim-only flag, removed in kubelet 1.24"},
	{"docker-disable-shared-pid", version.MajorMinor(1, 24), "dockershim-only flag, removed"},
	{"redirect-container-streaming", version.MajorMinor(1, 20), "removed in kubelet 1.20"},
	{"container-runtime", version.MajorMinor(1, 27), "removed in kubelet 1.27 (kubelet exits: unknown flag); containerRuntimeEndpoint is enough"},
	{"pod-infra-container-image", version.MajorMinor(1, 35), "removed in kubelet 1.35 (kubernetes#133779); the sandbox image is set in containerd"},
}

// RemovedKubeletFlags returns the removed-flag table, oldest removals first.
func RemovedKubeletFlags() []RemovedFlag { return append([]RemovedFlag(nil), removedKubeletFlags...) }

// DockershimFlags are the flags that only meant something to dockershim:
// with containerd they go, whatever the kubelet version.
var DockershimFlags = map[string]bool{
	"network-plugin": true, "cni-conf-dir": true, "cni-bin-dir": true, "cni-cache-dir": true,
	"network-plugin-mtu": true, "docker-endpoint": true, "image-pull-progress-deadline": true,
	"experimental-dockershim-root-directory": true, "docker-disable-shared-pid": true,
}
