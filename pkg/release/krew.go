package release

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// KrewPluginName is the plugin's name in krew's index: `kubectl krew
// install unshim` installs kubectl-unshim.
const KrewPluginName = "unshim"

// The krew manifest, in the shape krew's index.Plugin reads
// (sigs.k8s.io/krew pkg/index, apiVersion
// krew.googlecontainertools.github.com/v1alpha2).
type krewPlugin struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   krewMetadata `json:"metadata"`
	Spec       krewSpec     `json:"spec"`
}

type krewMetadata struct {
	Name string `json:"name"`
}

type krewSpec struct {
	Version          string         `json:"version"`
	Homepage         string         `json:"homepage"`
	ShortDescription string         `json:"shortDescription"`
	Description      string         `json:"description"`
	Caveats          string         `json:"caveats,omitempty"`
	Platforms        []krewPlatform `json:"platforms"`
}

type krewPlatform struct {
	Selector krewSelector `json:"selector"`
	URI      string       `json:"uri"`
	SHA256   string       `json:"sha256"`
	Bin      string       `json:"bin"`
}

type krewSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// KrewManifest returns the krew plugin manifest for the archives of
// version, each downloaded from baseURI/FILE.
func KrewManifest(version, baseURI string, archives []Artifact) ([]byte, error) {
	p := krewPlugin{
		APIVersion: "krew.googlecontainertools.github.com/v1alpha2",
		Kind:       "Plugin",
		Metadata:   krewMetadata{Name: KrewPluginName},
		Spec: krewSpec{
			Version:          version,
			Homepage:         "https://github.com/unshim/unshim",
			ShortDescription: "Move nodes off Docker Engine onto containerd",
			Description: `Finds which nodes still run Docker (dockershim or cri-dockerd) and what in the
cluster depends on Docker, converts a node's Docker setup into containerd's,
and switches nodes to containerd in phases with dry-run, rollback and resume.`,
			Caveats: `Switching a node changes its services and files: read
"unshim migrate node --help" and try --dry-run first.
Shell completion for "kubectl unshim" (kubectl 1.26+): link the plugin as
kubectl_complete-unshim, e.g.
  ln -s kubectl-unshim ~/.krew/bin/kubectl_complete-unshim`,
		},
	}
	for _, a := range archives {
		if len(a.SHA256) != 64 {
			return nil, fmt.Errorf("archive %s: sha256 %q", a.File, a.SHA256)
		}
		p.Spec.Platforms = append(p.Spec.Platforms, krewPlatform{
			Selector: krewSelector{MatchLabels: map[string]string{"os": a.Platform.OS, "arch": a.Platform.Arch}},
			URI:      strings.TrimSuffix(baseURI, "/") + "/" + a.File,
			SHA256:   a.SHA256,
			Bin:      a.Platform.Exe(),
		})
	}
	out, err := yaml.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("krew manifest: %w", err)
	}
	return out, nil
}
