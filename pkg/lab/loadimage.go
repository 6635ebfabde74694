package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadImage makes a single-layer image named ref from host files and loads
// it into the node's Docker (no registry is reachable): files maps a path in
// the image ("unshim") to a file on the host, which the image holds with mode
// 0755. entrypoint may be nil.
func (n *Node) LoadImage(ctx context.Context, ref string, entrypoint []string, files map[string]string) error {
	var layer []imageFile
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		layer = append(layer, imageFile{Path: strings.TrimPrefix(dst, "/"), Mode: 0o755, Data: data})
	}
	sum := sha256.Sum256([]byte(ref))
	name := "image-" + hex.EncodeToString(sum[:6]) + ".tar"
	host := filepath.Join(n.Root, nodeImagesDir, name)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return err
	}
	f, err := os.Create(host)
	if err != nil {
		return err
	}
	err = writeDockerArchive(f, ref, imageConfig{Entrypoint: entrypoint}, layer)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write image %s: %w", ref, err)
	}
	if _, err := n.Run(ctx, "docker", "load", "--input", filepath.Join(nodeImagesDir, name)); err != nil {
		return fmt.Errorf("load image %s: %w", ref, err)
	}
	return nil
}
