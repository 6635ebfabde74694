// Package dockerpurge removes Docker Engine from a node that has been
// switched to containerd: the packages (never containerd or runc), and on
// request Docker's data and configuration, after backing the configuration
// up. It refuses a node that still runs Docker or whose switch did not finish.
package dockerpurge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/pelletier/go-toml/v2"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodepkg"
	"github.com/unshim/unshim/pkg/transport"
)

// DockerPackages are the packages that make up Docker Engine on Debian,
// Ubuntu and RHEL-like systems. containerd, containerd.io and runc are not
// among them: the node runs on them now.
var DockerPackages = []string{
	"docker.io", "docker-ce", "docker-ce-cli", "docker-ce-rootless-extras", "docker-buildx-plugin",
	"docker-compose-plugin", "docker-engine", "moby-engine", "moby-cli",
}

// keepPackages are never removed, and are marked manually installed so that
// a later `apt-get autoremove` does not take them with Docker.
var keepPackages = []string{"containerd", "containerd.io", "runc"}

// DataPaths are removed with RemoveData (the configuration is backed up first).
var DataPaths = []string{"/var/lib/docker", "/etc/docker"}

// Options say which node and how.
type Options struct {
	Node      string
	Client    kubernetes.Interface
	Transport transport.Transport
	Logger    log.Logger
	// RemoveData also deletes /var/lib/docker (images, containers, volumes)
	// and /etc/docker (backed up to the journal's backup directory first).
	RemoveData bool
}

// Step is one action of the purge.
type Step struct {
	What string
	Argv []string
}

// Plan checks that the node may be purged and returns what Run would do.
func Plan(ctx context.Context, o Options) ([]Step, error) {
	if o.Logger == nil {
		o.Logger = log.NoopLogger()
	}
	node, err := o.Client.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", o.Node, err)
	}
	rt := node.Status.NodeInfo.ContainerRuntimeVersion
	if !strings.HasPrefix(rt, "containerd://") {
		return nil, fmt.Errorf("node %s runs %q: Docker is purged only from a node that runs on containerd", o.Node, rt)
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return nil, fmt.Errorf("node %s is not Ready: fix it before purging Docker (rollback needs Docker)", o.Node)
	}
	st := &journal.Store{T: o.Transport}
	j, err := st.Load(ctx, o.Node)
	if err != nil {
		return nil, err
	}
	if j != nil && !j.Finished && !j.RolledBack {
		return nil, fmt.Errorf("node %s has an unfinished switch (%s): finish it first", o.Node, st.Path(o.Node))
	}
	t := o.Transport
	if out, err := t.Run(ctx, "systemctl", "is-active", "containerd.service"); err != nil || strings.TrimSpace(string(out)) != "active" {
		return nil, fmt.Errorf("containerd.service is not active on %s: not purging Docker", o.Node)
	}
	var steps []Step
	steps = append(steps, Step{"stop and disable Docker", []string{"systemctl", "disable", "--now", "docker.socket", "docker.service"}})
	pm, err := nodepkg.Detect(ctx, t)
	if errors.Is(err, nodepkg.ErrNoManager) {
		return nil, fmt.Errorf("node %s: %w: remove Docker by hand", o.Node, err)
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", o.Node, err)
	}
	have, err := pm.Installed(ctx, t, append(append([]string{}, DockerPackages...), keepPackages...)...)
	if err != nil {
		return nil, fmt.Errorf("node %s: installed packages: %w", o.Node, err)
	}
	steps = append(steps, packageSteps(pm, have)...)
	if o.RemoveData {
		root, err := containerdRoot(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", o.Node, err)
		}
		var present []string
		for _, p := range DataPaths {
			if has(ctx, t, p) {
				present = append(present, p)
			}
		}
		ds, err := dataSteps(present, root)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", o.Node, err)
		}
		steps = append(steps, ds...)
	}
	return steps, nil
}

// containerdRoot returns the root directory of the node's containerd: the
// `root` of /etc/containerd/config.toml, else containerd's default.
func containerdRoot(ctx context.Context, t transport.Transport) (string, error) {
	data, err := t.ReadFile(ctx, nodeconf.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultContainerdRoot, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", nodeconf.ConfigPath, err)
	}
	var cfg struct {
		Root string `toml:"root"`
	}
	if err := toml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("%s: %w (not removing Docker's data without knowing containerd's root)", nodeconf.ConfigPath, err)
	}
	if cfg.Root == "" {
		return DefaultContainerdRoot, nil
	}
	return path.Clean(cfg.Root), nil
}

