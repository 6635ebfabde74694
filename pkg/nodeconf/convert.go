package nodeconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"
)

// Node paths the generated files go to.
const (
	ConfigPath       = "/etc/containerd/config.toml"
	CertsDir         = "/etc/containerd/certs.d"
	DropInDir        = "/etc/systemd/system/containerd.service.d"
	DefaultEndpoint  = "unix:///run/containerd/containerd.sock"
	defaultSocket    = "/run/containerd/containerd.sock"
	dockerHubServer  = "https://registry-1.docker.io"
	defaultCNIConf   = "/etc/cni/net.d"
	defaultCNIBin    = "/opt/cni/bin"
	debianCNIBin     = "/usr/lib/cni"
	defaultDataRoot  = "/var/lib/docker"
	defaultExecRoot  = "/var/run/docker"
	runcRuntimeType  = "io.containerd.runc.v2"
	criV2            = "io.containerd.grpc.v1.cri"
	criImages        = "io.containerd.cri.v1.images"
	criRuntime       = "io.containerd.cri.v1.runtime"
	transferPlugin   = "io.containerd.transfer.v1.local"
	dockerHubDirName = "docker.io"
)

// CNIDirCandidates are the directories Convert wants to know exist on the
// node (Input.ExistingDirs) to pick the CNI directories.
var CNIDirCandidates = []string{defaultCNIConf, defaultCNIBin, debianCNIBin}

// CertFile is one file of /etc/docker/certs.d/HOST/.
type CertFile struct {
	Name string
	Data []byte
}

// Input is a node's Docker and kubelet configuration, as read from its files.
type Input struct {
	// ContainerdVersion picks the schema: 1.x gets version 2, 2.x version 3.
	ContainerdVersion *version.Version
	// KubeletVersion, when known, picks the pause image and the flags to drop.
	KubeletVersion *version.Version
	// Daemon is the merged daemon.json and dockerd flags.
	Daemon *DaemonConfig
	// DockerEnvironment is the Environment= of docker.service and its drop-ins.
	DockerEnvironment map[string]string
	// DockerEnvironmentSource names the file of each DockerEnvironment variable.
	DockerEnvironmentSource map[string]string
	// Certs holds /etc/docker/certs.d: directory name (HOST[:PORT]) to its files.
	Certs map[string][]CertFile
	// KubeletFlags are the kubelet's flags from kubeadm-flags.env and friends.
	KubeletFlags []KubeletFlag
	// KubeletConfig is the kubelet's KubeletConfiguration, if any.
	KubeletConfig *KubeletConfig
	// ExistingDirs tells which of CNIDirCandidates (and the kubelet's CNI
	// flags' directories) exist on the node.
	ExistingDirs map[string]bool
	// KernelVersion is the node's kernel (/proc/sys/kernel/osrelease, or the
	// Node's status.nodeInfo.kernelVersion); nil when unknown.
	KernelVersion *version.Version
	// Mounts are the node's mount points (/etc/fstab and /proc/1/mounts); nil
	// when unknown.
	Mounts []string
	// Notes are what reading the node's files turned up and skipped (lines
	// of an EnvironmentFile systemd ignores, keys set twice); Convert lists
	// them in Unmapped.
	Notes []Unmapped
}

// File is one generated file, at its path on the node.
type File struct {
	Path string `json:"path"`
	Data []byte `json:"-"`
}

// Perm returns the file mode the file should be written with.
func (f File) Perm() uint32 {
	if strings.HasSuffix(f.Path, ".key") {
		return 0o600
	}
	return 0o644
}

// Unmapped is a setting that could not be carried over, and why.
type Unmapped struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
	Source string `json:"source,omitempty"`
}

// FlagChange is a kubelet flag to set or remove.
type FlagChange struct {
	Flag   string `json:"flag"`
	Value  string `json:"value,omitempty"`
	File   string `json:"file,omitempty"`
	Reason string `json:"reason"`
}

// KubeletFlagChanges are the kubelet command-line changes.
type KubeletFlagChanges struct {
	Set    []FlagChange `json:"set"`
	Remove []FlagChange `json:"remove"`
}

// Output is the containerd setup that replaces Docker on the node.
type Output struct {
	// Schema is the config.toml version written (2 or 3).
	Schema int `json:"schema"`
	// Files are the generated files, sorted by path.
	Files []File `json:"files"`
	// Kubelet maps KubeletConfiguration field names to their new values.
	Kubelet map[string]any `json:"kubelet"`
	// KubeletFlags lists flag changes (kubelets older than 1.27 take the
	// runtime endpoint only as a flag; removed flags make a kubelet exit).
	KubeletFlags KubeletFlagChanges `json:"kubeletFlags"`
	// Unmapped lists every setting that was not carried over, with the reason.
	Unmapped []Unmapped `json:"unmapped"`
	// SandboxImage is the pause image written into the config.
	SandboxImage string `json:"sandboxImage"`
	// SystemdCgroup is what the runc runtime got.
	SystemdCgroup bool `json:"systemdCgroup"`
}

// File returns the generated file at node path p, or nil.
func (o *Output) File(p string) *File {
	for i := range o.Files {
		if o.Files[i].Path == p {
			return &o.Files[i]
		}
	}
	return nil
}

// registry is one certs.d/HOST/hosts.toml in the making.
type registry struct {
	name     string // directory name: docker.io or HOST[:PORT]
	server   string
	mirrors  []mirror
	insecure bool
	ca       []string
	client   [][]string
}

// mirror is one Docker Hub mirror, a [host."URL"] of docker.io's hosts.toml.
type mirror struct {
	url        string // scheme://host[/path]
	host       string // host[:port], the /etc/docker/certs.d directory Docker reads for it
	skipVerify bool
	ca         []string   // relative to docker.io's hosts.toml
	client     [][]string // relative to docker.io's hosts.toml
}

type converter struct {
	in      *Input
	out     *Output
	cfg     *table
	v3      bool
	regs    map[string]*registry
	sandbox string
	systemd bool
	// proxyEnv and proxySrc feed the containerd.service.d drop-in.
	proxyEnv [][2]string
	proxySrc []string
	// baseSpec is the base_runtime_spec file every runtime gets ("" for none).
	baseSpec string
}

