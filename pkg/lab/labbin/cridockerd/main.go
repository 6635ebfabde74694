//go:build unshimlab

// Command cri-dockerd is the unshim lab's stand-in for Mirantis's
// cri-dockerd, which cannot be had here (no Debian package, and the module
// proxy refuses github.com/Mirantis/cri-dockerd). It is what cri-dockerd
// was made from: the dockershim of Kubernetes 1.23
// (k8s.io/kubernetes/pkg/kubelet/dockershim, started as kubelet 1.23's
// pkg/kubelet/kubelet_dockershim.go starts it), out of the kubelet, serving
// CRI on its own socket.
//
// dockershim speaks CRI v1alpha2. Kubelets from 1.26 on speak only CRI v1,
// whose messages are those of v1alpha2 on the wire (same fields, same
// numbers) under other service names, so every call to
// runtime.v1.{RuntimeService,ImageService}/M is passed, bytes unchanged, to
// runtime.v1alpha2.…/M. Methods v1alpha2 lacks answer Unimplemented, as an
// old runtime would.
//
// It takes the flags of cri-dockerd that matter to a switch, with
// cri-dockerd's defaults (--network-plugin cni since 0.2.5), and systemd
// socket activation (--container-runtime-endpoint fd://) with sd_notify, as
// the cri-docker.service and cri-docker.socket of Mirantis's packages use
// them. It is built by the lab (pkg/lab/cridockerd.go) in a module that
// requires k8s.io/kubernetes v1.23.17; the build tag keeps it out of unshim's.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1alpha2"
	"k8s.io/klog/v2"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	"k8s.io/kubernetes/pkg/kubelet/cri/streaming"
	"k8s.io/kubernetes/pkg/kubelet/dockershim"
)

// version is set by the lab's build (-X main.version=...).
var version = "0.0.0-unshim-lab"

// maxMsgSize is dockershim's gRPC message limit (remote.maxMsgSize).
const maxMsgSize = 16 << 20

type options struct {
	endpoint, dockerEndpoint                         string
	networkPlugin, sandboxImage, cniBin, cniConf     string
	cniCache, rootDir, hairpin, runtimeCgroups, bind string
	mtu                                              int
	requestTimeout, pullDeadline, streamIdle         time.Duration
	showVersion                                      bool
}

func main() {
	o := options{}
	fs := flag.NewFlagSet("cri-dockerd", flag.ContinueOnError)
	fs.StringVar(&o.endpoint, "container-runtime-endpoint", "unix:///var/run/cri-dockerd.sock", "the endpoint to serve CRI on (unix:///path, or fd:// for the socket systemd passes)")
	fs.StringVar(&o.dockerEndpoint, "docker-endpoint", "unix:///var/run/docker.sock", "Docker's endpoint")
	fs.StringVar(&o.networkPlugin, "network-plugin", "cni", "the network plugin (cni, kubenet, or empty for Docker's own networking)")
	fs.StringVar(&o.sandboxImage, "pod-infra-container-image", "registry.k8s.io/pause:3.9", "the image of each pod's sandbox (pause) container")
	fs.StringVar(&o.cniBin, "cni-bin-dir", "/opt/cni/bin", "comma-separated directories of CNI plugins")
	fs.StringVar(&o.cniConf, "cni-conf-dir", "/etc/cni/net.d", "the directory of CNI configurations")
	fs.StringVar(&o.cniCache, "cni-cache-dir", "/var/lib/cni/cache", "the CNI cache directory")
	fs.StringVar(&o.rootDir, "cri-dockerd-root-directory", "/var/lib/cri-dockerd", "where sandbox checkpoints are kept")
	fs.StringVar(&o.hairpin, "hairpin-mode", "hairpin-veth", "hairpin mode: promiscuous-bridge, hairpin-veth or none")
	fs.StringVar(&o.runtimeCgroups, "runtime-cgroups", "", "the cgroup to put Docker's processes in")
	fs.StringVar(&o.bind, "streaming-bind-addr", "127.0.0.1:0", "address of the exec/attach/port-forward stream server")
	fs.IntVar(&o.mtu, "network-plugin-mtu", 0, "the MTU handed to the network plugin (0: its default)")
	fs.DurationVar(&o.requestTimeout, "runtime-request-timeout", 2*time.Minute, "timeout of a request to Docker")
	fs.DurationVar(&o.pullDeadline, "image-pull-progress-deadline", time.Minute, "cancel a pull that makes no progress for this long")
	fs.DurationVar(&o.streamIdle, "streaming-connection-idle-timeout", 4*time.Hour, "close idle exec/attach streams after this long")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	logLevel := fs.String("log-level", "info", "accepted for cri-dockerd's command line; -v sets the detail")
	klog.InitFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	_ = logLevel
	if o.showVersion {
		fmt.Printf("cri-dockerd %s (unshim lab stand-in: the dockershim of Kubernetes v1.23.17)\n", version)
		return
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "cri-dockerd: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "cri-dockerd: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	// The socket first: a bad endpoint is told before Docker is asked.
	l, err := listen(o.endpoint)
	if err != nil {
		return err
	}
	ds, err := dockershim.NewDockerService(
		&dockershim.ClientConfig{DockerEndpoint: o.dockerEndpoint, RuntimeRequestTimeout: o.requestTimeout, ImagePullProgressDeadline: o.pullDeadline},
		o.sandboxImage,
		&streaming.Config{
			Addr:                            o.bind,
			StreamIdleTimeout:               o.streamIdle,
			StreamCreationTimeout:           streaming.DefaultConfig.StreamCreationTimeout,
			SupportedRemoteCommandProtocols: streaming.DefaultConfig.SupportedRemoteCommandProtocols,
			SupportedPortForwardProtocols:   streaming.DefaultConfig.SupportedPortForwardProtocols,
		},
		&dockershim.NetworkPluginSettings{
			HairpinMode:        kubeletconfig.HairpinMode(o.hairpin),
			PluginName:         o.networkPlugin,
			PluginConfDir:      o.cniConf,
			PluginBinDirString: o.cniBin,
			PluginCacheDir:     o.cniCache,
			MTU:                o.mtu,
		},
		o.runtimeCgroups, "", o.rootDir)
	if err != nil {
		return fmt.Errorf("start dockershim: %w", err)
	}
	if err := ds.Start(); err != nil {
		return fmt.Errorf("start dockershim: %w", err)
	}

	// dockershim itself, v1alpha2, on an in-memory listener.
	inner := grpc.NewServer(grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize))
	runtimeapi.RegisterRuntimeServiceServer(inner, ds)
	runtimeapi.RegisterImageServiceServer(inner, ds)
	mem := bufconn.Listen(1 << 20)
	go func() { _ = inner.Serve(mem) }()
	conn, err := grpc.Dial("dockershim", grpc.WithInsecure(),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return mem.Dial() }),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize), grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}

	// The socket: every call, v1alpha2 or v1, passed on as bytes.
	outer := grpc.NewServer(grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize),
		grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(bridge(conn)))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		outer.GracefulStop()
	}()
	notifyReady()
	klog.InfoS("cri-dockerd (unshim lab stand-in) serving CRI v1 and v1alpha2", "endpoint", o.endpoint, "version", version)
	return outer.Serve(l)
}

