package nodecheck

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/unshim/unshim/pkg/check"
)

// dockerAPI is the part of Docker's API the node check uses.
type dockerAPI struct {
	c *client.Client
}

type dockerInfo struct {
	CgroupDriver  string
	DockerRootDir string
	ServerVersion string
}

func newDockerAPI(host string) (*dockerAPI, error) {
	c, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation(), client.WithTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	return &dockerAPI{c: c}, nil
}

func (d *dockerAPI) Close() { d.c.Close() }

func (d *dockerAPI) info(ctx context.Context) (*dockerInfo, error) {
	i, err := d.c.Info(ctx)
	if err != nil {
		return nil, err
	}
	return &dockerInfo{CgroupDriver: i.CgroupDriver, DockerRootDir: i.DockerRootDir, ServerVersion: i.ServerVersion}, nil
}

// images reports the images no registry can give back (no repo digest: built,
// imported or loaded locally) and the Kubernetes pods whose containers use them.
func (c *checker) images(ctx context.Context, d *dockerAPI) error {
	imgs, err := d.c.ImageList(ctx, image.ListOptions{All: false})
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	ctrs, err := d.c.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	c.res.Scanned["Image"] = len(imgs)
	pods := map[string]map[string]string{} // image ID -> pod -> state
	for _, ct := range ctrs {
		name, ns := ct.Labels["io.kubernetes.pod.name"], ct.Labels["io.kubernetes.pod.namespace"]
		if name == "" {
			continue
		}
		if pods[ct.ImageID] == nil {
			pods[ct.ImageID] = map[string]string{}
		}
		pod := ns + "/" + name
		if prev := pods[ct.ImageID][pod]; prev != "running" {
			pods[ct.ImageID][pod] = ct.State
		}
	}
	for _, img := range imgs {
		if len(img.RepoDigests) > 0 {
			continue
		}
		ref := strings.TrimPrefix(img.ID, "sha256:")
		if len(ref) > 12 {
			ref = ref[:12]
		}
		var tags []string
		for _, t := range img.RepoTags {
			if t != "<none>:<none>" {
				tags = append(tags, t)
			}
		}
		if len(tags) > 0 {
			ref = tags[0]
		}
		var running, other []string
		for _, p := range sortedKeys(pods[img.ID]) {
			if pods[img.ID][p] == "running" {
				running = append(running, p)
			} else {
				other = append(other, p+" ("+pods[img.ID][p]+")")
			}
		}
		sort.Strings(running)
		sev := check.SeverityMedium
		msg := "image has no repo digest: built, imported or loaded on this node; containerd cannot pull it back"
		if len(running) > 0 {
			sev = check.SeverityHigh
			msg += "; used by running pods " + strings.Join(running, ", ")
		}
		if len(other) > 0 {
			msg += "; used by pod containers " + strings.Join(other, ", ")
		}
		c.add(check.Finding{Object: check.ObjectRef{Kind: "Image", Name: ref}, Rule: RuleImageNoDigest, Severity: sev,
			Message: msg, Evidence: img.ID, Pods: len(running)})
	}
	return nil
}