type runtimeOut struct {
	name        string
	runtimeType string
	options     [][2]any // ordered key, value
	runcBased   bool
}

// Convert turns a node's Docker and kubelet configuration into containerd's.
// Bad input in Input (values dockerd or the kubelet would refuse) is an
// *InputError; everything else is carried over or listed in Unmapped.
func Convert(in *Input) (*Output, error) {
	if in == nil {
		in = &Input{}
	}
	if in.Daemon == nil {
		in.Daemon = &DaemonConfig{Settings: map[string]*Setting{}}
	}
	if cv := in.ContainerdVersion; cv == nil {
		return nil, &InputError{Key: "containerd-version", Err: errors.New("containerd's version is unknown: want 1.6, 1.7 or 2.x")}
	} else if cv.LessThan(version.MajorMinor(1, 6)) || cv.AtLeast(version.MajorMinor(3, 0)) {
		return nil, &InputError{Key: "containerd-version", Err: fmt.Errorf("containerd %s is not supported: want 1.6, 1.7 or 2.x", in.ContainerdVersion)}
	}
	c := &converter{
		in:   in,
		out:  &Output{Kubelet: map[string]any{}, KubeletFlags: KubeletFlagChanges{Set: []FlagChange{}, Remove: []FlagChange{}}, Unmapped: []Unmapped{}},
		cfg:  newTable(),
		v3:   in.ContainerdVersion.Major() >= 2,
		regs: map[string]*registry{},
	}
	c.out.Schema = 2
	if c.v3 {
		c.out.Schema = 3
	}
	if err := c.convert(); err != nil {
		return nil, err
	}
	sort.Slice(c.out.Files, func(i, j int) bool { return c.out.Files[i].Path < c.out.Files[j].Path })
	sort.SliceStable(c.out.Unmapped, func(i, j int) bool { return c.out.Unmapped[i].Key < c.out.Unmapped[j].Key })
	return c.out, nil
}

func (c *converter) unmapped(key string, value any, reason string) {
	src := ""
	base, _, _ := strings.Cut(key, ".")
	if s := c.in.Daemon.Get(base); s != nil {
		src = s.Source
	}
	c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: key, Value: valueString(value), Reason: reason, Source: src})
}

func valueString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func (c *converter) cdiSupported() bool {
	return c.in.ContainerdVersion.AtLeast(version.MajorMinor(1, 7))
}

// Plugin table paths per schema.
func (c *converter) criTop() []string { // where streaming settings live
	return []string{"plugins", criV2}
}

func (c *converter) criImg() []string {
	if c.v3 {
		return []string{"plugins", criImages}
	}
	return []string{"plugins", criV2}
}

func (c *converter) criRt() []string {
	if c.v3 {
		return []string{"plugins", criRuntime}
	}
	return []string{"plugins", criV2}
}

func (c *converter) setAt(base []string, v any, rest ...string) {
	c.cfg.set(v, append(append([]string(nil), base...), rest...)...)
}

