package nodecheck

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodefiles"
)

// readiness reports what containerd will need that Docker did not: CNI
// config and plugins, a cgroup driver that matches the kubelet's, and kubelet
// flags that must go.
func (c *checker) readiness(info *dockerInfo) {
	in := c.node.Input
	conf, bins := "/etc/cni/net.d", []string{"/opt/cni/bin"}
	var confFile, binFile string
	for _, f := range in.KubeletFlags {
		switch f.Name {
		case "cni-conf-dir":
			conf, confFile = f.Value, f.File
		case "cni-bin-dir":
			bins, binFile = strings.Split(f.Value, ","), f.File
		}
	}
	if binFile == "" {
		bins = append(bins, "/usr/lib/cni") // Debian's containernetworking-plugins
	}
	if !hasCNIConfig(c.o.FS, nodefiles.Rel(conf)) {
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleCNI, Severity: check.SeverityHigh,
			Message:  "no CNI network config in " + conf + ": Docker's bridge served pods before; containerd's CRI needs a CNI config or the node stays NotReady (cni plugin not initialized)",
			Evidence: conf, File: confFile})
	}
	found := false
	for _, b := range bins {
		if hasFiles(c.o.FS, nodefiles.Rel(strings.TrimSpace(b))) {
			found = true
		}
	}
	if !found {
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleCNI, Severity: check.SeverityHigh,
			Message:  "no CNI plugins in " + strings.Join(bins, " or ") + ": install the CNI plugins (containernetworking-plugins)",
			Evidence: strings.Join(bins, ","), File: binFile})
	}

	// Cgroup driver: the kubelet's (flag, then config file, then cgroupfs) and Docker's.
	kubelet, kfile := "", ""
	if in.KubeletConfig != nil && in.KubeletConfig.CgroupDriver != "" {
		kubelet, kfile = in.KubeletConfig.CgroupDriver, in.KubeletConfig.File
	}
	for _, f := range in.KubeletFlags {
		if f.Name == "cgroup-driver" {
			kubelet, kfile = f.Value, f.File
		}
	}
	docker, dsrc := "", ""
	for _, o := range in.Daemon.Strings("exec-opts") {
		if k, v, ok := strings.Cut(o, "="); ok && strings.TrimSpace(k) == "native.cgroupdriver" {
			docker, dsrc = strings.TrimSpace(v), in.Daemon.Get("exec-opts").Source
		}
	}
	if info != nil && info.CgroupDriver != "" {
		docker, dsrc = info.CgroupDriver, "docker info"
	}
	switch {
	case kubelet == "" && docker == "":
	case kubelet == "":
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleCgroupDriver, Severity: check.SeverityMedium,
			Message:  fmt.Sprintf("the kubelet sets no cgroupDriver (default cgroupfs) and Docker uses %s (%s): set cgroupDriver explicitly; containerd's SystemdCgroup must match it", docker, dsrc),
			Evidence: "docker=" + docker})
	case docker != "" && docker != kubelet:
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleCgroupDriver, Severity: check.SeverityHigh,
			Message:  fmt.Sprintf("the kubelet uses cgroup driver %s but Docker uses %s (%s): containerd's SystemdCgroup must match the kubelet", kubelet, docker, dsrc),
			Evidence: "kubelet=" + kubelet + " docker=" + docker, File: kfile})
	default:
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleCgroupDriver, Severity: check.SeverityInfo,
			Message:  fmt.Sprintf("the kubelet uses cgroup driver %s: containerd needs SystemdCgroup = %t on every runc runtime", kubelet, kubelet == "systemd"),
			Evidence: "kubelet=" + kubelet, File: kfile})
	}

	c.containerdConfig()

	// kubelet flags the kubelet will not accept (or that mean nothing) on containerd.
	kv := c.o.KubeletVersion
	for _, f := range in.KubeletFlags {
		for _, r := range nodeconf.RemovedKubeletFlags() {
			if r.Name != f.Name {
				continue
			}
			sev := check.SeverityHigh
			msg := fmt.Sprintf("--%s: %s", f.Name, r.Reason)
			switch {
			case nodeconf.DockershimFlags[f.Name]:
			case kv != nil && kv.AtLeast(r.Removed):
				msg = fmt.Sprintf("--%s: kubelet %s no longer accepts it: %s", f.Name, kv, r.Reason)
			case kv != nil:
				sev = check.SeverityLow
				msg = fmt.Sprintf("--%s: accepted by kubelet %s, removed in %d.%d: %s", f.Name, kv, r.Removed.Major(), r.Removed.Minor(), r.Reason)
			default:
				sev = check.SeverityMedium
				msg = fmt.Sprintf("--%s (kubelet version unknown): %s", f.Name, r.Reason)
			}
			file, line := c.locate(f.File, "--"+f.Name)
			if f.Line > 0 {
				line = f.Line
			}
			c.add(check.Finding{Object: c.nodeRef, Rule: RuleKubeletFlag, Severity: sev, Message: msg,
				Evidence: "--" + f.Name + "=" + f.Value, File: file, Line: line})
		}
	}
}

func hasCNIConfig(fsys fs.FS, dir string) bool {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".conf") || strings.HasSuffix(n, ".conflist") || strings.HasSuffix(n, ".json")) {
			return true
		}
	}
	return false
}

func hasFiles(fsys fs.FS, dir string) bool {
	entries, err := fs.ReadDir(fsys, dir)
	return err == nil && len(entries) > 0
}

// containerdConfig reports an existing /etc/containerd/config.toml that
// would keep the CRI plugin off (Docker's containerd.io package ships
// disabled_plugins = ["cri"]) or that has no version line.
func (c *checker) containerdConfig() {
	const p = "/etc/containerd/config.toml"
	data, err := fs.ReadFile(c.o.FS, nodefiles.Rel(p))
	if err != nil {
		return
	}
	var cfg map[string]any
	if err := toml.Unmarshal(data, &cfg); err != nil {
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleContainerdConfig, Severity: check.SeverityHigh,
			Message: "containerd's config.toml does not parse: " + err.Error(), File: p})
		return
	}
	if dp, ok := cfg["disabled_plugins"].([]any); ok {
		for _, x := range dp {
			if s, _ := x.(string); s == "cri" || s == "io.containerd.grpc.v1.cri" {
				file, line := c.locate(p, "disabled_plugins")
				c.add(check.Finding{Object: c.nodeRef, Rule: RuleContainerdConfig, Severity: check.SeverityHigh,
					Message:  "containerd's config.toml disables the CRI plugin (as Docker's containerd.io package ships it): the kubelet gets `unknown service runtime.v1.RuntimeService`",
					Evidence: "disabled_plugins=" + s, File: file, Line: line})
			}
		}
	}
	if _, ok := cfg["version"]; !ok {
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleContainerdConfig, Severity: check.SeverityMedium,
			Message: "containerd's config.toml has no version line: it is read as version 1 and its plugins.\"io.containerd.grpc.v1.cri\" settings are ignored", Evidence: "version=", File: p})
	}
}
