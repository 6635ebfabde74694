package winplan

import (
	"bytes"
	"fmt"

	"github.com/pelletier/go-toml/v2"

	"k8s.io/apimachinery/pkg/util/version"
)

// containerdConfig renders the containerd config.toml for a Windows node:
// only what differs from containerd's Windows defaults (sandbox image, CNI
// directories), in the schema of the containerd version. containerd fills in
// the rest (the runhcs-wcow-process runtime, root and state under
// C:\ProgramData\containerd, the npipe address) from its built-in defaults.
//
// containerd 1.x reads schema version 2, where the CRI plugin is
// io.containerd.grpc.v1.cri with sandbox_image. containerd 2.x reads version
// 3, where it is split into io.containerd.cri.v1.images (pinned_images.sandbox)
// and io.containerd.cri.v1.runtime (cni); from 2.1 the CNI plugin
// directories are a list, bin_dirs. containerd 2.3 and later write version 4
// but still read version 3.
func containerdConfig(containerd *version.Version, sandbox, binDir, confDir string) ([]byte, error) {
	var cfg map[string]any
	if containerd.Major() < 2 {
		cfg = map[string]any{
			"version": 2,
			"plugins": map[string]any{
				"io.containerd.grpc.v1.cri": map[string]any{
					"sandbox_image": sandbox,
					"cni": map[string]any{
						"bin_dir":  binDir,
						"conf_dir": confDir,
					},
				},
			},
		}
	} else {
		cni := map[string]any{"conf_dir": confDir}
		if containerd.AtLeast(version.MajorMinor(2, 1)) {
			cni["bin_dirs"] = []string{binDir}
		} else {
			cni["bin_dir"] = binDir
		}
		cfg = map[string]any{
			"version": 3,
			"plugins": map[string]any{
				"io.containerd.cri.v1.images": map[string]any{
					"pinned_images": map[string]any{"sandbox": sandbox},
				},
				"io.containerd.cri.v1.runtime": map[string]any{"cni": cni},
			},
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# containerd %d.%d config for a Windows Kubernetes node, written by unshim.\n", containerd.Major(), containerd.Minor())
	b.WriteString("# Settings not listed here keep containerd's Windows defaults (containerd.exe config default).\n")
	enc := toml.NewEncoder(&b)
	enc.SetIndentTables(true)
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("render containerd config: %w", err)
	}
	return b.Bytes(), nil
}
