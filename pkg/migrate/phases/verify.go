package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodeplan"
)

// NewVerifyPhase waits until the node is back on the new runtime: Ready,
// its lease renewed since the kubelet started, the runtime it reports, the
// CRI's RuntimeReady and NetworkReady, its DaemonSet pods Running, and logs
// and exec served through the runtime's stream server.
func NewVerifyPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "verify",
		Short: "Verify the node: Ready, runtime, CRI, DaemonSet pods, logs and exec",
		Run: run(func(ctx context.Context, d Data) error {
			timeout := d.Settings().VerifyTimeout
			if timeout <= 0 {
				timeout = 5 * time.Minute
			}
			deadline := time.Now().Add(timeout)
			var last error
			for {
				last = verifyOnce(ctx, d)
				if last == nil {
					return nil
				}
				d.Logger().V(1).Infof("[verify] not yet: %v", last)
				if time.Now().After(deadline) {
					return fmt.Errorf("node %s not healthy on %s after %s: %w", d.Node(), d.Settings().Target, timeout, last)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(2 * time.Second):
				}
			}
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			want := "containerd://"
			if d.Settings().Target == nodeplan.CRIDockerd {
				want = "docker://"
			}
			return []string{"wait (up to " + d.Settings().VerifyTimeout.String() + ") for: node Ready with a lease renewed since the kubelet started; runtime " + want +
				"; CRI RuntimeReady and NetworkReady; the node's DaemonSet pods Running; logs and exec through the stream server"}, nil
		}),
	}
}

func verifyOnce(ctx context.Context, d Data) error {
	c := d.Client()
	node, err := c.CoreV1().Nodes().Get(ctx, d.Node(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	want := "containerd"
	if d.Settings().Target == nodeplan.CRIDockerd {
		want = "docker"
	}
	if rt := runtimeOf(node); rt != want {
		return fmt.Errorf("runtime is %q, want %s://", node.Status.NodeInfo.ContainerRuntimeVersion, want)
	}
	started, _ := time.Parse(time.RFC3339, d.Journal().Values["kubelet.started"])
	lease, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, d.Node(), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("node lease: %w", err)
	}
	if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(started) {
		return errors.New("the kubelet has not renewed its lease since it started")
	}
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue && !cond.LastHeartbeatTime.Time.Before(started.Add(-time.Second))
		}
	}
	if !ready {
		return errors.New("node not Ready (since the kubelet started)")
	}
	if want == "containerd" {
		conds, err := criStatus(ctx, d)
		if err != nil {
			return err
		}
		if !conds[runtimeapi.RuntimeReady] || !conds[runtimeapi.NetworkReady] {
			return fmt.Errorf("CRI conditions %v", conds)
		}
	}
	var probe *corev1.Pod
	err = eachPodOnNode(ctx, d, func(p *corev1.Pod) error {
		ctl := metav1.GetControllerOf(p)
		running := p.Status.Phase == corev1.PodRunning && allReady(p)
		if ctl != nil && ctl.Kind == "DaemonSet" && !running {
			return fmt.Errorf("DaemonSet pod %s/%s is %s", p.Namespace, p.Name, p.Status.Phase)
		}
		if running && probe == nil && !p.Spec.HostNetwork {
			probe = p
		}
		return nil
	})
	if err != nil {
		return err
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
	var out bytes.Buffer
	err = ex.StreamWithContext(lctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out})
	if err != nil && !strings.Contains(err.Error(), "executable file not found") && !strings.Contains(err.Error(), "no such file") {
		return fmt.Errorf("exec in %s/%s: %w", p.Namespace, p.Name, err)
	}
	d.Logger().V(1).Infof("[verify] logs and exec work for %s/%s", p.Namespace, p.Name)
	return nil
}

func ptr[T any](v T) *T { return &v }
