package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/unshim/unshim/pkg/inventory"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/transport"
)

// NodeKubeletVersion is the kubelet of the lab's nodes: the last line with dockershim.
const NodeKubeletVersion = "v1.23.17"

// Node is a lab node: a Debian systemd machine booted with systemd-nspawn on
// the host's network, running Docker, containerd and a kubelet joined to the lab.
type Node struct {
	// Name is the Kubernetes node name.
	Name string `json:"name"`
	// Machine is the systemd-nspawn machine name (unique on the host).
	Machine string `json:"machine"`
	// Root is the node's root file system, a directory on the host.
	Root string `json:"root"`
	// PID is the systemd-nspawn process.
	PID int `json:"pid"`
	// PIDStart is PID's start time in clock ticks, which tells it from a reused pid.
	PIDStart uint64 `json:"pidStart"`
	// LeaderPID is the node's systemd (PID 1 inside), the target of nsenter.
	LeaderPID int `json:"leaderPID"`
	// LeaderStart is LeaderPID's start time in clock ticks, which tells it from a reused pid.
	LeaderStart uint64 `json:"leaderStart"`
	// Log is systemd-nspawn's output (the node's console).
	Log string `json:"log"`
	// NodeIP is the node's address: the host's, since nodes share its network.
	NodeIP string `json:"nodeIP"`
	// KubeletPort is the kubelet's port on NodeIP.
	KubeletPort int `json:"kubeletPort"`
	// PodCIDR is the range the node's CNI configuration gives pods.
	PodCIDR string `json:"podCIDR"`
	// RuntimeWrapper is true when Docker runs containers through RuntimeWrapperPath.
	RuntimeWrapper bool `json:"runtimeWrapper"`
	// SSHPort is where the node's sshd listens, on 127.0.0.1 (nodes share
	// the host's network, so each has its own port).
	SSHPort int `json:"sshPort,omitempty"`
	// Shape is how the kubelet reaches Docker as the lab made the node:
	// ShapeDockershim or ShapeCRIDockerd (a switch may change it since).
	Shape string `json:"shape"`
	// KubeletVersion is the node's kubelet.
	KubeletVersion string `json:"kubeletVersion"`
}

// SSHAddr is the node's sshd address.
func (n *Node) SSHAddr() string { return "127.0.0.1:" + strconv.Itoa(n.SSHPort) }

// SSHHostKey is the node's ed25519 host public key file, a node path.
const SSHHostKey = "/etc/ssh/ssh_host_ed25519_key.pub"

// nodePrereqs are the host commands a lab node needs.
var nodePrereqs = []struct{ cmd, pkg string }{
	{"systemd-nspawn", "systemd-container"},
	{"nsenter", "util-linux"},
	{"debootstrap", "debootstrap"},
	{"tar", "tar"},
	{"go", "Go"},
}

// CheckNodePrereqs tells why lab nodes cannot run on this machine, or returns nil.
func CheckNodePrereqs() error {
	if os.Geteuid() != 0 {
		return errors.New("lab nodes need root")
	}
	var missing []string
	for _, p := range nodePrereqs {
		if _, err := exec.LookPath(p.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", p.cmd, p.pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab nodes need %s: install hack/apt-packages.txt", strings.Join(missing, ", "))
	}
	return nil
}

// nodeName is the Kubernetes name of the i-th lab node (from 1).
func nodeName(i int) string { return "lab-node-" + strconv.Itoa(i) }

// Node returns the lab node called name.
func (l *Lab) Node(name string) (*Node, error) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("lab in %s has no node %q", l.Dir, name)
}

// Transport acts on the node: commands in all of its namespaces (nsenter),
// files through its root as its systemd sees it.
func (n *Node) Transport() *transport.Nsenter { return &transport.Nsenter{PID: n.LeaderPID} }