func (c *converter) convert() error {
	d := c.in.Daemon
	c.cfg.set(int64(c.out.Schema), "version")
	if err := c.kubelet(); err != nil {
		return err
	}
	handled := map[string]bool{}
	mark := func(keys ...string) {
		for _, k := range keys {
			handled[k] = true
		}
	}

	// Top level: root, state, oom_score, grpc, debug, metrics.
	mark("data-root", "graph", "exec-root", "oom-score-adjust", "containerd", "debug", "log-level", "log-format", "metrics-addr")
	c.dataRoot()
	if v := d.str("exec-root"); v != "" && path.Clean(v) != defaultExecRoot && path.Clean(v) != "/run/docker" {
		c.cfg.set(path.Join(path.Dir(path.Clean(v)), "containerd"), "state")
	}
	if n, ok := d.integer("oom-score-adjust"); ok {
		// Not carried over to containerd's oom_score: containerd applies a
		// non-zero oom_score to itself at start (cmd/containerd/server
		// SetOOMScore), overriding the OOMScoreAdjust=-999 its systemd unit
		// sets, so the node's most important daemon would become easier to
		// kill than it is with the packaged unit.
		c.unmapped("oom-score-adjust", n, "not carried over: containerd's oom_score would override the OOMScoreAdjust=-999 of containerd.service; that unit already protects containerd better than Docker's value protected dockerd")
	}
	if v := d.str("containerd"); v != "" {
		switch {
		case v == defaultSocket || v == "/var/run/containerd/containerd.sock":
		case strings.HasPrefix(v, "/var/run/docker/") || strings.HasPrefix(v, "/run/docker/"):
			c.unmapped("containerd", v, "the containerd dockerd ran for itself goes away; the kubelet talks to "+DefaultEndpoint)
		default:
			c.cfg.set(v, "grpc", "address")
			c.out.Kubelet["containerRuntimeEndpoint"] = "unix://" + v
		}
	}
	level := d.str("log-level")
	if dbg, _ := d.boolean("debug"); dbg {
		level = "debug"
	}
	if level != "" {
		switch level {
		case "trace", "debug", "info", "warn", "error", "fatal", "panic":
		default:
			return &InputError{File: d.Get("log-level").Source, Key: "log-level", Err: fmt.Errorf("want debug, info, warn, error or fatal, got %q", level)}
		}
		c.cfg.set(level, "debug", "level")
	}
	if v := d.str("log-format"); v != "" {
		if v != "json" && v != "text" {
			return &InputError{File: d.Get("log-format").Source, Key: "log-format", Err: fmt.Errorf("want text or json, got %q", v)}
		}
		c.cfg.set(v, "debug", "format")
	}
	if v := d.str("metrics-addr"); v != "" {
		c.cfg.set(v, "metrics", "address")
	}
	c.cfg.set([]string{}, "disabled_plugins")

	// CRI plugin.
	if c.v3 {
		c.setAt(c.criImg(), c.sandbox, "pinned_images", "sandbox")
	} else {
		c.setAt(c.criImg(), c.sandbox, "sandbox_image")
	}
	c.setAt(c.criTop(), "127.0.0.1", "stream_server_address")
	c.setAt(c.criTop(), "0", "stream_server_port")
	c.unprivileged()

	mark("max-concurrent-downloads", "selinux-enabled", "cdi-spec-dirs", "features", "storage-driver", "storage-opts")
	if n, ok := d.integer("max-concurrent-downloads"); ok {
		if n < 1 {
			return &InputError{File: d.Get("max-concurrent-downloads").Source, Key: "max-concurrent-downloads", Err: fmt.Errorf("want a positive integer, got %d", n)}
		}
		if c.v3 && c.in.ContainerdVersion.AtLeast(version.MajorMinor(2, 1)) {
			c.cfg.set(n, "plugins", transferPlugin, "max_concurrent_downloads")
		} else {
			c.setAt(c.criImg(), n, "max_concurrent_downloads")
		}
	}
	if b, ok := d.boolean("selinux-enabled"); ok {
		c.setAt(c.criRt(), b, "enable_selinux")
	}
	if s := d.Get("features"); s != nil {
		feats, _ := s.Value.(map[string]bool)
		for _, k := range sortedKeys(feats) {
			switch k {
			case "cdi":
				if !c.cdiSupported() {
					c.unmapped("features.cdi", feats[k], "containerd 1.6 has no CDI support: use containerd 1.7 or 2.x")
					continue
				}
				c.setAt(c.criRt(), feats[k], "enable_cdi")
			case "containerd-snapshotter":
				c.unmapped("features.containerd-snapshotter", feats[k], "Docker's images sit in containerd namespace moby; the CRI uses k8s.io, so they stay invisible to Kubernetes")
			default:
				c.unmapped("features."+k, feats[k], "Docker feature flag with no containerd equivalent")
			}
		}
	}
	if dirs := d.strs("cdi-spec-dirs"); len(dirs) > 0 && !c.cdiSupported() {
		c.unmapped("cdi-spec-dirs", dirs, "containerd 1.6 has no CDI support: use containerd 1.7 or 2.x")
	} else if len(dirs) > 0 {
		if _, set := c.cfg.sub(c.criRt()...).values["enable_cdi"]; !set {
			c.setAt(c.criRt(), true, "enable_cdi")
		}
		c.setAt(c.criRt(), dirs, "cdi_spec_dirs")
	}
	if err := c.storage(); err != nil {
		return err
	}

	mark("default-runtime", "runtimes", "exec-opts")
	if err := c.runtimesConf(); err != nil {
		return err
	}

	c.cni()

	mark("registry-mirrors", "insecure-registries")
	if err := c.registries(); err != nil {
		return err
	}
	c.setAt(c.criImg(), CertsDir, "registry", "config_path")

	mark("log-driver", "log-opts")
	if err := c.logs(); err != nil {
		return err
	}
	mark("proxies", "default-ulimits")
	if err := c.proxies(); err != nil {
		return err
	}
	if err := c.ulimits(); err != nil {
		return err
	}
	c.dropIns()
	c.runtimeBaseSpecs()

	for _, k := range d.Keys() {
		if handled[k] {
			continue
		}
		c.unmapped(k, d.Get(k).Value, unmappedReason(k, d.Get(k).Value))
	}
	for _, dup := range d.Duplicates {
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: dup.Key, Source: dup.File,
			Reason: "set more than once: dockerd (Go's encoding/json) uses the last value, and so does unshim"})
	}
	c.out.Unmapped = append(c.out.Unmapped, c.in.Notes...)
	c.out.Files = append(c.out.Files, File{Path: ConfigPath, Data: c.configHeader()})
	c.out.SandboxImage = c.sandbox
	c.out.SystemdCgroup = c.systemd
	return c.hostsFiles()
}

func (c *converter) configHeader() []byte {
	head := fmt.Sprintf("# Generated by unshim convert for containerd %d.%d (config version %d).\n# Docker's settings that could not be carried over are listed by `unshim convert`.\n\n",
		c.in.ContainerdVersion.Major(), c.in.ContainerdVersion.Minor(), c.out.Schema)
	return append([]byte(head), c.cfg.render()...)
}

// unmappedReason explains, for each daemon.json key Convert does not carry
// over, why (shared/research/config.md section 1).
func unmappedReason(k string, v any) string {
	switch k {
	case "disable-legacy-registry":
		return "the v1 registry protocol it switched off is gone (dockerd accepted the key up to 18.09); containerd speaks only v2"
	case "add-registry":
		return "RHEL's docker searched these registries for short image names; the kubelet and containerd expand short names to docker.io: use fully qualified image names"
	case "block-registry":
		return "RHEL's docker refused pulls from these registries; containerd has no equivalent: use an admission policy on image names"
	case "signature-verification":
		return "RHEL's docker checked image signatures (/etc/containers/registries.d); containerd does not: use an admission policy that verifies signatures"
	case "confirm-def-push":
		return "push only: the kubelet never pushes"
	case "bip", "bip6", "bridge", "fixed-cidr", "fixed-cidr-v6", "default-gateway", "default-gateway-v6",
		"default-address-pools", "mtu", "icc", "ip", "ip-masq", "iptables", "ip6tables", "ipv6",
		"userland-proxy", "userland-proxy-path", "default-network-opts", "allow-direct-routing",
		"bridge-accept-fwmark", "firewall-backend", "host-gateway-ip", "host-gateway-ips":
		return "Docker networking setting: the CNI plugin owns pod networking under containerd"
	case "ip-forward", "ip-forward-no-drop":
		if b, ok := v.(bool); ok && !b {
			// dockerd sets net.ipv4.ip_forward=1 only when ip-forward is true
			// (moby libnetwork/drivers/bridge setupIPForwarding).
			return "dockerd left IP forwarding alone on this node, so removing Docker changes nothing: the CNI plugin or the node's sysctl settings own net.ipv4.ip_forward"
		}
		return "dockerd turned on IP forwarding at start; persist net.ipv4.ip_forward=1 in /etc/sysctl.d before Docker goes"
	case "dns", "dns-opts", "dns-search":
		return "no containerd equivalent: the kubelet writes pod resolv.conf (clusterDNS, resolvConf)"
	case "seccomp-profile":
		return "no containerd equivalent: RuntimeDefault uses containerd's built-in profile (see kubelet seccompDefault)"
	case "userns-remap":
		return "no containerd equivalent: use per-pod user namespaces (hostUsers: false, containerd >= 2.0)"
	case "cgroup-parent":
		return "no containerd equivalent: the kubelet places pod cgroups (cgroupRoot)"
	case "default-cgroupns-mode", "default-ipc-mode", "default-shm-size", "init", "init-path", "no-new-privileges", "cpu-rt-period", "cpu-rt-runtime":
		return "container default with no containerd equivalent: set it in the pod spec"
	case "live-restore":
		return "not needed: containerd's shims keep containers running across restarts"
	case "max-concurrent-uploads":
		return "push only: the kubelet never pushes"
	case "max-download-attempts":
		return "no containerd equivalent"
	case "hosts", "tls", "tlsverify", "tlscacert", "tlscert", "tlskey", "group", "api-cors-header":
		return "the Docker API goes away: whatever uses it breaks (see `unshim node check`); do not expose containerd's socket over TCP"
	case "authorization-plugins":
		return "no containerd equivalent: use admission control or policy in the cluster"
	case "shutdown-timeout":
		return "no containerd equivalent: see kubelet shutdownGracePeriod and pod terminationGracePeriodSeconds"
	case "containerd-namespace", "containerd-plugins-namespace":
		return "Docker's containerd namespace (moby); the CRI uses k8s.io"
	case "allow-nondistributable-artifacts":
		return "push only (and deprecated in Docker 28)"
	}
	return "no effect on Kubernetes pods; dropped"
}

