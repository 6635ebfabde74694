// Package agentimage builds the image the `--via pod` agent runs: the static
// unshim binary at /unshim in one layer on an empty base, assembled with
// go-containerregistry as ko assembles its images (no Docker daemon, no
// Dockerfile), and written as one tarball that both `docker load` and
// `ctr images import` accept.
package agentimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/unshim/unshim/pkg/podagent"
)

// DefaultRef is the name the image is written under when none is given.
const DefaultRef = "unshim-agent:dev"

// Options say what goes into the image.
type Options struct {
	// Binary is the path of a static unshim binary built for OS/Arch.
	Binary string
	// OS and Arch are the image's platform (GOOS and GOARCH values).
	OS, Arch string
	// Created is the image's creation time and the layer's file time; the
	// zero value gives 1970-01-01, so the same binary always gives the same
	// digest (set it from SOURCE_DATE_EPOCH for a dated image).
	Created time.Time
	// Labels are added to the image config (org.opencontainers.image.* ...).
	Labels map[string]string
}

// Build returns the image: one gzip layer holding the binary at /unshim,
// mode 0755, owned by root, with /unshim as entrypoint. The manifest has
// Docker's schema 2 media types, the ones go-containerregistry's tarball
// reader gives an image read back from the tarball, so the digest Build's
// image has is the digest the image has once pushed (`crane push FILE REF`).
func Build(o Options) (v1.Image, error) {
	if o.OS == "" || o.Arch == "" {
		return nil, fmt.Errorf("agent image of %s: no platform given", o.Binary)
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("agent image: %w", err)
	}
	created := o.Created.UTC()
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Name: podagent.BinaryPath[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)),
		ModTime: created, Uname: "root", Gname: "root", Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("agent image layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("agent image layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("agent image layer: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("agent image layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: created}, CreatedBy: "unshim agent-image: " + podagent.BinaryPath, Comment: "the unshim binary",
	}})
	if err != nil {
		return nil, fmt.Errorf("agent image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("agent image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = o.OS, o.Arch
	if o.Arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = v1.Time{Time: created}
	cf.Config.Entrypoint = []string{podagent.BinaryPath}
	cf.Config.Labels = o.Labels
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("agent image config: %w", err)
	}
	return img, nil
}

// ParseRef checks an image name as the tarball records it (NAME:TAG; a name
// without a tag gets :latest, as Docker does).
func ParseRef(ref string) (name.Tag, error) {
	t, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image name %q: %w", ref, err)
	}
	return t, nil
}

// Write writes img under ref into w as a docker-archive: manifest.json, the
// config and the gzip layer (go-containerregistry's tarball.Write), the
// format `docker load` reads and `ctr images import` takes too.
func Write(w io.Writer, ref name.Tag, img v1.Image) error {
	if err := tarball.Write(ref, img, w); err != nil {
		return fmt.Errorf("write image %s: %w", ref, err)
	}
	return nil
}