// Run runs args inside the node and returns their combined output; a failure
// is a *transport.ExecError that keeps the output.
func (n *Node) Run(ctx context.Context, args ...string) ([]byte, error) {
	if !n.leaderAlive() {
		return nil, fmt.Errorf("node %s is not running", n.Name)
	}
	out, err := n.Transport().Run(ctx, args...)
	if err != nil {
		return out, fmt.Errorf("on node %s: %w", n.Name, err)
	}
	return out, nil
}

// Alive reports whether the node's systemd-nspawn and systemd run.
func (n *Node) Alive() bool {
	return n.nspawnAlive() && n.leaderAlive()
}

// nspawnAlive reports whether the node's systemd-nspawn runs. It goes by pid
// and start time, not by name: just after fork the child has its parent's name.
func (n *Node) nspawnAlive() bool {
	st, err := procStartTime(n.PID)
	return err == nil && st == n.PIDStart
}

// findLeader records the node's systemd once systemd-nspawn has started it.
func (n *Node) findLeader() {
	if n.LeaderPID != 0 || !n.nspawnAlive() {
		return
	}
	if pid := containerInit(n.PID); pid > 0 {
		if st, err := procStartTime(pid); err == nil {
			n.LeaderPID, n.LeaderStart = pid, st
		}
	}
}

func (n *Node) leaderAlive() bool {
	st, err := procStartTime(n.LeaderPID)
	return err == nil && st == n.LeaderStart
}

// nodeArtifacts are the cached files lab nodes are made from.
type nodeArtifacts struct {
	kubelet, rootfs string
	// wrapper is the runtime wrapper binary, empty where CAP_SYS_RESOURCE is present.
	wrapper string
	// criDockerd is the lab's cri-dockerd, for ShapeCRIDockerd only.
	criDockerd string
	shape      NodeShape
}

// PrepareNodes builds and caches what lab nodes are made from (the kubelet,
// the Debian root, the helper programs) without starting anything, so that
// starting a node later takes seconds.
func PrepareNodes(ctx context.Context, logger log.Logger) error {
	if logger == nil {
		logger = log.NoopLogger()
	}
	if _, err := prepareNodes(ctx, logger, NodeShape{}); err != nil {
		return err
	}
	if _, err := prepareNodes(ctx, logger, NodeShape{Shape: ShapeCRIDockerd, KubeletVersion: NewestKubeletVersion}); err != nil {
		return err
	}
	_, err := ensureHelper(ctx, "pause")
	return err
}

func prepareNodes(ctx context.Context, logger log.Logger, shape NodeShape) (nodeArtifacts, error) {
	shape.complete()
	art := nodeArtifacts{shape: shape}
	if err := CheckNodePrereqs(); err != nil {
		return art, err
	}
	if err := shape.Validate(); err != nil {
		return art, err
	}
	var err error
	if art.kubelet, err = EnsureKubeBinary(ctx, logger, "kubelet", shape.KubeletVersion); err != nil {
		return art, err
	}
	if shape.Shape == ShapeCRIDockerd {
		if art.criDockerd, err = EnsureCRIDockerd(ctx, logger); err != nil {
			return art, err
		}
	}
	if art.rootfs, err = EnsureRootfs(ctx, logger, DefaultRootfs()); err != nil {
		return art, err
	}
	hasCap, err := HasCapSysResource()
	if err != nil {
		return art, err
	}
	if !hasCap {
		logger.V(1).Infof("CAP_SYS_RESOURCE is missing here: nodes run containers through %s", RuntimeWrapperPath)
		if art.wrapper, err = ensureHelper(ctx, "runcwrap"); err != nil {
			return art, err
		}
	}
	return art, nil
}

