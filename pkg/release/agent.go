package release

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/unshim/unshim/pkg/agentimage"
)

// AgentImage is an agent image written by BuildAgentImage.
type AgentImage struct {
	// Ref is the name the tarball records (what `docker load` tags).
	Ref string `json:"ref"`
	// File is the tarball's path.
	File string `json:"file"`
	// Digest is the manifest's digest: the image's digest once pushed
	// (`crane push FILE REGISTRY/unshim-agent:TAG`), to pin it by.
	Digest string `json:"digest"`
	// ID is the config's digest: the IMAGE ID `docker images` shows.
	ID string `json:"id"`
}

// BuildAgentImage builds the static unshim binary for linux/arch with o's
// stamp and writes the agent image (the binary at /unshim) named ref as a
// tarball to file.
func BuildAgentImage(ctx context.Context, o Options, arch, ref, file string) (*AgentImage, error) {
	tag, err := agentimage.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	date, err := time.Parse(time.RFC3339, o.Stamp.BuildDate)
	if err != nil {
		return nil, fmt.Errorf("build date %q: %w", o.Stamp.BuildDate, err)
	}
	p := Platform{OS: "linux", Arch: arch}
	bin := filepath.Join(filepath.Dir(file), "build", p.OS+"-"+p.Arch, p.Exe())
	if err := o.BuildBinary(ctx, p, bin); err != nil {
		return nil, err
	}
	img, err := agentimage.Build(agentimage.Options{Binary: bin, OS: p.OS, Arch: p.Arch, Created: date, Labels: map[string]string{
		"org.opencontainers.image.title":    "unshim-agent",
		"org.opencontainers.image.version":  o.Stamp.Version,
		"org.opencontainers.image.revision": o.Stamp.GitCommit,
		"org.opencontainers.image.source":   "https://github.com/unshim/unshim",
	}})
	if err != nil {
		return nil, err
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	err = agentimage.Write(f, tag, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	return &AgentImage{Ref: tag.String(), File: file, Digest: digest.String(), ID: id.String()}, nil
}
