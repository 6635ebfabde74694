package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodeplan"
)

// NewVerifyPhase waits until the node is back on the new runtime: Ready,
// its lease renewed since the kubelet started, the runtime it reports, the
// CRI's RuntimeReady and NetworkReady, its DaemonSet pods Running, and logs
// and exec served through the runtime's stream server.
func NewVerifyPhase() migrate.Phase {
	return migrate.Phase{
		Name:  VerifyPhase,
		Short: "Verify the node: Ready, runtime, CRI, DaemonSet pods, logs and exec",
		Run: run(func(ctx context.Context, d Data) error {
			if d.DryRun() {
				return nil // a wait: the plan describes it
			}
			timeout := d.Settings().VerifyTimeout
			if timeout <= 0 {
				timeout = 5 * time.Minute
			}
			deadline := time.Now().Add(timeout)
			// Checked again on every change of the node, its pods or its
			// Lease, as informers report them, rather than on a timer.
			changes := watchNode(ctx, d)
			defer changes.stop()
			var last error
			for {
				last = verifyOnce(ctx, d, changes)
				if last == nil {
					return verifyRegistries(ctx, d)
				}
				d.Logger().V(1).Infof("[verify] not yet: %v", last)
				if time.Now().After(deadline) {
					return fmt.Errorf("node %s not healthy on %s after %s: %w", d.Node(), d.Settings().Target, timeout, last)
				}
				if err := changes.wait(ctx); err != nil {
					return err
				}
			}
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			want := "containerd://"
			if d.Settings().Target == nodeplan.CRIDockerd {
				want = "docker://"
			}
			lines := []string{"wait (up to " + d.Settings().VerifyTimeout.String() + ") for: node Ready with a lease renewed since the kubelet started; runtime " + want +
				"; CRI RuntimeReady and NetworkReady; the node's DaemonSet pods Running; logs and exec through the stream server"}
			if want == "containerd://" {
				lines = append(lines, "then resolve through the switched containerd's CRI the images the rehearsal resolved")
			}
			return lines, nil
		}),
	}
}

// nodeView is the node and the pods bound to it as informers keep them:
// one LIST and one WATCH of each (listed again by the informer after an
// outage of the apiserver), not a GET of the node and a LIST of its pods on
// every check.
type nodeView struct {
	node, pods cache.Store
	synced     []cache.InformerSynced
	changed    chan struct{}
	cancel     context.CancelFunc

	// leaseRenewed: the kubelet's Lease was renewed since it started.
	leaseRenewed bool

	mu      sync.Mutex
	listErr error // the last LIST's error, while the informers have none
}

func watchNode(ctx context.Context, d Data) *nodeView {
	ctx, cancel := context.WithCancel(ctx)
	v := &nodeView{changed: make(chan struct{}, 1), cancel: cancel}
	notify := func() {
		select {
		case v.changed <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { notify() }, UpdateFunc: func(any, any) { notify() }, DeleteFunc: func(any) { notify() }}
	inform := func(obj runtime.Object, sel string, list func(context.Context, metav1.ListOptions) (runtime.Object, error), watchf func(context.Context, metav1.ListOptions) (watch.Interface, error)) cache.Store {
		lw := kubelist.FieldListWatch(sel, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := list(ctx, o)
			v.mu.Lock()
			v.listErr = err
			v.mu.Unlock()
			return obj, err
		}, watchf)
		store, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{ListerWatcher: lw, ObjectType: obj, Handler: h})
		go ctrl.RunWithContext(ctx)
		v.synced = append(v.synced, ctrl.HasSynced)
		return store
	}
	c := d.Client()
	byName := fields.OneTermEqualSelector("metadata.name", d.Node()).String()
	nodes, pods := c.CoreV1().Nodes(), c.CoreV1().Pods("")
	v.node = inform(&corev1.Node{}, byName,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return nodes.List(ctx, o) }, nodes.Watch)
	v.pods = inform(&corev1.Pod{}, fields.OneTermEqualSelector("spec.nodeName", d.Node()).String(),
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return pods.List(ctx, o) }, pods.Watch)
	return v
}

// wait returns on the next change the informers report, or after 1 s (the
// CRI is not watched).
func (v *nodeView) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-v.changed:
	case <-time.After(time.Second):
	}
	return nil
}

func (v *nodeView) stop() { v.cancel() }