// addNodes starts lab nodes until the lab has o.Nodes of them.
func (l *Lab) addNodes(ctx context.Context, o Options) error {
	if o.Nodes <= len(l.Nodes) {
		return nil
	}
	art, err := prepareNodes(ctx, o.Logger, o.NodeShape)
	if err != nil {
		return err
	}
	if err := setHostSysctls(o.Logger); err != nil {
		return err
	}
	mounted, err := ensureNspawnRun()
	if err != nil {
		return err
	}
	if mounted {
		l.NspawnRunMounted = true
		if err := l.save(); err != nil {
			return err
		}
	}
	p, err := loadPKI(filepath.Join(l.Dir, "pki"))
	if err != nil {
		return err
	}
	for i := len(l.Nodes) + 1; i <= o.Nodes; i++ {
		start := time.Now()
		name := nodeName(i)
		o.Logger.V(0).Infof("starting node %s (Docker through %s, kubelet %s)", name, art.shape.Shape, art.shape.KubeletVersion)
		if err := l.startNode(ctx, o.Logger, p, name, art); err != nil {
			return errors.Join(fmt.Errorf("start node %s: %w", name, err), l.removeNode(name))
		}
		o.Logger.V(0).Infof("node %s Ready in %s", name, time.Since(start).Round(time.Second))
	}
	return nil
}

