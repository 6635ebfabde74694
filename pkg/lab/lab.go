// Package lab owns unshim's test lab: a real etcd (Debian's etcd-server) and a
// real kube-apiserver built from pinned Go modules, on loopback with free
// ports and a PKI of its own, started and stopped from Go, and optionally
// Docker nodes: Debian machines booted with systemd-nspawn, running a
// dockershim kubelet joined to it (node.go). Commands (`unshim lab
// up|down|status|prepare`) and tests use the same code.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/unshim/unshim/pkg/log"
)

// Options configure a lab.
type Options struct {
	// Dir holds the lab's state, PKI, data and logs; DefaultDir() when empty.
	Dir string
	// KubeVersion is the control plane's version; DefaultKubeVersion when empty.
	KubeVersion string
	// Logger receives progress; a no-op logger when nil.
	Logger log.Logger
	// Controllers also starts kube-controller-manager and kube-scheduler.
	Controllers bool
	// Nodes is how many Docker nodes (systemd-nspawn machines with a kubelet
	// NodeKubeletVersion) the lab should have; 0 starts the control plane only.
	Nodes int
	// NodeShape is what the nodes this call starts look like (nodes the lab
	// has already keep theirs): dockershim on kubelet 1.23 by default.
	NodeShape NodeShape
}

// Process is one process the lab started.
type Process struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	Log  string `json:"log"`
	// Bin and Args start it again (RestartProcess).
	Bin  string   `json:"bin,omitempty"`
	Args []string `json:"args,omitempty"`
}

// Lab is a running (or recorded) lab.
type Lab struct {
	Dir          string    `json:"dir"`
	KubeVersion  string    `json:"kubeVersion"`
	Kubeconfig   string    `json:"kubeconfig"`
	APIServerURL string    `json:"apiServerURL"`
	EtcdURL      string    `json:"etcdURL"`
	Processes    []Process `json:"processes"`
	Started      time.Time `json:"started"`
	// Controllers is true when kube-controller-manager and kube-scheduler run.
	Controllers bool `json:"controllers,omitempty"`
	// Nodes are the lab's nodes, in start order.
	Nodes []*Node `json:"nodes,omitempty"`
	// NspawnRunMounted is true when the lab mounted the tmpfs on /run/systemd/nspawn.
	NspawnRunMounted bool `json:"nspawnRunMounted,omitempty"`

	// cmds are the processes started by this process, so Down can reap them.
	cmds []*exec.Cmd
}

const stateFile = "lab.json"

// DefaultDir is where the lab lives unless told otherwise: $UNSHIM_LAB, else
// unshim-lab in /dev/shm (etcd on tmpfs is fast) or the temp directory.
func DefaultDir() string {
	if d := os.Getenv("UNSHIM_LAB"); d != "" {
		return d
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm/unshim-lab"
	}
	return filepath.Join(os.TempDir(), "unshim-lab")
}

func (o *Options) complete() {
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	if o.KubeVersion == "" {
		o.KubeVersion = DefaultKubeVersion
	}
	if o.Logger == nil {
		o.Logger = log.NoopLogger()
	}
	o.NodeShape.complete()
}

