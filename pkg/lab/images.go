package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// PauseImage is the pod sandbox image of the lab's nodes, named as kubeadm
// 1.23 names it. No registry is reachable: the image is a static Go binary
// loaded into the node's Docker.
const PauseImage = "k8s.gcr.io/pause:3.6"

// BusyboxImage is a workload image every lab node has: Debian's busybox-static.
const BusyboxImage = "busybox:1.35"

// labbin holds the sources of the small programs the lab builds for its nodes.
//
//go:embed labbin/pause/main.go labbin/runcwrap/main.go labbin/cridockerd/main.go
var labbin embed.FS

// ensureHelper builds the program labbin/NAME (pure Go, static) into the
// cache, keyed by its source, and returns the binary's path.
func ensureHelper(ctx context.Context, name string) (string, error) {
	src, err := labbin.ReadFile("labbin/" + name + "/main.go")
	if err != nil {
		return "", fmt.Errorf("read source of %s: %w", name, err)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(src)
	out := filepath.Join(cache, "bin", "unshim-lab-"+name+"-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	dir, err := os.MkdirTemp(filepath.Join(cache), "build-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("create build directory for %s: %w", name, err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module unshimlab"+name+"\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, name)
	if _, err := goCmd(ctx, dir, []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, "."); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	// Copy next to out under a name of this process, then rename: concurrent builders never collide.
	part := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	if err := copyFile(tmp, part, 0o755); err != nil {
		return "", err
	}
	return out, os.Rename(part, out)
}

// imageFile is one file of an image layer: a regular file (Data) or a symlink (Link).
type imageFile struct {
	Path string
	Mode int64
	Data []byte
	Link string
}

// imageConfig is what an image runs.
type imageConfig struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
}

// writeDockerArchive writes a single-layer image named ref in the format of
// `docker save`, which both `docker load` and `ctr images import` read.
func writeDockerArchive(w io.Writer, ref string, cfg imageConfig, files []imageFile) error {
	layer, err := layerTar(files)
	if err != nil {
		return err
	}
	layerSum := sha256.Sum256(layer)
	diffID := "sha256:" + hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Unix(0, 0).UTC(),
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]any{{"created": time.Unix(0, 0).UTC(), "created_by": "unshim lab"}},
	})
	if err != nil {
		return err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	layerName := hex.EncodeToString(layerSum[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": configName, "RepoTags": []string{ref}, "Layers": []string{layerName},
	}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
	}{{configName, config}, {layerName, layer}, {"manifest.json", manifest}} {
		if dir := filepath.Dir(f.name); dir != "." {
			if err := tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// layerTar returns a tar of files, with their parent directories.
func layerTar(files []imageFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		var parents []string
		for d := filepath.Dir(f.Path); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
				return nil, err
			}
		}
		h := &tar.Header{Name: f.Path, Mode: f.Mode, ModTime: time.Unix(0, 0)}
		if f.Link != "" {
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// busyboxApplets are the commands the busybox image links to busybox.
var busyboxApplets = []string{
	"cat", "date", "echo", "env", "false", "grep", "head", "hostname", "id", "ls", "mkdir",
	"nc", "ping", "ps", "rm", "sh", "sleep", "tail", "test", "top", "touch", "true", "uname", "wget",
}

// writeNodeImages writes the pause and busybox image archives into dir and
// returns their paths. busybox is the node's own /bin/busybox (busybox-static).
func writeNodeImages(ctx context.Context, root, dir string) ([]string, error) {
	pause, err := ensureHelper(ctx, "pause")
	if err != nil {
		return nil, err
	}
	pauseBin, err := os.ReadFile(pause)
	if err != nil {
		return nil, err
	}
	busybox, err := os.ReadFile(filepath.Join(root, "bin", "busybox"))
	if err != nil {
		return nil, fmt.Errorf("read busybox of the node root (is busybox-static installed?): %w", err)
	}
	bbFiles := []imageFile{{Path: "bin/busybox", Mode: 0o755, Data: busybox}}
	for _, a := range busyboxApplets {
		bbFiles = append(bbFiles, imageFile{Path: "bin/" + a, Link: "busybox"})
	}
	images := []struct {
		file, ref string
		cfg       imageConfig
		files     []imageFile
	}{
		{"pause.tar", PauseImage, imageConfig{Entrypoint: []string{"/pause"}}, []imageFile{{Path: "pause", Mode: 0o755, Data: pauseBin}}},
		{"busybox.tar", BusyboxImage, imageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}, bbFiles},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, im := range images {
		p := filepath.Join(dir, im.file)
		f, err := os.Create(p)
		if err != nil {
			return nil, err
		}
		err = writeDockerArchive(f, im.ref, im.cfg, im.files)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write image %s: %w", im.ref, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// copyFile copies src to dst with mode perm.
func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}