// DefaultContainerdRoot is containerd's root when its config sets none.
const DefaultContainerdRoot = "/var/lib/containerd"

// dataSteps removes each of paths, but never containerd's root: when Docker's
// data root was its own disk, `unshim convert` put containerd's root inside
// it (DATAROOT/containerd). Then every entry of that path except the one
// holding containerd's root is removed instead of the path itself.
func dataSteps(paths []string, root string) ([]Step, error) {
	var steps []Step
	for _, p := range paths {
		p = path.Clean(p)
		switch {
		case root == p || strings.HasPrefix(p, root+"/"):
			return nil, fmt.Errorf("containerd's root %s is %s or holds it: not removing it", root, p)
		case strings.HasPrefix(root, p+"/"):
			keep, _, _ := strings.Cut(strings.TrimPrefix(root, p+"/"), "/")
			steps = append(steps, Step{"remove " + p + " except " + path.Join(p, keep) + " (containerd's root " + root + ")",
				[]string{"find", p, "-mindepth", "1", "-maxdepth", "1", "!", "-name", keep, "-exec", "rm", "-rf", "--one-file-system", "--", "{}", "+"}})
		default:
			steps = append(steps, Step{"remove " + p, []string{"rm", "-rf", "--one-file-system", "--", p}})
		}
	}
	return steps, nil
}

// Run purges Docker from the node, then checks that containerd still runs.
func Run(ctx context.Context, o Options) error {
	steps, err := Plan(ctx, o)
	if err != nil {
		return err
	}
	if o.Logger == nil {
		o.Logger = log.NoopLogger()
	}
	if o.RemoveData {
		if err := backupEtcDocker(ctx, o); err != nil {
			return err
		}
	}
	for _, s := range steps {
		o.Logger.V(0).Infof("[purge-docker] %s: %s", s.What, strings.Join(s.Argv, " "))
		if _, err := o.Transport.Run(ctx, s.Argv...); err != nil {
			return fmt.Errorf("purge Docker from %s: %w", o.Node, err)
		}
	}
	if out, err := o.Transport.Run(ctx, "systemctl", "is-active", "containerd.service"); err != nil || strings.TrimSpace(string(out)) != "active" {
		return fmt.Errorf("containerd.service is not active on %s after the purge: %s", o.Node, strings.TrimSpace(string(out)))
	}
	return nil
}

// backupEtcDocker copies /etc/docker's files into the backup directory.
func backupEtcDocker(ctx context.Context, o Options) error {
	t := o.Transport
	if !has(ctx, t, "/etc/docker") {
		return nil
	}
	dst := journal.DefaultDir + "/backup/" + o.Node + "/purge-docker"
	if _, err := t.Run(ctx, "mkdir", "-p", dst); err != nil {
		return err
	}
	if _, err := t.Run(ctx, "cp", "-a", "--", "/etc/docker", dst+"/"); err != nil {
		return fmt.Errorf("back up /etc/docker: %w", err)
	}
	o.Logger.V(0).Infof("[purge-docker] /etc/docker backed up to %s/docker", dst)
	return nil
}

func has(ctx context.Context, t transport.Transport, p string) bool {
	_, err := t.Run(ctx, "test", "-e", p)
	return err == nil
}

// packageSteps marks the kept packages that are installed manual and purges
// Docker's installed packages.
func packageSteps(pm nodepkg.Manager, installed map[string]bool) []Step {
	var keep, purge []string
	for _, p := range keepPackages {
		if installed[p] {
			keep = append(keep, p)
		}
	}
	for _, p := range DockerPackages {
		if installed[p] {
			purge = append(purge, p)
		}
	}
	var steps []Step
	if argv := pm.MarkManual(keep...); argv != nil {
		steps = append(steps, Step{"keep containerd when Docker goes (kubernetes-sigs/kubespray#8431)", argv})
	}
	if len(purge) > 0 {
		steps = append(steps, Step{"remove Docker's packages", pm.Purge(purge...)})
	}
	return steps
}
