package nodecheck

import (
	"fmt"
	"io/fs"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodefiles"
)

// carried names the daemon settings containerd must carry over, and where to.
var carried = []struct{ key, what string }{
	{"registry-mirrors", "registry mirrors: containerd needs certs.d/docker.io/hosts.toml"},
	{"insecure-registries", "insecure registries: containerd needs certs.d/HOST/hosts.toml with skip_verify"},
	{"data-root", "Docker's data root: its images are not migrated; containerd's root can go on the same disk"},
	{"graph", "Docker's data root (graph): its images are not migrated"},
	{"exec-opts", "exec options (cgroup driver): containerd needs SystemdCgroup to match the kubelet"},
	{"default-runtime", "default runtime: containerd needs default_runtime_name"},
	{"runtimes", "custom runtimes: containerd needs a runtime entry for each (BinaryName)"},
	{"log-driver", "log driver: the kubelet rotates logs under containerd, in CRI format"},
	{"log-opts", "log options: containerLogMaxSize/containerLogMaxFiles in the kubelet"},
	{"proxies", "proxies: containerd needs them in a containerd.service.d drop-in"},
	{"storage-driver", "storage driver: containerd's snapshotter"},
	{"max-concurrent-downloads", "parallel downloads: containerd's max_concurrent_downloads"},
	{"default-ulimits", "default ulimits: the containers get them through containerd's base_runtime_spec rlimits"},
	{"selinux-enabled", "SELinux: containerd's enable_selinux"},
	{"features", "Docker features (cdi): containerd's enable_cdi"},
	{"cdi-spec-dirs", "CDI spec directories: containerd's cdi_spec_dirs"},
	{"debug", "debug logging: containerd's [debug] level"},
	{"log-level", "log level: containerd's [debug] level"},
	{"metrics-addr", "metrics address: containerd's [metrics] address"},
	{"oom-score-adjust", "OOM score: not carried over (containerd.service sets OOMScoreAdjust=-999; oom_score would override it)"},
}

// daemonConfig reports Docker's daemon settings: those containerd must carry
// over, and those it has no equivalent for.
func (c *checker) daemonConfig(info *dockerInfo) error {
	in := c.node.Input
	in.ContainerdVersion = version.MustParseGeneric("1.7")
	in.KubeletVersion = c.o.KubeletVersion
	out, err := nodeconf.Convert(in)
	if err != nil {
		return err
	}
	d := in.Daemon
	for _, k := range carried {
		s := d.Get(k.key)
		if s == nil {
			continue
		}
		file, line := c.locate(s.Source, k.key)
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleDockerConfig, Severity: check.SeverityLow,
			Message: k.what, Evidence: k.key + "=" + evidence(s.Value), File: file, Line: line})
	}
	for _, name := range sortedCertDirs(in.Certs) {
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleDockerConfig, Severity: check.SeverityLow,
			Message:  "registry certificates in " + nodefiles.DockerCertsD + "/" + name + ": containerd needs them in certs.d/" + name + " and referenced from hosts.toml",
			Evidence: name, File: nodefiles.DockerCertsD + "/" + name})
	}
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"} {
		if v, ok := in.DockerEnvironment[name]; ok {
			src := in.DockerEnvironmentSource[name]
			file, line := c.locate(src, name)
			c.add(check.Finding{Object: c.nodeRef, Rule: RuleDockerConfig, Severity: check.SeverityLow,
				Message: "proxy for dockerd in its environment: containerd needs it in a containerd.service.d drop-in", Evidence: name + "=" + v, File: file, Line: line})
		}
	}
	for _, u := range out.Unmapped {
		if strings.HasPrefix(u.Key, "cni.") || strings.HasPrefix(u.Key, "kubelet ") {
			continue // the readiness checks report these
		}
		if u.Key == "exec-opts" && strings.HasPrefix(u.Value, "native.cgroupdriver=") {
			continue // the cgroup driver check reports it
		}
		key, _, _ := strings.Cut(u.Key, ".")
		file, line := c.locate(u.Source, key)
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleDockerConfigUnmapped, Severity: check.SeverityMedium,
			Message: fmt.Sprintf("%s: %s", u.Key, u.Reason), Evidence: u.Key + "=" + u.Value, File: file, Line: line})
	}
	if info != nil && info.DockerRootDir != "" && d.Get("data-root") == nil && d.Get("graph") == nil && info.DockerRootDir != "/var/lib/docker" {
		c.add(check.Finding{Object: c.nodeRef, Rule: RuleDockerConfig, Severity: check.SeverityLow,
			Message: "Docker's data root is " + info.DockerRootDir + ": its images are not migrated", Evidence: "DockerRootDir=" + info.DockerRootDir})
	}
	return nil
}

func sortedCertDirs(m map[string][]nodeconf.CertFile) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

func evidence(v any) string {
	s := fmt.Sprint(v)
	switch x := v.(type) {
	case []string:
		s = strings.Join(x, ",")
	case map[string]string:
		var parts []string
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+"="+x[k])
		}
		s = strings.Join(parts, ",")
	case map[string]nodeconf.Runtime:
		var parts []string
		for _, k := range sortedKeys(x) {
			p := x[k].Path
			if p == "" {
				p = x[k].RuntimeType
			}
			parts = append(parts, k+"="+p)
		}
		s = strings.Join(parts, ",")
	case nodeconf.Proxies:
		s = fmt.Sprintf("http-proxy=%s,https-proxy=%s,no-proxy=%s", x.HTTPProxy, x.HTTPSProxy, x.NoProxy)
	}
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// locate returns file and the line of the first mention of key in it.
func (c *checker) locate(file, key string) (string, int) {
	if file == "" {
		return "", 0
	}
	data, err := fs.ReadFile(c.o.FS, nodefiles.Rel(file))
	if err != nil {
		return file, 0
	}
	for _, needle := range []string{`"` + key + `"`, "--" + key, key} {
		for i, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, needle) {
				return file, i + 1
			}
		}
	}
	return file, 0
}
