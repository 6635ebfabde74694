package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/unshim/unshim/pkg/transport"
)

// The simulated node lives only in this benchmark: a transport.Transport
// over an in-memory file tree holding what a kubeadm Docker node of the lab
// holds (pkg/lab/nodeconfig.go), answering the commands the switch's phases
// run, with fixed sleeps where a real node waits on a service, and a
// simulated kubelet that, restarted on containerd, reports the new runtime
// and a fresh heartbeat through the Node's status subresource and renews
// its Lease, as a real kubelet would.

// Versions a simulated node reports, before and after its switch.
const (
	simDockerRuntime     = "docker://20.10.24"
	simContainerdRuntime = "containerd://2.2.0"
	simKubeletVersion    = "v1.23.17"
	simPauseImage        = "registry.k8s.io/pause:3.6"
	simContainerdVersion = "containerd github.com/containerd/containerd/v2 v2.2.0 1c4457e00facac03ce1d75f7b6777a7a851e5c41"
)

// simTiming are the fixed waits of a simulated node's services. Their sum
// (plus the drain's wait for kwok to delete the evicted pod) is the floor
// of one node's switch.
type simTiming struct {
	StopKubelet, StopDocker, RestartContainerd, RestartKubelet, KubeletReady time.Duration
}

func (t simTiming) total() time.Duration {
	return t.StopKubelet + t.StopDocker + t.RestartContainerd + t.RestartKubelet + t.KubeletReady
}

// simTimings are the simulated nodes' service times, picked with
// UNSHIM_BENCH_KWOK_TIMING:
//   - lab (the default): the times a real switch takes on a lab node
//     (BenchmarkSwitchNode with UNSHIM_BENCH_LOG, kubelet 1.23.17, Docker
//     20.10.24 to containerd 1.6.20, three switches): stop-kubelet 0.07-0.11 s,
//     stop-docker 1.33-1.35 s, start-containerd 0.23-0.24 s, start-kubelet
//     0.03 s, and 7.4-7.5 s from the kubelet's start to the node Ready with
//     the new runtime. A node's switch takes 10-12 s here; so the wall time
//     against the ideal measures the driver, not the simulation's start-up.
//   - fast: a tenth of that, to stress the driver and the apiserver: every
//     fixed cost of a wave weighs ten times as much against the ideal.
var simTimings = map[string]simTiming{
	"lab": {
		StopKubelet:       100 * time.Millisecond,
		StopDocker:        1350 * time.Millisecond,
		RestartContainerd: 250 * time.Millisecond,
		RestartKubelet:    30 * time.Millisecond,
		KubeletReady:      7450 * time.Millisecond,
	},
	"fast": {
		StopKubelet:       200 * time.Millisecond,
		StopDocker:        300 * time.Millisecond,
		RestartContainerd: 300 * time.Millisecond,
		RestartKubelet:    200 * time.Millisecond,
		KubeletReady:      500 * time.Millisecond,
	},
}

type simFile struct {
	data []byte
	mode os.FileMode
}

// simNode is one simulated Docker node.
type simNode struct {
	name    string
	kubelet kubernetes.Interface // the simulated kubelet's client, counted apart
	timing  simTiming
	argv    *argvLog

	mu      sync.Mutex
	files   map[string]simFile
	active  map[string]bool
	enabled map[string]bool
	// kubeletErr is the simulated kubelet's last failure to report.
	kubeletErr error
	wg         sync.WaitGroup
}

var _ transport.Transport = (*simNode)(nil)

// argvLog keeps every distinct command shape the phases sent (the first two
// words), and the ones the simulated node did not know.
type argvLog struct {
	mu      sync.Mutex
	seen    map[string]int
	unknown map[string]int
}

func newArgvLog() *argvLog { return &argvLog{seen: map[string]int{}, unknown: map[string]int{}} }