func verifyOnce(ctx context.Context, d Data, v *nodeView) error {
	for _, synced := range v.synced {
		if !synced() {
			v.mu.Lock()
			defer v.mu.Unlock()
			return fmt.Errorf("the node and its pods are not read yet: %v", v.listErr)
		}
	}
	obj, ok, _ := v.node.GetByKey(d.Node())
	if !ok {
		return fmt.Errorf("node %s not found", d.Node())
	}
	node := obj.(*corev1.Node)
	want := "containerd"
	if d.Settings().Target == nodeplan.CRIDockerd {
		want = "docker"
	}
	if rt := inventory.RuntimeName(node); rt != want {
		return fmt.Errorf("runtime is %q, want %s://", node.Status.NodeInfo.ContainerRuntimeVersion, want)
	}
	started, _ := time.Parse(time.RFC3339, d.Journal().Values["kubelet.started"])
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue && !cond.LastHeartbeatTime.Time.Before(started.Add(-time.Second))
		}
	}
	if !ready {
		return errors.New("node not Ready (since the kubelet started)")
	}
	criReady := containerdCRIReady
	if want == "docker" {
		criReady = criDockerdReady
	}
	if err := criReady(ctx, d); err != nil {
		return err
	}
	var probe *corev1.Pod
	pods := v.pods.List()
	// The same pod each time, whichever order the store keeps.
	slices.SortFunc(pods, func(a, b any) int {
		return strings.Compare(a.(*corev1.Pod).Namespace+"/"+a.(*corev1.Pod).Name, b.(*corev1.Pod).Namespace+"/"+b.(*corev1.Pod).Name)
	})
	for _, obj := range pods {
		p := obj.(*corev1.Pod)
		ctl := metav1.GetControllerOf(p)
		running := p.Status.Phase == corev1.PodRunning && allReady(p)
		if ctl != nil && ctl.Kind == "DaemonSet" && !running {
			return fmt.Errorf("DaemonSet pod %s/%s is %s", p.Namespace, p.Name, p.Status.Phase)
		}
		if running && probe == nil && !p.Spec.HostNetwork && p.DeletionTimestamp == nil {
			probe = p
		}
	}
	// Read once the rest holds (the kubelet has had time to renew it), not
	// on every change.
	if !v.leaseRenewed {
		lease, err := d.Client().CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, d.Node(), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("node lease: %w", err)
		}
		if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(started) {
			return errors.New("the kubelet has not renewed its lease since it started")
		}
		v.leaseRenewed = true
	}
	if probe == nil {
		d.Logger().V(0).Infof("[verify] no running pod on the node to check logs and exec with")
		return nil
	}
	return streams(ctx, d, probe)
}

func allReady(p *corev1.Pod) bool {
	if len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil {
			return false
		}
	}
	return true
}

// streams checks that the kubelet serves logs and exec for pod through the
// runtime. An exec of a command the image lacks still proves the stream
// works: the runtime's own error comes back through it.
func streams(ctx context.Context, d Data, p *corev1.Pod) error {
	c := d.Client()
	container := p.Spec.Containers[0].Name
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := c.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: container, TailLines: ptr(int64(1))}).DoRaw(lctx); err != nil {
		return fmt.Errorf("logs of %s/%s: %w", p.Namespace, p.Name, err)
	}
	cfg := d.RESTConfig()
	if cfg == nil {
		return nil
	}
	req := c.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(p.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: []string{"true"}, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return err
	}
	// A buffer each: client-go copies the two streams in goroutines of
	// their own.
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(lctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	if err != nil && !strings.Contains(err.Error(), "executable file not found") && !strings.Contains(err.Error(), "no such file") {
		return fmt.Errorf("exec in %s/%s: %w", p.Namespace, p.Name, err)
	}
	d.Logger().V(1).Infof("[verify] logs and exec work for %s/%s", p.Namespace, p.Name)
	return nil
}

func ptr[T any](v T) *T { return &v }

// verifyRegistries resolves, through the switched containerd, the image
// references Docker and the rehearsal resolved before the switch: a pull
// through the CRI, which uses the registry settings the CRI really loaded
// (the images are there already, imported or pulled by the kubelet, so
// only manifests travel); without a way to the CRI's socket, a manifest
// fetch with ctr and the certs.d the conversion wrote. A reference that no
// longer resolves fails verify, and the switch rolls back.
func verifyRegistries(ctx context.Context, d Data) error {
	if d.Settings().Target != nodeplan.Containerd {
		return nil
	}
	var refs []string
	for _, r := range strings.Split(d.Journal().Values[RehearsedKey], "\n") {
		if r != "" {
			refs = append(refs, r)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	conn, err := criConn(d)
	if err != nil {
		return err
	}
	if conn != nil {
		defer conn.Close()
	}
	resolve := func(ctx context.Context, ref string) error {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if conn != nil {
			_, err := runtimeapi.NewImageServiceClient(conn).PullImage(rctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			return err
		}
		_, err := d.Transport().Run(rctx, "ctr", "--namespace", "k8s.io", "--timeout", "60s",
			"content", "fetch", "--metadata-only", "--hosts-dir", nodeconf.CertsDir, normalizeRef(ref))
		return err
	}
	// A registry that does not answer once is tried twice more.
	var fails map[string]error
	for try := 0; try < 3; try++ {
		fails = resolveAll(ctx, d, VerifyPhase, refs, resolve)
		if len(fails) == 0 {
			d.Logger().V(0).Infof("[verify] %d image(s) resolve through the switched containerd", len(refs))
			return nil
		}
		refs = refs[:0]
		for r := range fails {
			refs = append(refs, r)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return registryError(ctx, d, "the switched containerd", fails)
}
