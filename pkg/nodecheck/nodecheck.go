// Package nodecheck owns the node-side impact check: what on a node's host
// (not in the cluster) depends on Docker or breaks when containerd replaces
// it. It reads the node's files under a root directory, /proc and the
// Docker API, and reports check.Findings.
package nodecheck

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/transport"
)

// Rule IDs of the node check.
const (
	RuleDockerConfig         = "node-docker-config"
	RuleDockerConfigUnmapped = "node-docker-config-unmapped"
	RuleDockerCaller         = "node-docker-caller"
	RuleSocketClient         = "node-docker-socket-client"
	RuleImageNoDigest        = "node-image-no-digest"
	RuleCNI                  = "node-cni-missing"
	RuleCgroupDriver         = "node-cgroup-driver"
	RuleKubeletFlag          = "node-kubelet-flag"
	RuleNotChecked           = "node-not-checked"
	RuleContainerdConfig     = "node-containerd-config"
)

// Rules describes every rule of the node check.
func Rules() []check.RuleMeta {
	return []check.RuleMeta{
		{ID: RuleDockerConfig, Title: "Docker daemon setting that containerd must carry over", Severity: check.SeverityLow,
			Remedy: "`unshim convert` carries it into /etc/containerd (config.toml, certs.d, drop-ins) or the kubelet settings; review its output"},
		{ID: RuleDockerConfigUnmapped, Title: "Docker daemon setting with no containerd equivalent", Severity: check.SeverityMedium,
			Remedy: "decide what replaces it before Docker goes; `unshim convert` lists it with the reason"},
		{ID: RuleDockerCaller, Title: "Script, cron entry or unit on the host calls docker", Severity: check.SeverityHigh,
			Remedy: "rewrite it for crictl/ctr (or nerdctl), or drop it, before Docker is removed"},
		{ID: RuleSocketClient, Title: "Process connected to the Docker socket", Severity: check.SeverityHigh,
			Remedy: "move the agent to the CRI socket (unix:///run/containerd/containerd.sock) or a containerd-aware version"},
		{ID: RuleImageNoDigest, Title: "Image in Docker that no registry can give back", Severity: check.SeverityMedium,
			Remedy: "push it to a registry, or `docker save` it and `ctr -n k8s.io images import` it after the switch"},
		{ID: RuleCNI, Title: "containerd will need a CNI config and plugins", Severity: check.SeverityHigh,
			Remedy: "install the CNI plugins in the bin dir and a network config in the conf dir, or the node stays NotReady"},
		{ID: RuleCgroupDriver, Title: "Cgroup driver of the kubelet and the runtime", Severity: check.SeverityHigh,
			Remedy: "set the kubelet's cgroupDriver and containerd's SystemdCgroup to the same driver (`unshim convert` follows the kubelet)"},
		{ID: RuleKubeletFlag, Title: "kubelet flag that must go with containerd", Severity: check.SeverityHigh,
			Remedy: "remove the flag from the kubelet's flags file before it restarts on containerd (`unshim convert` lists the changes)"},
		{ID: RuleContainerdConfig, Title: "containerd's config.toml will not serve the CRI", Severity: check.SeverityHigh,
			Remedy: "replace /etc/containerd/config.toml with the one `unshim convert` generates (--write backs up the old one)"},
		{ID: RuleNotChecked, Title: "Part of the node check could not run", Severity: check.SeverityInfo,
			Remedy: "run `unshim node check` on the node as root, or give --docker-host / --proc"},
	}
}

// Options say where and how to look.
type Options struct {
	// Root is where the node's file system is visible here ("/" on the node).
	Root string
	// FS is the node's file system (nodefiles.Open); nil reads it under Root.
	FS fs.FS
	// Proc is the proc file system of the node's processes; "" skips the
	// process check (the default when Root is not "/").
	Proc string
	// DockerHost is the Docker API address (unix:///var/run/docker.sock);
	// "" skips the image and docker-info checks.
	DockerHost string
	// DockerSockets are further Docker socket paths (as the processes see
	// them) for the process check.
	DockerSockets []string
	// KubeletVersion, when known, decides which flags the kubelet no longer accepts.
	KubeletVersion *version.Version
	// NodeName names the node in findings ("" reads ROOT/etc/hostname).
	NodeName string
}

// Run checks the node and returns its findings, most serious first.
func Run(ctx context.Context, logger log.Logger, o Options) (*check.Result, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.FS == nil {
		o.FS = transport.DirFS(o.Root)
	}
	if o.NodeName == "" {
		o.NodeName = hostname(o.FS, o.Root)
	}
	res := &check.Result{Scanned: map[string]int{}}
	node, err := nodefiles.LoadFS(o.FS)
	if err != nil {
		return nil, err
	}
	node.Root = o.Root
	c := &checker{o: o, res: res, node: node, logger: logger, nodeRef: check.ObjectRef{Kind: "Node", Name: o.NodeName}}
	res.Scanned["Node"] = 1

	var info *dockerInfo
	var dk *dockerAPI
	if o.DockerHost != "" {
		if dk, err = newDockerAPI(o.DockerHost); err != nil {
			return nil, err
		}
		defer dk.Close()
		if info, err = dk.info(ctx); err != nil {
			c.notChecked("Docker API", fmt.Sprintf("Docker at %s does not answer: %v", o.DockerHost, err))
			dk = nil
		}
	} else {
		c.notChecked("Docker API", "no --docker-host: images and Docker's effective cgroup driver not checked")
	}
	if err := c.daemonConfig(info); err != nil {
		return nil, err
	}
	if err := c.callers(); err != nil {
		return nil, err
	}
	if o.Proc != "" {
		if err := c.socketClients(); err != nil {
			c.notChecked("processes", err.Error())
		}
	} else {
		c.notChecked("processes", "no --proc: processes connected to the Docker socket not checked (only / has the node's own /proc)")
	}
	if dk != nil {
		if err := c.images(ctx, dk); err != nil {
			c.notChecked("images", err.Error())
		}
	}
	c.readiness(info)
	check.Sort(res.Findings)
	return res, nil
}

type checker struct {
	o       Options
	res     *check.Result
	node    *nodefiles.Node
	logger  log.Logger
	nodeRef check.ObjectRef
}

func (c *checker) add(f check.Finding) {
	if f.Remedy == "" {
		for _, r := range Rules() {
			if r.ID == f.Rule {
				f.Remedy = r.Remedy
			}
		}
	}
	c.res.Findings = append(c.res.Findings, f)
}

func (c *checker) notChecked(what, why string) {
	c.add(check.Finding{Object: c.nodeRef, Rule: RuleNotChecked, Severity: check.SeverityInfo, Message: what + " not checked: " + why})
}

func hostname(fsys fs.FS, root string) string {
	if b, err := fs.ReadFile(fsys, "etc/hostname"); err == nil {
		if h := strings.TrimSpace(string(b)); h != "" {
			return h
		}
	}
	if root == "/" {
		if h, err := os.Hostname(); err == nil {
			return h
		}
	}
	return "node"
}
