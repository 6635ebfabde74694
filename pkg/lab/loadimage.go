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

// LoadArchive loads an image tarball from the host (a docker-archive, as
// `make agent-image` writes) into the node's Docker (`docker load`) and,
// with containerd too, into its containerd's k8s.io namespace, the one the
// kubelet's CRI reads (`ctr images import`).
func (n *Node) LoadArchive(ctx context.Context, hostPath string, containerd bool) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("load image archive: %w", err)
	}
	sum := sha256.Sum256(data)
	inNode := filepath.Join(nodeImagesDir, "archive-"+hex.EncodeToString(sum[:6])+".tar")
	if err := os.MkdirAll(filepath.Join(n.Root, nodeImagesDir), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.Root, inNode), data, 0o644); err != nil {
		return fmt.Errorf("copy %s to node %s: %w", filepath.Base(hostPath), n.Name, err)
	}
	if _, err := n.Run(ctx, "docker", "load", "--input", inNode); err != nil {
		return fmt.Errorf("docker load %s on node %s: %w", filepath.Base(hostPath), n.Name, err)
	}
	if containerd {
		if _, err := n.Run(ctx, "ctr", "--namespace", "k8s.io", "images", "import", inNode); err != nil {
			return fmt.Errorf("ctr images import %s on node %s: %w", filepath.Base(hostPath), n.Name, err)
		}
	}
	return nil
}