// kubelet reads the kubelet's flags and configuration: sandbox image, cgroup
// driver, CNI directories, flags to remove, log rotation, endpoint.
func (c *converter) kubelet() error {
	in := c.in
	flags := map[string]KubeletFlag{}
	for _, f := range in.KubeletFlags {
		flags[f.Name] = f
	}
	if f, ok := flags["pod-infra-container-image"]; ok && f.Value != "" {
		c.sandbox = f.Value
	} else if in.KubeletVersion != nil {
		c.sandbox = PauseImage(in.KubeletVersion)
	} else if c.v3 {
		c.sandbox = "registry.k8s.io/pause:3.10"
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "kubelet --pod-infra-container-image", Reason: "kubelet version unknown and no --pod-infra-container-image: using containerd 2's default sandbox image " + c.sandbox})
	} else {
		c.sandbox = "registry.k8s.io/pause:3.6"
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "kubelet --pod-infra-container-image", Reason: "kubelet version unknown and no --pod-infra-container-image: using containerd 1.6's default sandbox image " + c.sandbox})
	}

	// Cgroup driver: the kubelet's flag beats its config file; then Docker's; then cgroupfs.
	driver, from := "", ""
	if f, ok := flags["cgroup-driver"]; ok {
		driver, from = f.Value, f.File
		if driver != "systemd" && driver != "cgroupfs" {
			return &InputError{File: f.File, Key: "--cgroup-driver", Err: fmt.Errorf("want systemd or cgroupfs, got %q", driver)}
		}
	} else if in.KubeletConfig != nil && in.KubeletConfig.CgroupDriver != "" {
		driver, from = in.KubeletConfig.CgroupDriver, in.KubeletConfig.File
	}
	dockerDriver, err := c.dockerCgroupDriver()
	if err != nil {
		return err
	}
	if driver == "" {
		driver = dockerDriver
	}
	if driver == "" {
		driver = "cgroupfs"
	}
	if dockerDriver != "" && dockerDriver != driver {
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "exec-opts", Value: "native.cgroupdriver=" + dockerDriver,
			Reason: fmt.Sprintf("Docker's cgroup driver differs from the kubelet's (%s, %s); containerd follows the kubelet", driver, from), Source: c.in.Daemon.Get("exec-opts").Source})
	}
	c.systemd = driver == "systemd"
	if kc := in.KubeletConfig; c.systemd && kc != nil && kc.CgroupsPerQOS != nil && !*kc.CgroupsPerQOS {
		// Without QoS cgroups the kubelet gives sandboxes no cgroup parent;
		// containerd then names their cgroups in cgroupfs form, which runc
		// refuses under SystemdCgroup ("expected cgroupsPath to be of format
		// slice:prefix:name").
		c.systemd = false
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "cgroupDriver", Value: driver, Source: kc.File,
			Reason: "cgroupsPerQOS is false: pods get no systemd slice, so containerd's runc uses SystemdCgroup = false"})
	}
	c.out.Kubelet["cgroupDriver"] = driver
	c.out.Kubelet["containerRuntimeEndpoint"] = DefaultEndpoint

	kv := in.KubeletVersion
	for _, f := range in.KubeletFlags {
		for _, r := range removedKubeletFlags {
			if r.Name != f.Name {
				continue
			}
			if DockershimFlags[f.Name] || (kv != nil && kv.AtLeast(r.Removed)) || (f.Name == "container-runtime" && kv == nil) {
				c.out.KubeletFlags.Remove = append(c.out.KubeletFlags.Remove, FlagChange{Flag: "--" + f.Name, Value: f.Value, File: f.File, Reason: r.Reason})
			}
		}
		if f.Name == "container-runtime-endpoint" {
			c.out.KubeletFlags.Remove = append(c.out.KubeletFlags.Remove, FlagChange{Flag: "--" + f.Name, Value: f.Value, File: f.File, Reason: "replaced by containerRuntimeEndpoint " + DefaultEndpoint})
		}
	}
	if kv == nil || kv.LessThan(version.MajorMinor(1, 27)) {
		reason := "kubelets before 1.27 take the runtime endpoint only as a flag"
		if kv == nil {
			reason = "kubelet version unknown: " + reason
		}
		if kv == nil || kv.LessThan(version.MajorMinor(1, 24)) {
			c.out.KubeletFlags.Set = append(c.out.KubeletFlags.Set, FlagChange{Flag: "--container-runtime", Value: "remote", Reason: "kubelets before 1.24 default to dockershim"})
		}
		c.out.KubeletFlags.Set = append(c.out.KubeletFlags.Set, FlagChange{Flag: "--container-runtime-endpoint", Value: DefaultEndpoint, Reason: reason})
	}
	return nil
}