func (a *argvLog) add(argv []string, known bool) {
	key := strings.Join(argv[:min(2, len(argv))], " ")
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen[key]++
	if !known {
		a.unknown[strings.Join(argv, " ")]++
	}
}

func (a *argvLog) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k, n := range a.seen {
		out = append(out, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func (a *argvLog) unknowns() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k := range a.unknown {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// simTemplate is a kubeadm Docker node's files, after pkg/lab/nodeconfig.go
// (kubeadm 1.23's kubeadm-flags.env and 10-kubeadm.conf, Docker's packaged
// containerd with its CRI plugin disabled, a bridge CNI config).
func simTemplate(name string) map[string]simFile {
	f := func(s string) simFile { return simFile{data: []byte(s), mode: 0o644} }
	x := simFile{data: []byte("\x7fELF"), mode: 0o755}
	return map[string]simFile{
		"/etc/hostname":                      f(name + "\n"),
		"/etc/machine-id":                    f(simMachineID(name) + "\n"),
		"/etc/fstab":                         f("UUID=0b4c0a4e-93e4-4b4a-9c4a-1f2e3d4c5b6a / ext4 errors=remount-ro 0 1\n"),
		"/proc/sys/kernel/osrelease":         f("5.15.0-91-generic\n"),
		"/proc/1/mounts":                     f("/dev/sda1 / ext4 rw,relatime 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"),
		"/var/lib/kubelet/kubeadm-flags.env": f(`KUBELET_KUBEADM_ARGS="--container-runtime=docker --network-plugin=cni --pod-infra-container-image=` + simPauseImage + "\"\n"),
		"/var/lib/kubelet/config.yaml": f(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`),
		"/lib/systemd/system/kubelet.service": f("[Unit]\nDescription=kubelet: The Kubernetes Node Agent\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\nStartLimitInterval=0\nRestartSec=10\n\n[Install]\nWantedBy=multi-user.target\n"),
		"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": f(`[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`),
		"/etc/docker/daemon.json":                f("{\n  \"exec-opts\": [\"native.cgroupdriver=systemd\"],\n  \"log-driver\": \"json-file\",\n  \"log-opts\": {\"max-size\": \"10m\", \"max-file\": \"3\"}\n}\n"),
		"/lib/systemd/system/docker.service":     f("[Unit]\nDescription=Docker Application Container Engine\nAfter=network-online.target docker.socket containerd.service\nRequires=docker.socket\nWants=containerd.service\n\n[Service]\nType=notify\nExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n\n[Install]\nWantedBy=multi-user.target\n"),
		"/lib/systemd/system/docker.socket":      f("[Unit]\nDescription=Docker Socket for the API\n\n[Socket]\nListenStream=/run/docker.sock\nSocketMode=0660\nSocketUser=root\nSocketGroup=docker\n\n[Install]\nWantedBy=sockets.target\n"),
		"/lib/systemd/system/containerd.service": f("[Unit]\nDescription=containerd container runtime\nAfter=network.target local-fs.target\n\n[Service]\nExecStartPre=-/sbin/modprobe overlay\nExecStart=/usr/bin/containerd\nType=notify\nDelegate=yes\nKillMode=process\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n"),
		// What Docker's containerd.io package ships: the CRI plugin off.
		"/etc/containerd/config.toml":            f("disabled_plugins = [\"cri\"]\n"),
		"/etc/cni/net.d/10-bridge.conflist":      f(`{"cniVersion":"0.4.0","name":"bridge","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]}` + "\n"),
		"/opt/cni/bin/bridge":                    x,
		"/opt/cni/bin/host-local":                x,
		"/opt/cni/bin/loopback":                  x,
		"/opt/cni/bin/portmap":                   x,
		"/usr/bin/containerd":                    x,
		"/usr/bin/ctr":                           x,
		"/usr/bin/runc":                          x,
		"/usr/bin/dockerd":                       x,
		"/usr/bin/docker":                        x,
		"/usr/bin/kubelet":                       x,
		"/etc/kubernetes/pki/ca.crt":             f("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		"/etc/kubernetes/bootstrap-kubelet.conf": f("apiVersion: v1\nkind: Config\n"),
	}
}

// simMachineID is the node's /etc/machine-id, as its kubelet reports it in
// nodeInfo.machineID (the switch compares the two before it touches a node).
func simMachineID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

func newSimNode(name string, kubelet kubernetes.Interface, timing simTiming, argv *argvLog) *simNode {
	return &simNode{
		name: name, kubelet: kubelet, timing: timing, argv: argv,
		files:   simTemplate(name),
		active:  map[string]bool{"docker.service": true, "docker.socket": true, "containerd.service": true, "kubelet.service": true},
		enabled: map[string]bool{"docker.service": true, "docker.socket": true, "containerd.service": true, "kubelet.service": true},
	}
}

func clean(p string) string { return path.Clean("/" + p) }

func (s *simNode) ReadFile(_ context.Context, p string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[clean(p)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), f.data...), nil
}

func (s *simNode) WriteFile(_ context.Context, p string, data []byte, perm os.FileMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[clean(p)] = simFile{data: append([]byte(nil), data...), mode: perm}
	return nil
}

func (s *simNode) Remove(_ context.Context, p string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, clean(p))
	return nil
}

func (s *simNode) Mode(_ context.Context, p string) (os.FileMode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[clean(p)]
	if !ok {
		return 0, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
	return f.mode, nil
}

// exit is a command's failure, as the transports report one.
func exit(argv []string, out string, code int) ([]byte, error) {
	return []byte(out), &transport.ExecError{Argv: argv, Output: []byte(out), Err: fmt.Errorf("exit status %d", code)}
}

// Run answers the commands the phases send.
func (s *simNode) Run(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty argv")
	}
	if argv[0] == "env" { // env K=V... CMD: the proxies of containerd's unit
		i := 1
		for i < len(argv) && strings.Contains(argv[i], "=") {
			i++
		}
		argv = argv[i:]
	}
	out, err, known := s.run(ctx, argv)
	s.argv.add(argv, known)
	return out, err
}

func (s *simNode) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (s *simNode) run(ctx context.Context, argv []string) ([]byte, error, bool) {
	args := argv[1:]
	switch argv[0] {
	case "hostname":
		return []byte(s.name + "\n"), nil, true
	case "true", "journalctl", "systemd-run":
		if argv[0] == "systemd-run" {
			for _, a := range args {
				if u, ok := strings.CutPrefix(a, "--unit="); ok {
					s.mu.Lock()
					s.active[u] = true
					s.mu.Unlock()
				}
			}
		}
		return nil, nil, true
	case "mkdir":
		return nil, nil, true
	case "rm":
		s.mu.Lock()
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				continue
			}
			p := clean(a)
			for f := range s.files {
				if f == p || strings.HasPrefix(f, p+"/") {
					delete(s.files, f)
				}
			}
		}
		s.mu.Unlock()
		return nil, nil, true
	case "test":
		if len(args) != 2 {
			return nil, nil, false
		}
		s.mu.Lock()
		f, ok := s.files[clean(args[1])]
		s.mu.Unlock()
		switch args[0] {
		case "-e", "-f":
		case "-x":
			ok = ok && f.mode&0o111 != 0
		case "-S":
			ok = false // no sockets in memory
		default:
			return nil, nil, false
		}
		if !ok {
			out, err := exit(argv, "", 1)
			return out, err, true
		}
		return nil, nil, true
	case "df":
		return []byte("       Avail\n107374182400\n"), nil, true
	case "ls":
		dir := clean(args[len(args)-1])
		s.mu.Lock()
		seen := map[string]bool{}
		for f := range s.files {
			if rest, ok := strings.CutPrefix(f, dir+"/"); ok {
				seen[strings.SplitN(rest, "/", 2)[0]] = true
			}
		}
		s.mu.Unlock()
		if len(seen) == 0 {
			out, err := exit(argv, "ls: cannot access '"+dir+"': No such file or directory\n", 2)
			return out, err, true
		}
		var names []string
		for n := range seen {
			names = append(names, n)
		}
		sort.Strings(names)
		return []byte(strings.Join(names, "\n") + "\n"), nil, true
	case "tar":
		out, err := s.tar(args)
		return out, err, true
	case "containerd":
		return []byte(simContainerdVersion + "\n"), nil, true
	case "ctr":
		return s.ctr(argv)
	case "docker":
		if len(args) >= 2 && args[0] == "image" && args[1] == "inspect" {
			if strings.Contains(strings.Join(args, " "), "{{.Size}}") {
				return []byte("682696\n"), nil, true
			}
			// Pulled from a registry: a repo digest, so nothing to save.
			ref := args[len(args)-1]
			return []byte(`["` + strings.SplitN(ref, ":", 2)[0] + `@sha256:3d380ca8864549e74af4b29c10f9cb0956236dfb01c40ca076fb6c37253234db"]` + "\n"), nil, true
		}
		if len(args) >= 1 && (args[0] == "ps" || args[0] == "stop") {
			return nil, nil, true // the drained node's containers: none left
		}
		return nil, nil, false
	case "systemctl":
		return s.systemctl(ctx, argv)
	}
	return nil, nil, false
}

func (s *simNode) ctr(argv []string) ([]byte, error, bool) {
	joined := strings.Join(argv, " ")
	switch {
	case strings.Contains(joined, "plugins ls"):
		// The rehearsal's containerd (--address) loads the converted
		// config; the node's own loads the CRI once the config enables it.
		s.mu.Lock()
		cfg := string(s.files["/etc/containerd/config.toml"].data)
		running := s.active["containerd.service"]
		s.mu.Unlock()
		cri := strings.Contains(joined, "--address") || (running && !strings.Contains(cfg, `disabled_plugins = ["cri"]`))
		state := "skip"
		if cri {
			state = "ok"
		}
		return []byte("TYPE                            ID                       PLATFORMS      STATUS\n" +
			"io.containerd.content.v1        content                  -              ok\n" +
			"io.containerd.grpc.v1           cri                      linux/amd64    " + state + "\n"), nil, true
	case strings.Contains(joined, "images ls"):
		return []byte(simPauseImage + "\n"), nil, true
	case strings.Contains(joined, "tasks ls"):
		return nil, nil, true
	case strings.Contains(joined, "content fetch"), strings.Contains(joined, "images import"), strings.Contains(joined, "tasks kill"):
		return nil, nil, true
	}
	return nil, nil, false
}

func (s *simNode) systemctl(ctx context.Context, argv []string) ([]byte, error, bool) {
	if len(argv) < 2 {
		return nil, nil, false
	}
	verb, units := argv[1], argv[2:]
	var flags []string
	for len(units) > 0 && strings.HasPrefix(units[0], "--") {
		flags, units = append(flags, units[0]), units[1:]
	}
	unit := func(u string) string {
		if !strings.Contains(u, ".") {
			return u + ".service"
		}
		return u
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch verb {
	case "daemon-reload", "reset-failed":
		return nil, nil, true
	case "is-active":
		if s.active[unit(units[0])] {
			return []byte("active\n"), nil, true
		}
		out, err := exit(argv, "inactive\n", 3)
		return out, err, true
	case "is-enabled":
		if s.enabled[unit(units[0])] {
			return []byte("enabled\n"), nil, true
		}
		out, err := exit(argv, "disabled\n", 1)
		return out, err, true
	case "enable", "disable":
		for _, u := range units {
			s.enabled[unit(u)] = verb == "enable"
			if slices(flags, "--now") {
				s.active[unit(u)] = verb == "enable"
			}
		}
		return nil, nil, true
	case "start", "stop", "restart":
		var wait time.Duration
		for _, u := range units {
			u = unit(u)
			switch {
			case u == "kubelet.service" && verb == "stop":
				wait = max(wait, s.timing.StopKubelet)
			case u == "docker.service" && verb == "stop":
				wait = max(wait, s.timing.StopDocker)
			case u == "containerd.service" && verb != "stop":
				wait = max(wait, s.timing.RestartContainerd)
			case u == "kubelet.service" && verb != "stop":
				wait = max(wait, s.timing.RestartKubelet)
			}
			s.active[u] = verb != "stop"
		}
		s.mu.Unlock()
		err := s.sleep(ctx, wait)
		s.mu.Lock()
		if err != nil {
			return nil, err, true
		}
		for _, u := range units {
			if unit(u) == "kubelet.service" && verb != "stop" {
				s.startKubelet()
			}
		}
		return nil, nil, true
	}
	return nil, nil, false
}

func slices(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// startKubelet is the simulated kubelet starting: after KubeletReady it
// reports the runtime its flags name, Ready with a fresh heartbeat, through
// the status subresource, and renews its Lease. s.mu is held.
func (s *simNode) startKubelet() {
	flags := string(s.files["/var/lib/kubelet/kubeadm-flags.env"].data)
	rt := simDockerRuntime
	if strings.Contains(flags, "containerd.sock") {
		rt = simContainerdRuntime
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(s.timing.KubeletReady)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := s.report(ctx, rt)
		s.mu.Lock()
		s.kubeletErr = err
		s.mu.Unlock()
	}()
}

// report renews the node's Lease, then reports the node Ready: a real
// kubelet starts its lease controller and its status sync together
// (kubelet.go, Kubelet.Run), and the lease controller renews at once, while
// Ready waits for the runtime's first status check, so the Lease is renewed
// first.
func (s *simNode) report(ctx context.Context, rt string) error {
	leases := s.kubelet.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	// kwok renews the same Lease: a conflict is retried, as the kubelet's
	// lease controller does.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, s.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			holder, secs := s.name, int32(40)
			_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: s.name},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &metav1.MicroTime{Time: time.Now()}}}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("simulated kubelet on %s: renew lease: %w", s.name, err)
	}
	now := metav1.NewTime(time.Now())
	patch := fmt.Sprintf(`{"status":{"nodeInfo":{"containerRuntimeVersion":%q},"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status","lastHeartbeatTime":%q}]}}`,
		rt, now.UTC().Format(time.RFC3339))
	if _, err := s.kubelet.CoreV1().Nodes().PatchStatus(ctx, s.name, []byte(patch)); err != nil {
		return fmt.Errorf("simulated kubelet on %s: report status: %w", s.name, err)
	}
	return nil
}

// tar writes the requested trees (and, after --no-recursion, directories
// only) of the in-memory tree as `tar --create --file=-` would.
func (s *simNode) tar(args []string) ([]byte, error) {
	var trees, dirsOnly []string
	rec := true
	for _, a := range args {
		switch {
		case a == "--no-recursion":
			rec = false
		case strings.HasPrefix(a, "-"):
		case rec:
			trees = append(trees, clean(a))
		default:
			dirsOnly = append(dirsOnly, clean(a))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for f := range s.files {
		for _, t := range trees {
			if f == t || strings.HasPrefix(f, t+"/") {
				names = append(names, f)
				break
			}
		}
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirsOnly {
		for f := range s.files {
			if strings.HasPrefix(f, d+"/") {
				if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	for _, n := range names {
		f := s.files[n]
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(n, "/"), Typeflag: tar.TypeReg, Mode: int64(f.mode), Size: int64(len(f.data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// wait waits for the simulated kubelet's reports and returns its last error.
func (s *simNode) wait() error {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kubeletErr
}