// startNode creates node name from the cached root, boots it, loads its
// images, starts its kubelet and waits until the Node is Ready.
func (l *Lab) startNode(ctx context.Context, logger log.Logger, p *pki, name string, art nodeArtifacts) error {
	dir := filepath.Join(l.Dir, "nodes", name)
	sum := sha256.Sum256([]byte(l.Dir))
	n := &Node{
		Name:           name,
		Machine:        name + "-" + hex.EncodeToString(sum[:3]),
		Root:           filepath.Join(dir, "rootfs"),
		Log:            l.logPath("node-" + name),
		RuntimeWrapper: art.wrapper != "",
		Shape:          art.shape.Shape,
		KubeletVersion: art.shape.KubeletVersion,
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	n.KubeletPort, n.SSHPort = ports[0], ports[2]
	n.PodCIDR, err = freePodCIDR()
	if err != nil {
		return err
	}
	logger.V(1).Infof("[%s] unpacking its root file system into %s", name, n.Root)
	if err := extractRootfs(ctx, art.rootfs, n.Root); err != nil {
		return err
	}
	if err := p.issueNode(name); err != nil {
		return err
	}
	nodeIP, err := hostIPv4()
	if err != nil {
		return err
	}
	n.NodeIP = nodeIP
	cfg := nodeConfig{Name: name, NodeIP: nodeIP, KubeletPort: ports[0], HealthzPort: ports[1], PodCIDR: n.PodCIDR, RuntimeWrapper: n.RuntimeWrapper,
		Shape: n.Shape, KubeletVersion: n.KubeletVersion}
	if err := l.writeNodeFiles(ctx, p, n, cfg, art); err != nil {
		return fmt.Errorf("write node files: %w", err)
	}
	logger.V(1).Infof("[%s] booting machine %s", name, n.Machine)
	if err := l.bootNode(ctx, n); err != nil {
		return err
	}
	if err := n.waitBooted(ctx, 120*time.Second); err != nil {
		return err
	}
	logger.V(1).Infof("[%s] loading images %s and %s into Docker", name, PauseImage, BusyboxImage)
	for _, img := range []string{"pause.tar", "busybox.tar"} {
		if _, err := n.Run(ctx, "docker", "load", "--input", filepath.Join(nodeImagesDir, img)); err != nil {
			return fmt.Errorf("load image %s: %w", img, err)
		}
	}
	if n.Shape == ShapeCRIDockerd {
		logger.V(1).Infof("[%s] starting cri-dockerd", name)
		if _, err := n.Run(ctx, "systemctl", "enable", "--now", nodeplan.CRIDockerdSocket, nodeplan.CRIDockerdService); err != nil {
			journal, _ := n.Run(ctx, "journalctl", "--no-pager", "--lines=30", "--unit="+nodeplan.CRIDockerdService)
			return fmt.Errorf("start cri-dockerd: %w\n%s", err, journal)
		}
	}
	logger.V(1).Infof("[%s] starting kubelet", name)
	if _, err := n.Run(ctx, "systemctl", "enable", "--now", "kubelet.service"); err != nil {
		return err
	}
	return l.waitNodeReady(ctx, n, cfg.criSocket(), 180*time.Second)
}

// nodeImagesDir is where a node keeps the image archives it loads.
const nodeImagesDir = "/var/lib/unshim-lab/images"

// writeNodeFiles writes the kubeadm-style files, Docker's and CNI's
// configuration, the kubelet and the images into the node's root.
func (l *Lab) writeNodeFiles(ctx context.Context, p *pki, n *Node, cfg nodeConfig, art nodeArtifacts) error {
	ca, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	crt, err := os.ReadFile(p.path("node-" + n.Name + ".crt"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(p.path("node-" + n.Name + ".key"))
	if err != nil {
		return err
	}
	kubeconfig, err := kubeletKubeconfig(l.APIServerURL, ca, crt, key)
	if err != nil {
		return err
	}
	kubeletCfg, err := cfg.kubeletConfig()
	if err != nil {
		return err
	}
	daemon, err := cfg.daemonJSON()
	if err != nil {
		return err
	}
	cni, err := cfg.cniConfig()
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{KubeletUnitPath, []byte(kubeletUnit), 0o644},
		{KubeletDropInPath, []byte(kubeletDropIn), 0o644},
		{KubeadmFlagsPath, cfg.kubeadmFlags(), 0o644},
		{KubeletDefaultsPath, cfg.kubeletDefaults(), 0o644},
		{KubeletConfigPath, kubeletCfg, 0o644},
		{KubeletKubeconfig, kubeconfig, 0o600},
		{NodeCACertPath, ca, 0o644},
		{DockerDaemonJSONPath, append(daemon, '\n'), 0o644},
		{CNIConfigPath, append(cni, '\n'), 0o644},
		{"/etc/hostname", []byte(n.Name + "\n"), 0o644},
		// sshd on its own loopback port: the nodes share the host's network.
		{"/etc/ssh/sshd_config.d/unshim-lab.conf", []byte("Port " + strconv.Itoa(n.SSHPort) + "\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"), 0o644},
	}
	for _, f := range files {
		if err := writeRootFile(n.Root, f.path, f.data, f.perm); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(n.Root, "etc/kubernetes/manifests"), 0o755); err != nil {
		return err
	}
	if err := copyFile(art.kubelet, filepath.Join(n.Root, "usr/bin/kubelet"), 0o755); err != nil {
		return err
	}
	if art.wrapper != "" {
		if err := copyFile(art.wrapper, filepath.Join(n.Root, RuntimeWrapperPath), 0o755); err != nil {
			return err
		}
	}
	if cfg.Shape == ShapeCRIDockerd {
		if err := installCRIDockerd(n.Root, art.criDockerd); err != nil {
			return err
		}
	}
	_, err = writeNodeImages(ctx, n.Root, filepath.Join(n.Root, nodeImagesDir))
	return err
}

// writeRootFile writes data at path inside root, creating its directories.
func writeRootFile(root, path string, data []byte, perm os.FileMode) error {
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(full, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// nspawnArgs are systemd-nspawn's arguments for node n. The node shares the
// host's network (no --private-network), so it reaches the apiserver on
// 127.0.0.1. runc needs the keyring syscalls, the kubelet /dev/kmsg.
func (n *Node) nspawnArgs() []string {
	return []string{
		"--boot", "--directory=" + n.Root, "--machine=" + n.Machine,
		"--register=no", "--keep-unit", "--capability=all", "--console=passive",
		"--system-call-filter=add_key keyctl request_key bpf perf_event_open",
		"--bind=/dev/kmsg",
	}
}

// bootNode starts systemd-nspawn for a new node n, records it at once in the
// lab state (so `lab down` finds it whatever happens next), then finds the
// node's systemd.
func (l *Lab) bootNode(ctx context.Context, n *Node) error {
	l.Nodes = append(l.Nodes, n)
	return l.bootMachine(ctx, n)
}

// bootMachine starts systemd-nspawn for n, a node of the lab.
func (l *Lab) bootMachine(ctx context.Context, n *Node) error {
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	c := exec.Command("systemd-nspawn", n.nspawnArgs()...)
	// cgroup v2 inside: the host's v1 controllers are read-only in the node, and Docker could not create containers.
	c.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start systemd-nspawn: %w", err)
	}
	l.cmds = append(l.cmds, c)
	n.PID = c.Process.Pid
	if n.PIDStart, err = procStartTime(n.PID); err != nil {
		return fmt.Errorf("systemd-nspawn exited at once (log: %s): %w", n.Log, err)
	}
	if err := l.save(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n.findLeader(); n.LeaderPID != 0 {
			return l.save()
		}
		if !n.nspawnAlive() {
			return fmt.Errorf("systemd-nspawn exited (log: %s):\n%s", n.Log, tailFile(n.Log, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %s: systemd did not start (log: %s)", n.Name, n.Log)
}

// waitBooted waits until the node's systemd finished booting and Docker runs.
func (n *Node) waitBooted(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Until the node's systemd listens, systemctl cannot reach it ("offline",
	// "Failed to connect to bus"): ask again until the deadline. "degraded"
	// still boots the node: a unit unfit for a container may fail.
	for {
		out, err := n.Run(ctx, "systemctl", "is-system-running", "--wait")
		state := strings.TrimSpace(string(out))
		if err == nil || state == "degraded" {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s did not boot (state %q): %w", n.Name, state, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, unit := range []string{"containerd.service", "docker.service"} {
		if _, err := n.Run(ctx, "systemctl", "is-active", "--quiet", unit); err != nil {
			journal, _ := n.Run(ctx, "journalctl", "--no-pager", "--lines=30", "--unit="+unit)
			return fmt.Errorf("node %s: %s is not active:\n%s", n.Name, unit, journal)
		}
	}
	return nil
}

// waitNodeReady waits for the Node to register and turn Ready, then records
// its CRI socket in kubeadm's annotation, as `kubeadm join` does.
func (l *Lab) waitNodeReady(ctx context.Context, n *Node, criSocket string, timeout time.Duration) error {
	c, err := l.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		node, err := c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err == nil && nodeReady(node) {
			break
		}
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			return fmt.Errorf("get node %s: %w", n.Name, err)
		}
		if !n.Alive() {
			return fmt.Errorf("node %s stopped (log: %s)", n.Name, n.Log)
		}
		select {
		case <-ctx.Done():
			journal, _ := n.Run(context.Background(), "journalctl", "--no-pager", "--lines=30", "--unit=kubelet.service")
			return fmt.Errorf("node %s not Ready (%w, timeout %s); kubelet's journal:\n%s", n.Name, ctx.Err(), timeout, journal)
		case <-time.After(time.Second):
		}
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, inventory.CRISocketAnnotation, criSocket)
	if _, err := c.CoreV1().Nodes().Patch(ctx, n.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotate node %s: %w", n.Name, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stop shuts the node down: SIGTERM makes systemd-nspawn ask the node's
// systemd for an orderly shutdown; whatever still runs after that is killed
// with the node's PID namespace.
func (n *Node) stop() error {
	n.findLeader()
	if n.nspawnAlive() {
		// A systemd-nspawn still setting the node up may miss the first SIGTERM: repeat it.
		deadline := time.Now().Add(45 * time.Second)
		for next := time.Now(); n.nspawnAlive() && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			n.findLeader()
			if time.Now().After(next) {
				_ = syscall.Kill(n.PID, syscall.SIGTERM)
				next = time.Now().Add(5 * time.Second)
			}
		}
	}
	n.kill()
	var errs []error
	if n.nspawnAlive() {
		errs = append(errs, fmt.Errorf("systemd-nspawn (pid %d) still running", n.PID))
	}
	if n.leaderAlive() {
		errs = append(errs, fmt.Errorf("node systemd (pid %d) still running", n.LeaderPID))
	}
	return errors.Join(errs...)
}

// kill kills what is left of the node at once: its init, and with it every
// process of its PID namespace, then systemd-nspawn.
func (n *Node) kill() {
	if n.leaderAlive() {
		_ = syscall.Kill(n.LeaderPID, syscall.SIGKILL)
		waitGone(n.leaderAlive, 10*time.Second)
	}
	if n.nspawnAlive() {
		_ = syscall.Kill(-n.PID, syscall.SIGKILL)
		_ = syscall.Kill(n.PID, syscall.SIGKILL)
		waitGone(n.nspawnAlive, 10*time.Second)
	}
}

// removeNode stops the node called name if it was started, and forgets it:
// a node that failed to start does not stay behind in a lab that goes on running.
func (l *Lab) removeNode(name string) error {
	for i, n := range l.Nodes {
		if n.Name != name {
			continue
		}
		if err := n.stop(); err != nil {
			return fmt.Errorf("stop node %s: %w", name, err)
		}
		l.reap(n.PID)
		l.Nodes = append(l.Nodes[:i], l.Nodes[i+1:]...)
		if err := l.save(); err != nil {
			return err
		}
		break
	}
	dir := filepath.Join(l.Dir, "nodes", name)
	if mounts, err := MountsUnder(dir); err != nil || len(mounts) > 0 {
		return fmt.Errorf("node %s: not removing %s, mounts %v are left (%v)", name, dir, mounts, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove node %s: %w", name, err)
	}
	return nil
}

// reap waits for pid if this process started it and it has exited, so it
// does not stay a zombie.
func (l *Lab) reap(pid int) {
	for i, c := range l.cmds {
		if c.Process.Pid == pid {
			if _, err := procStartTime(pid); err != nil {
				_ = c.Wait()
				l.cmds = append(l.cmds[:i], l.cmds[i+1:]...)
			}
			return
		}
	}
}

// waitGone polls alive until it is false or timeout passes.
func waitGone(alive func() bool, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for alive() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}

// stopNodes stops every node of the lab, newest first, and unmounts what is
// left mounted below the nodes' directory.
func (l *Lab) stopNodes() error {
	var errs []error
	for i := len(l.Nodes) - 1; i >= 0; i-- {
		if err := l.Nodes[i].stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop node %s: %w", l.Nodes[i].Name, err))
		}
	}
	mounts, err := MountsUnder(filepath.Join(l.Dir, "nodes"))
	if err != nil {
		errs = append(errs, err)
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], 0); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	if l.NspawnRunMounted && len(errs) == 0 {
		if err := releaseNspawnRun(); err != nil {
			errs = append(errs, err)
		}
		l.NspawnRunMounted = false
	}
	return errors.Join(errs...)
}

// containerInit returns the child of pid that is PID 1 of a new PID
// namespace (systemd-nspawn's container), or 0. systemd-nspawn's short-lived
// helper child stays in this namespace and is skipped.
func containerInit(pid int) int {
	self, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(data)) {
		child, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", child)); err == nil && ns != self {
			return child
		}
	}
	return 0
}

// procStartTime returns the start time of pid (field 22 of /proc/PID/stat), failing for a zombie.
func procStartTime(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(stat)
	i := strings.LastIndex(s, ")")
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || f[0] == "Z" {
		return 0, fmt.Errorf("process %d is gone", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// freePodCIDR picks a /24 in 10.200.0.0/13 that no route of this host uses yet:
// every lab node shares the host's routing table.
func freePodCIDR() (string, error) {
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("read routes: %w", err)
	}
	for range 100 {
		b, c := 200+rand.IntN(8), rand.IntN(256)
		// /proc/net/route shows addresses as little-endian hex: 10.b.c.d is ddccbb0a.
		suffix := fmt.Sprintf("%02X%02X0A", c, b)
		used := false
		for _, line := range strings.Split(string(routes), "\n") {
			if f := strings.Fields(line); len(f) > 1 && len(f[1]) == 8 && strings.HasSuffix(f[1], suffix) {
				used = true
				break
			}
		}
		if !used {
			return fmt.Sprintf("10.%d.%d.0/24", b, c), nil
		}
	}
	return "", errors.New("no free pod range in 10.200.0.0/13")
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tail(string(data), n)
}