func (c *converter) dockerCgroupDriver() (string, error) {
	s := c.in.Daemon.Get("exec-opts")
	driver := ""
	for _, o := range c.in.Daemon.strs("exec-opts") {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return "", &InputError{File: s.Source, Key: "exec-opts", Err: fmt.Errorf("want NAME=VALUE, got %q", o)}
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "native.cgroupdriver":
			v = strings.TrimSpace(v)
			if v != "systemd" && v != "cgroupfs" {
				return "", &InputError{File: s.Source, Key: "exec-opts", Err: fmt.Errorf("native.cgroupdriver: want systemd or cgroupfs, got %q", v)}
			}
			driver = v
		case "isolation":
			c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "exec-opts", Value: o, Reason: "Windows only", Source: s.Source})
		default:
			c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "exec-opts", Value: o, Reason: "unknown exec option: dropped", Source: s.Source})
		}
	}
	return driver, nil
}

func (c *converter) storage() error {
	d := c.in.Daemon
	if v := d.str("storage-driver"); v != "" {
		snap := ""
		switch v {
		case "overlay2", "overlay":
			snap = "overlayfs"
		case "vfs":
			snap = "native"
		case "btrfs":
			snap = "btrfs"
		case "zfs":
			snap = "zfs"
			c.unmapped("storage-driver", v, "zfs snapshotter: containerd's root for it must be on a ZFS dataset")
		case "devicemapper":
			snap = "devmapper"
			c.unmapped("storage-driver", v, "devmapper snapshotter needs its own pool settings under [plugins.\"io.containerd.snapshotter.v1.devmapper\"]")
		case "fuse-overlayfs":
			c.unmapped("storage-driver", v, "fuse-overlayfs is an external proxy plugin in containerd: install and configure it; overlayfs is used")
		case "aufs":
			c.unmapped("storage-driver", v, "aufs is not supported by containerd 2.0 and later; overlayfs is used")
		default:
			c.unmapped("storage-driver", v, "unknown storage driver; containerd's default snapshotter is used")
		}
		if snap != "" {
			if c.v3 {
				c.setAt(c.criImg(), snap, "snapshotter")
			} else {
				c.setAt(c.criRt(), snap, "containerd", "snapshotter")
			}
		}
	}
	if opts := d.strs("storage-opts"); len(opts) > 0 {
		c.unmapped("storage-opts", opts, "no overlayfs quota in containerd; devmapper options go under its snapshotter plugin")
	}
	return nil
}

func (c *converter) runtimesConf() error {
	d := c.in.Daemon
	var rts map[string]Runtime
	if s := d.Get("runtimes"); s != nil {
		rts, _ = s.Value.(map[string]Runtime)
	}
	def := d.str("default-runtime")
	if def != "" && def != "runc" && def != runcRuntimeType {
		if _, ok := rts[def]; !ok {
			return &InputError{File: d.Get("default-runtime").Source, Key: "default-runtime", Err: fmt.Errorf("runtime %q is not in runtimes", def)}
		}
	}
	outs := []runtimeOut{{name: "runc", runtimeType: runcRuntimeType, runcBased: true}}
	for _, name := range sortedKeys(rts) {
		r := rts[name]
		if name == "runc" || name == runcRuntimeType {
			return &InputError{File: d.Get("runtimes").Source, Key: "runtimes." + name, Err: errors.New("runtime name is reserved by dockerd")}
		}
		if dockerPackaged(r.Path) {
			// RHEL/CentOS 7's docker package ships its own runc as
			// /usr/libexec/docker/docker-runc-current and makes it the default
			// (--add-runtime docker-runc=... --default-runtime=docker-runc in
			// its docker.service); docker-ce up to 17.x shipped
			// /usr/bin/docker-runc. Purging Docker removes the binary, so the
			// runtime is not carried over and its pods get runc.
			c.unmapped("runtimes."+name, r.Path, "runc shipped inside the Docker package: it goes away when Docker is purged; containerd's runc is used instead")
			if def == name {
				c.unmapped("default-runtime", def, "the default runtime ships inside the Docker package: containerd's default runtime is runc")
				def = ""
			}
			continue
		}
		ro := runtimeOut{name: name}
		switch {
		case r.Path != "":
			bin := r.Path
			if !strings.HasPrefix(bin, "/") {
				bin = "/usr/bin/" + bin
				c.unmapped("runtimes."+name+".path", r.Path, "a bare name: BinaryName set to "+bin+"; check that the runtime is there")
			}
			ro.runtimeType, ro.runcBased = runcRuntimeType, true
			ro.options = append(ro.options, [2]any{"BinaryName", bin})
			if len(r.RuntimeArgs) > 0 {
				c.unmapped("runtimes."+name+".runtimeArgs", r.RuntimeArgs, "the runc shim passes no extra arguments to the runtime binary: wrap them in a script")
			}
		case r.RuntimeType != "":
			ro.runtimeType = r.RuntimeType
			ro.runcBased = r.RuntimeType == runcRuntimeType
			for _, k := range sortedKeys(r.Options) {
				if k == "SystemdCgroup" && ro.runcBased {
					continue
				}
				v, ok := tomlScalar(r.Options[k])
				if !ok {
					c.unmapped("runtimes."+name+".options."+k, r.Options[k], "nested option values are not carried over: set them by hand")
					continue
				}
				ro.options = append(ro.options, [2]any{k, v})
			}
		default:
			return &InputError{File: d.Get("runtimes").Source, Key: "runtimes." + name, Err: errors.New("needs path or runtimeType")}
		}
		outs = append(outs, ro)
	}
	base := append(c.criRt(), "containerd")
	if def != "" && def != runcRuntimeType {
		c.setAt(base, def, "default_runtime_name")
	} else {
		c.setAt(base, "runc", "default_runtime_name")
	}
	for _, r := range outs {
		// containerd 1.x replaces the whole runtime entry: runtime_type is required (containerd#6964).
		c.setAt(base, r.runtimeType, "runtimes", r.name, "runtime_type")
		for _, o := range r.options {
			c.setAt(base, o[1], "runtimes", r.name, "options", o[0].(string))
		}
		if r.runcBased {
			c.setAt(base, c.systemd, "runtimes", r.name, "options", "SystemdCgroup")
		}
	}
	return nil
}