// Load reads the lab recorded in dir; it does not check that it runs.
func Load(dir string) (*Lab, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	var l Lab
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("read lab state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &l, nil
}

// Running reports which of the lab's processes are alive.
func (l *Lab) Running() (alive, dead []string) {
	for _, p := range l.Processes {
		if processAlive(p.PID, p.Name) {
			alive = append(alive, p.Name)
		} else {
			dead = append(dead, p.Name)
		}
	}
	for _, n := range l.Nodes {
		if n.Alive() {
			alive = append(alive, "node/"+n.Name)
		} else {
			dead = append(dead, "node/"+n.Name)
		}
	}
	return alive, dead
}

// Up starts a lab, or returns the one already running in the directory.
func Up(ctx context.Context, o Options) (*Lab, error) {
	o.complete()
	if err := o.NodeShape.Validate(); err != nil {
		return nil, err
	}
	if l, err := Load(o.Dir); err == nil {
		if _, dead := l.Running(); len(dead) == 0 && len(l.Processes) > 0 {
			if err := l.waitReady(ctx, 10*time.Second); err == nil {
				o.Logger.V(0).Infof("lab already running in %s", o.Dir)
				// Asking for less than runs changes nothing; asking for
				// the controllers adds them (a lab and its nodes are never
				// torn down for a flag).
				if o.Controllers && !l.Controllers {
					p, err := loadPKI(filepath.Join(l.Dir, "pki"))
					if err != nil {
						return nil, err
					}
					o.KubeVersion = l.KubeVersion
					if err := l.startControllers(ctx, o, p); err != nil {
						return nil, errControllers(err)
					}
					if err := l.save(); err != nil {
						return nil, err
					}
				}
				if err := l.addNodes(ctx, o); err != nil {
					return nil, err
				}
				return l, nil
			}
		}
		o.Logger.V(0).Infof("cleaning up a stopped lab in %s", o.Dir)
		if err := l.Down(); err != nil {
			return nil, err
		}
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, errors.New("etcd not found: install Debian's etcd-server (apt-get install etcd-server)")
	}
	apiserverBin, err := EnsureKubeBinary(ctx, o.Logger, "kube-apiserver", o.KubeVersion)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lab directory: %w", err)
	}
	l := &Lab{Dir: o.Dir, KubeVersion: o.KubeVersion, Started: time.Now().UTC()}
	ok := false
	defer func() {
		if !ok {
			_ = l.Down()
		}
	}()
	p, err := newPKI(filepath.Join(o.Dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("create lab PKI: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	l.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	l.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	o.Logger.V(0).Infof("starting etcd on %s", l.EtcdURL)
	if err := l.start("etcd", etcdBin,
		"--name=lab", "--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+l.EtcdURL, "--advertise-client-urls="+l.EtcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=lab="+peerURL, "--quota-backend-bytes=8589934592",
		"--log-level=warn", "--logger=zap",
	); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, http.DefaultClient, l.EtcdURL+"/health", 30*time.Second); err != nil {
		return nil, fmt.Errorf("etcd did not come up (log: %s): %w", l.logPath("etcd"), err)
	}
	o.Logger.V(0).Infof("starting kube-apiserver %s on %s", o.KubeVersion, l.APIServerURL)
	if err := l.start("kube-apiserver", apiserverBin,
		"--etcd-servers="+l.EtcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--service-account-key-file="+p.path("sa.pub"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--kubelet-client-certificate="+p.path("admin.crt"), "--kubelet-client-key="+p.path("admin.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--enable-priority-and-fairness=false",
		"--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000",
		"--profiling=false",
		"--allow-privileged=true",
	); err != nil {
		return nil, err
	}
	if err := l.writeKubeconfig(p); err != nil {
		return nil, err
	}
	if err := l.waitReady(ctx, 90*time.Second); err != nil {
		return nil, fmt.Errorf("kube-apiserver did not become ready (log: %s): %w", l.logPath("kube-apiserver"), err)
	}
	if o.Controllers {
		if err := l.startControllers(ctx, o, p); err != nil {
			return nil, errControllers(err)
		}
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	if err := l.addNodes(ctx, o); err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

func (l *Lab) logPath(name string) string { return filepath.Join(l.Dir, name+".log") }

// start launches a process in its own process group, logging to NAME.log.
func (l *Lab) start(name, bin string, args ...string) error {
	return l.launch(name, bin, args, os.O_TRUNC)
}

// launch starts name; flag is os.O_TRUNC for a new log, os.O_APPEND to go on
// with the log of a restarted process. A process of that name already
// recorded is replaced in the record.
func (l *Lab) launch(name, bin string, args []string, flag int) error {
	logf, err := os.OpenFile(l.logPath(name), os.O_CREATE|os.O_WRONLY|flag, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	c := exec.Command(bin, args...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	l.cmds = append(l.cmds, c)
	rec := Process{Name: name, PID: c.Process.Pid, Log: l.logPath(name), Bin: bin, Args: args}
	replaced := false
	for i := range l.Processes {
		if l.Processes[i].Name == name {
			l.Processes[i], replaced = rec, true
		}
	}
	if !replaced {
		l.Processes = append(l.Processes, rec)
	}
	// Record every process as soon as it starts, so `lab down` finds it even if Up dies.
	return l.save()
}

func (l *Lab) save() error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(l.Dir, stateFile))
}

func (l *Lab) writeKubeconfig(p *pki) error {
	l.Kubeconfig = filepath.Join(l.Dir, "kubeconfig")
	return l.writeKubeconfigFor(p, l.Kubeconfig, "admin", "default")
}

// writeKubeconfigFor writes a kubeconfig for the client certificate cert (pki NAME.crt/.key).
func (l *Lab) writeKubeconfigFor(p *pki, file, cert, namespace string) error {
	ca, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	crt, err := os.ReadFile(p.path(cert + ".crt"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(p.path(cert + ".key"))
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["unshim-lab"] = &clientcmdapi.Cluster{Server: l.APIServerURL, CertificateAuthorityData: ca}
	cfg.AuthInfos["unshim-lab-"+cert] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["unshim-lab"] = &clientcmdapi.Context{Cluster: "unshim-lab", AuthInfo: "unshim-lab-" + cert, Namespace: namespace}
	cfg.CurrentContext = "unshim-lab"
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", file, err)
	}
	return nil
}

// RESTConfig returns an admin client configuration for the lab.
func (l *Lab) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load lab kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	return cfg, nil
}

// Client returns an admin clientset for the lab.
func (l *Lab) Client() (kubernetes.Interface, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// waitReady polls /readyz until it answers ok, then makes sure the default
// namespace has its ServiceAccount (the lab runs no controller-manager).
func (l *Lab) waitReady(ctx context.Context, timeout time.Duration) error {
	cfg, err := l.RESTConfig()
	if err != nil {
		return err
	}
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 5 * time.Second}
	if err := waitHTTP(ctx, hc, l.APIServerURL+"/readyz", timeout); err != nil {
		return err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return EnsureServiceAccount(ctx, c, "default")
}

// EnsureServiceAccount creates the ServiceAccount "default" in namespace, which
// the kube-controller-manager would do in a full cluster; pods need it to be admitted.
func EnsureServiceAccount(ctx context.Context, c kubernetes.Interface, namespace string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: namespace}}
	_, err := c.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/default: %w", namespace, err)
	}
	return nil
}

// Down stops every process of the lab and removes its directory. Built
// binaries stay in the cache.
func (l *Lab) Down() error {
	var errs []error
	// Nodes first: their kubelets talk to the apiserver.
	if err := l.stopNodes(); err != nil {
		errs = append(errs, err)
	}
	// Stop in reverse order: the apiserver before etcd.
	for i := len(l.Processes) - 1; i >= 0; i-- {
		p := l.Processes[i]
		if err := stopProcess(p.PID, p.Name); err != nil {
			errs = append(errs, fmt.Errorf("stop %s (pid %d): %w", p.Name, p.PID, err))
		}
	}
	for _, c := range l.cmds {
		if _, err := procStartTime(c.Process.Pid); err != nil {
			_ = c.Wait() // reap children of this process; their exit status is expected to be a signal
		}
	}
	l.cmds = nil
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Never remove through a mount point.
	mounts, err := MountsUnder(l.Dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("lab directory %s still has mounts: %s", l.Dir, strings.Join(mounts, ", "))
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		return fmt.Errorf("remove lab directory: %w", err)
	}
	return nil
}

// stopProcess sends SIGTERM to the process group of pid, waits, then SIGKILLs it.
func stopProcess(pid int, name string) error {
	if !processAlive(pid, name) {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if !processAlive(pid, name) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !processAlive(pid, name) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("still running after SIGKILL")
}

// processAlive reports whether pid runs a program called name (not a zombie,
// not a reused pid).
func processAlive(pid int, name string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the parenthesised command name, is the state.
	s := string(stat)
	if i := strings.LastIndex(s, ")"); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0 := strings.SplitN(string(cmdline), "\x00", 2)[0]
	return strings.HasPrefix(filepath.Base(argv0), name)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitHTTP(ctx context.Context, hc *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