// rawCodec carries messages as the bytes they are on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// v1alpha2Method names the dockershim method that serves method, a CRI v1
// or v1alpha2 method; ok is false for anything else.
func v1alpha2Method(method string) (string, bool) {
	for _, svc := range []string{"RuntimeService", "ImageService"} {
		for _, ver := range []string{"runtime.v1.", "runtime.v1alpha2."} {
			prefix := "/" + ver + svc + "/"
			if strings.HasPrefix(method, prefix) {
				return "/runtime.v1alpha2." + svc + "/" + strings.TrimPrefix(method, prefix), true
			}
		}
	}
	return "", false
}

// bridge passes each call on to dockershim's v1alpha2 service. CRI's
// v1alpha2 methods are all unary; v1's one streaming method
// (GetContainerEvents) is unknown to v1alpha2 and answers Unimplemented.
func bridge(conn *grpc.ClientConn) grpc.StreamHandler {
	return func(_ interface{}, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		target, ok := v1alpha2Method(method)
		if !ok {
			return status.Errorf(codes.Unimplemented, "unknown method %s", method)
		}
		var in, out []byte
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		if err := conn.Invoke(stream.Context(), target, &in, &out); err != nil {
			return err
		}
		return stream.SendMsg(&out)
	}
}

// listen opens endpoint: unix:///path, or fd:// for the first socket
// systemd passes (LISTEN_FDS, as cri-docker.socket does).
func listen(endpoint string) (net.Listener, error) {
	switch {
	case endpoint == "fd://" || strings.HasPrefix(endpoint, "fd://"):
		if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
			return nil, fmt.Errorf("--container-runtime-endpoint %s: no socket passed by systemd (LISTEN_PID)", endpoint)
		}
		n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--container-runtime-endpoint %s: no socket passed by systemd (LISTEN_FDS=%q)", endpoint, os.Getenv("LISTEN_FDS"))
		}
		const firstFD = 3 // SD_LISTEN_FDS_START
		syscall.CloseOnExec(firstFD)
		l, err := net.FileListener(os.NewFile(firstFD, "cri-docker.socket"))
		if err != nil {
			return nil, fmt.Errorf("use the socket systemd passed: %w", err)
		}
		return l, nil
	case strings.HasPrefix(endpoint, "unix://"):
		path := strings.TrimPrefix(endpoint, "unix://")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
		return net.Listen("unix", path)
	default:
		return nil, fmt.Errorf("--container-runtime-endpoint %q: want unix:///PATH or fd://", endpoint)
	}
}

// notifyReady tells systemd (Type=notify) that the socket is served.
func notifyReady() {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		klog.ErrorS(err, "notify systemd")
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1")); err != nil {
		klog.ErrorS(err, "notify systemd")
	}
}