// dockerPackaged tells whether a runtime binary ships inside a Docker package.
func dockerPackaged(bin string) bool {
	return strings.HasPrefix(path.Base(bin), "docker-runc") || strings.HasPrefix(bin, "/usr/libexec/docker/")
}

func (c *converter) cni() {
	conf, bins := defaultCNIConf, []string(nil)
	var confFrom, binFrom string
	for _, f := range c.in.KubeletFlags {
		switch f.Name {
		case "cni-conf-dir":
			conf, confFrom = f.Value, f.File
		case "cni-bin-dir":
			bins, binFrom = nil, f.File
			for _, b := range strings.Split(f.Value, ",") {
				if b = strings.TrimSpace(b); b != "" {
					bins = append(bins, b)
				}
			}
		}
	}
	exists := func(p string) bool { return c.in.ExistingDirs[p] }
	if len(bins) == 0 {
		for _, b := range []string{defaultCNIBin, debianCNIBin} {
			if exists(b) {
				bins = append(bins, b)
			}
		}
	}
	var existing []string
	for _, b := range bins {
		if exists(b) {
			existing = append(existing, b)
		}
	}
	if len(existing) == 0 {
		if len(bins) == 0 {
			bins = []string{defaultCNIBin}
		}
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "cni.bin_dir", Value: strings.Join(bins, ","), Source: binFrom,
			Reason: "no CNI plugin directory exists on the node: install the CNI plugins there or the node stays NotReady"})
		existing = bins
	}
	if !exists(conf) {
		c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "cni.conf_dir", Value: conf, Source: confFrom,
			Reason: "the CNI config directory does not exist on the node: containerd needs a CNI config there or the node stays NotReady"})
	}
	base := append(c.criRt(), "cni")
	if c.v3 && c.in.ContainerdVersion.AtLeast(version.MajorMinor(2, 1)) {
		c.setAt(base, existing, "bin_dirs")
	} else {
		c.setAt(base, existing[0], "bin_dir")
		if len(existing) > 1 {
			c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "cni.bin_dir", Value: strings.Join(existing[1:], ","), Source: binFrom,
				Reason: fmt.Sprintf("containerd %d.%d takes one CNI bin_dir: %s is used", c.in.ContainerdVersion.Major(), c.in.ContainerdVersion.Minor(), existing[0])})
		}
	}
	c.setAt(base, conf, "conf_dir")
}

// hostPort checks a registry host[:port] the way Docker accepts it.
func hostPort(s string) bool {
	if s == "" || strings.ContainsAny(s, "/ \t\\\"'") {
		return false
	}
	h := s
	if hh, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return false
		}
		h = hh
	}
	return h != "" && !strings.Contains(h, ":") || net.ParseIP(strings.Trim(h, "[]")) != nil
}

func (c *converter) reg(name string) *registry {
	r := c.regs[name]
	if r == nil {
		r = &registry{name: name, server: "https://" + name}
		if name == dockerHubDirName {
			r.server = dockerHubServer
		}
		c.regs[name] = r
	}
	return r
}

func (c *converter) registries() error {
	d := c.in.Daemon
	insecure := map[string]bool{}
	for _, v := range d.strs("insecure-registries") {
		src := d.Get("insecure-registries").Source
		if strings.Contains(v, "://") {
			u, err := url.Parse(v)
			if err != nil || u.Host == "" {
				return &InputError{File: src, Key: "insecure-registries", Err: fmt.Errorf("not a registry: %q", v)}
			}
			v = u.Host
		}
		if _, _, err := net.ParseCIDR(v); err == nil {
			if v == "127.0.0.0/8" {
				continue // Docker's implicit default
			}
			c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "insecure-registries", Value: v, Source: src,
				Reason: "a CIDR: containerd looks up registries by host name; add certs.d/HOST/hosts.toml with skip_verify for each registry in it"})
			continue
		}
		if !hostPort(v) {
			return &InputError{File: src, Key: "insecure-registries", Err: fmt.Errorf("not a host[:port]: %q", v)}
		}
		insecure[v] = true
	}
	for _, m := range d.strs("registry-mirrors") {
		src := d.Get("registry-mirrors").Source
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return &InputError{File: src, Key: "registry-mirrors", Err: fmt.Errorf("want an http(s) URL, got %q", m)}
		}
		// A path (Artifactory's /artifactory/api/docker/REPO, Nexus's
		// /repository/REPO) is accepted by dockerd since 25.0 and the 24.0
		// backport (moby#46594, moby#46944), which sends PATH/v2/...;
		// containerd's hosts.toml appends /v2 to a [host] URL's path the same
		// way (core/remotes/docker/config/hosts.go parseHostConfig).
		p := strings.TrimSuffix(path.Clean("/"+u.Path), "/")
		mu := u.Scheme + "://" + u.Host + p
		mr := mirror{url: mu, host: u.Host}
		// Docker trusts a mirror that is in insecure-registries without
		// verifying its certificate, over the scheme given (moby registry
		// lookupV2Endpoints: the mirror's TLS config from newTLSConfig with
		// isSecure false); plain http has nothing to verify.
		mr.skipVerify = insecure[u.Host] && u.Scheme == "https"
		// Docker reads a mirror's CA and client certificate from
		// /etc/docker/certs.d/<mirror host>/; containerd uses only the TLS
		// settings of the [host] entry in docker.io's hosts.toml, so they are
		// attached there, pointing at the copies in certs.d/<mirror host>/
		// (relative paths are resolved against the hosts.toml directory).
		cas, clients := c.certFiles(u.Host)
		for _, ca := range cas {
			mr.ca = append(mr.ca, path.Join("..", u.Host, ca))
		}
		for _, cl := range clients {
			mr.client = append(mr.client, []string{path.Join("..", u.Host, cl[0]), path.Join("..", u.Host, cl[1])})
		}
		hub := c.reg(dockerHubDirName)
		hub.mirrors = append(hub.mirrors, mr)
	}
	for h := range insecure {
		r := c.reg(h)
		r.insecure = true
		r.server = "http://" + h
	}
	for _, name := range sortedKeys(c.in.Certs) {
		cas, clients := c.certFiles(name)
		files := map[string]bool{}
		for _, f := range c.in.Certs[name] {
			files[f.Name] = true
		}
		for _, f := range c.in.Certs[name] {
			if strings.HasSuffix(f.Name, ".cert") && !files[strings.TrimSuffix(f.Name, ".cert")+".key"] {
				c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "certs.d/" + name + "/" + f.Name, Reason: "client certificate without " + strings.TrimSuffix(f.Name, ".cert") + ".key: not carried over"})
			}
		}
		if len(cas)+len(clients) == 0 {
			continue
		}
		if !hostPort(name) {
			c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "certs.d/" + name, Reason: "not a registry host[:port] directory: not carried over"})
			continue
		}
		dir := name
		if name == "registry-1.docker.io" || name == "index.docker.io" {
			dir = dockerHubDirName
		}
		r := c.reg(dir)
		r.ca = append(r.ca, cas...)
		r.client = append(r.client, clients...)
		for _, f := range c.in.Certs[name] {
			pairCert := strings.HasSuffix(f.Name, ".cert") && files[strings.TrimSuffix(f.Name, ".cert")+".key"]
			pairKey := strings.HasSuffix(f.Name, ".key") && files[strings.TrimSuffix(f.Name, ".key")+".cert"]
			if strings.HasSuffix(f.Name, ".crt") || pairCert || pairKey {
				c.out.Files = append(c.out.Files, File{Path: path.Join(CertsDir, dir, f.Name), Data: f.Data})
			}
		}
	}
	return nil
}

// certFiles returns the CA files (*.crt) and client pairs (*.cert with its
// *.key) of /etc/docker/certs.d/NAME, as Docker reads them
// (moby registry ReadCertsDirectory).
func (c *converter) certFiles(name string) ([]string, [][]string) {
	var cas []string
	var clients [][]string
	files := map[string]bool{}
	for _, f := range c.in.Certs[name] {
		files[f.Name] = true
	}
	for _, f := range c.in.Certs[name] {
		switch {
		case strings.HasSuffix(f.Name, ".crt"):
			cas = append(cas, f.Name)
		case strings.HasSuffix(f.Name, ".cert"):
			if key := strings.TrimSuffix(f.Name, ".cert") + ".key"; files[key] {
				clients = append(clients, []string{f.Name, key})
			}
		}
	}
	return cas, clients
}

// httpFallback tells whether the target containerd tries HTTPS first, then
// plain HTTP, for an http:// host that has a TLS setting such as
// skip_verify: containerd 2.x and 1.7.27+ do (docker.NewHTTPFallback in
// core/remotes/docker/config/hosts.go ConfigureHosts); 1.6 and older 1.7
// only speak plain HTTP to it.
func (c *converter) httpFallback() bool {
	return c.in.ContainerdVersion.AtLeast(version.MustParseGeneric("1.7.27"))
}

func (c *converter) hostsFiles() error {
	for _, name := range sortedKeys(c.regs) {
		r := c.regs[name]
		t := newTable()
		hostTLS := func(path ...string) {
			if len(r.ca) > 0 {
				t.set(r.ca, append(path, "ca")...)
			}
			if len(r.client) > 0 {
				t.set(r.client, append(path, "client")...)
			}
		}
		for _, m := range r.mirrors {
			t.set([]string{"pull", "resolve"}, "host", m.url, "capabilities")
			if m.skipVerify {
				t.set(true, "host", m.url, "skip_verify")
			}
			if len(m.ca) > 0 {
				t.set(m.ca, "host", m.url, "ca")
			}
			if len(m.client) > 0 {
				t.set(m.client, "host", m.url, "client")
			}
		}
		all := []string{"pull", "resolve", "push"}
		switch {
		case r.insecure && !c.httpFallback():
			// Docker tries an insecure registry over HTTPS without verifying
			// its certificate first, then over plain HTTP (moby registry
			// lookupV2Endpoints). containerd 1.6 has no HTTPS-to-HTTP
			// fallback: an http:// server is spoken to in plain HTTP only, and
			// a registry on TLS answers "400 Bad Request". So HTTPS with
			// skip_verify is a [host] tried first, plain HTTP the server tried
			// after it (the resolver goes on to the next host on an error:
			// core/remotes/docker/resolver.go "trying next host").
			https := "https://" + name
			t.set(all, "host", https, "capabilities")
			t.set(true, "host", https, "skip_verify")
			hostTLS("host", https)
			t.set(r.server, "server")
		case r.insecure:
			// containerd 2.x and 1.7.27+ try HTTPS first for an http:// host
			// with a TLS setting and fall back to HTTP: Docker's order.
			t.set(r.server, "server")
			hostTLS()
			t.set(true, "skip_verify")
			t.set(all, "host", r.server, "capabilities")
			t.set(true, "host", r.server, "skip_verify")
			hostTLS("host", r.server)
		default:
			t.set(r.server, "server")
			hostTLS()
			// Always at least one [host] table: hosts.toml with only root-level
			// fields is "invalid host tree" in 1.6 and 1.7.0-1.7.31 (containerd#10027).
			if len(r.mirrors) == 0 || len(r.ca)+len(r.client) > 0 {
				t.set(all, "host", r.server, "capabilities")
				hostTLS("host", r.server)
			}
		}
		head := "# Generated by unshim convert from Docker's registry settings.\n"
		c.out.Files = append(c.out.Files, File{Path: path.Join(CertsDir, name, "hosts.toml"), Data: append([]byte(head), t.render()...)})
	}
	sort.Slice(c.out.Files, func(i, j int) bool { return c.out.Files[i].Path < c.out.Files[j].Path })
	return nil
}

// logs carries json-file/local rotation over to the kubelet (config.md §6).
func (c *converter) logs() error {
	d := c.in.Daemon
	driver := d.str("log-driver")
	var opts map[string]string
	if s := d.Get("log-opts"); s != nil {
		opts, _ = s.Value.(map[string]string)
	}
	if driver != "" && driver != "json-file" && driver != "local" {
		c.unmapped("log-driver", driver, "CRI always writes /var/log/pods files in CRI format: log agents reading Docker's logs need the cri parser")
		if len(opts) > 0 {
			c.unmapped("log-opts", opts, "options of log driver "+driver+": no equivalent")
		}
		return nil
	}
	if driver != "" {
		c.unmapped("log-driver", driver, "CRI writes /var/log/pods files in CRI text format, not Docker JSON: log agents need the cri parser")
	}
	kc := c.in.KubeletConfig
	kubeletSize, kubeletFiles := false, false
	for _, f := range c.in.KubeletFlags {
		kubeletSize = kubeletSize || f.Name == "container-log-max-size"
		kubeletFiles = kubeletFiles || f.Name == "container-log-max-files"
	}
	if kc != nil {
		kubeletSize = kubeletSize || kc.ContainerLogMaxSize != ""
		kubeletFiles = kubeletFiles || kc.ContainerLogMaxFiles != 0
	}
	for _, k := range sortedKeys(opts) {
		v := opts[k]
		src := d.Get("log-opts").Source
		switch k {
		case "max-size":
			q, err := dockerSizeToQuantity(v)
			if err != nil {
				return &InputError{File: src, Key: "log-opts.max-size", Err: err}
			}
			if kubeletSize {
				c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "log-opts.max-size", Value: v, Source: src, Reason: "the kubelet already sets containerLogMaxSize: kept"})
				continue
			}
			c.out.Kubelet["containerLogMaxSize"] = q
		case "max-file":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return &InputError{File: src, Key: "log-opts.max-file", Err: fmt.Errorf("want a positive integer, got %q", v)}
			}
			if kubeletFiles {
				c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "log-opts.max-file", Value: v, Source: src, Reason: "the kubelet already sets containerLogMaxFiles: kept"})
				continue
			}
			if n < 2 {
				c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "log-opts.max-file", Value: v, Source: src, Reason: "the kubelet needs at least 2 files: containerLogMaxFiles set to 2"})
				n = 2
			}
			c.out.Kubelet["containerLogMaxFiles"] = n
		default:
			c.out.Unmapped = append(c.out.Unmapped, Unmapped{Key: "log-opts." + k, Value: v, Source: src, Reason: "no kubelet or containerd equivalent (the kubelet compresses rotated logs itself)"})
		}
	}
	return nil
}

// dockerSizeToQuantity turns Docker's SI size ("10m", "1.5g", "100k") into
// a kubelet quantity with an integer number of bytes ("10M", "1500M", "100k").
func dockerSizeToQuantity(s string) (string, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	t = strings.TrimSuffix(t, "b")
	t = strings.TrimSuffix(t, "i") // Docker reads "mi" as SI too (units.FromHumanSize)
	mult := []struct {
		suffix string
		exp    int
	}{{"k", 1}, {"m", 2}, {"g", 3}, {"t", 4}, {"p", 5}}
	exp := 0
	for _, m := range mult {
		if strings.HasSuffix(t, m.suffix) {
			exp, t = m.exp, strings.TrimSpace(strings.TrimSuffix(t, m.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f > 1e18 {
		return "", fmt.Errorf("want a size like 10m, got %q", s)
	}
	suffixes := []string{"", "k", "M", "G", "T", "P"}
	// Use the largest unit that keeps the number whole.
	for e := exp; e >= 0; e-- {
		v := f
		for i := e; i < exp; i++ {
			v *= 1000
		}
		if v == float64(int64(v)) {
			return strconv.FormatInt(int64(v), 10) + suffixes[e], nil
		}
	}
	b := f
	for i := 0; i < exp; i++ {
		b *= 1000
	}
	return strconv.FormatInt(int64(b), 10), nil
}

func (c *converter) proxies() error {
	d := c.in.Daemon
	env := map[string]string{}
	var srcs []string
	for _, name := range sortedKeys(c.in.DockerEnvironment) {
		up := strings.ToUpper(name)
		if up == "HTTP_PROXY" || up == "HTTPS_PROXY" || up == "NO_PROXY" {
			env[up] = c.in.DockerEnvironment[name]
			srcs = append(srcs, c.in.DockerEnvironmentSource[name])
		}
	}
	if s := d.Get("proxies"); s != nil {
		p, _ := s.Value.(Proxies)
		for k, v := range map[string]string{"HTTP_PROXY": p.HTTPProxy, "HTTPS_PROXY": p.HTTPSProxy, "NO_PROXY": p.NoProxy} {
			if v != "" {
				env[k] = v // daemon.json beats the environment, as in dockerd
			}
		}
		srcs = append(srcs, s.Source)
	}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v, ok := env[k]; ok {
			if strings.ContainsAny(v, "\n\r") {
				return &InputError{Key: "proxies", Err: fmt.Errorf("%s contains a line break", k)}
			}
			c.proxyEnv = append(c.proxyEnv, [2]string{k, v})
		}
	}
	c.proxySrc = dedupe(srcs)
	return nil
}

func (c *converter) dropIns() {
	if len(c.proxyEnv) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "# Generated by unshim convert from %s.\n# Add the cluster's pod and service CIDRs and .svc,.cluster.local to NO_PROXY if they are missing.\n[Service]\n", strings.Join(c.proxySrc, ", "))
		for _, kv := range c.proxyEnv {
			fmt.Fprintf(&b, "Environment=%s\n", systemdQuote(kv[0]+"="+kv[1]))
		}
		c.out.Files = append(c.out.Files, File{Path: path.Join(DropInDir, "http-proxy.conf"), Data: []byte(b.String())})
	}
}

// systemdQuote quotes one Environment= assignment for a unit file.
func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
