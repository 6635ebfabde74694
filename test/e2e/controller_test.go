package e2e

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/cmd/unshim/app"
	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/rollout/driver"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRolloutController runs two replicas of `unshim rollout controller`
// against the lab: one leads (the Lease) and drives a new rollout to its
// end, `rollout run` is refused meanwhile; when the leader stops, the other
// replica takes the Lease and drives the next rollout. The rollouts select
// no node (a label nothing carries), so no node is touched: the switches
// themselves are tested on lab nodes in pkg/rollout/driver.
func TestRolloutController(t *testing.T) {
	e := requireLab(t)
	dyn := installCRD(t, e)
	res := dyn.Resource(v1alpha1.GroupVersionResource)
	ctx := context.Background()
	tag := e.namespace(t)
	nothing := func(spec map[string]any) {
		spec["nodes"] = map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"unshim-test": tag}}}
	}
	type replica struct {
		id     string
		cancel context.CancelFunc
		out    *syncBuffer
		done   chan int
	}
	start := func(id string) *replica {
		rctx, cancel := context.WithCancel(ctx)
		r := &replica{id: id, cancel: cancel, out: &syncBuffer{}, done: make(chan int, 1)}
		go func() {
			streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: r.out, ErrOut: r.out}
			r.done <- app.Run(rctx, streams, "unshim", e.kube("rollout", "controller", "--id", id, "--agent-image", "example.invalid/unshim:test", "--lease-duration", "5s"))
		}()
		return r
	}
	replicas := map[string]*replica{"replica-1": start("replica-1"), "replica-2": start("replica-2")}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.cancel()
			<-r.done
		}
	})
	finished := func(name string) *v1alpha1.RuntimeMigration {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			u, err := res.Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				m, err := v1alpha1.FromUnstructured(u)
				if err != nil {
					t.Fatal(err)
				}
				if m.Status.Phase == v1alpha1.PhaseSucceeded {
					return m
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout %s not driven to its end (%v); replicas said:\n%s\n%s", name, err, replicas["replica-1"].out, replicas["replica-2"].out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, name := range []string{tag + "-a", tag + "-b"} {
		t.Cleanup(func() { _ = res.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	if _, err := res.Create(ctx, rtm(tag+"-a", nothing), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := finished(tag + "-a")
	leader, ok := replicas[a.Status.Driver]
	if !ok || !strings.Contains(a.Status.Message, "0 of 0 nodes switched") {
		t.Fatalf("rollout a: driver %q, message %q: want one of the replicas, nothing switched", a.Status.Driver, a.Status.Message)
	}

	// A driver from elsewhere is refused while the controller leads.
	if r := run(t, "", e.kube("rollout", "run", tag+"-a", "--agent-image", "x")...); r.code != 2 || !strings.Contains(r.errOut, "another rollout driver holds Lease kube-system/unshim-rollout: "+leader.id) {
		t.Errorf("rollout run while the controller leads: exit %d, stderr %q", r.code, r.errOut)
	}

	// The leader stops (its pod deleted, its node drained): the other replica
	// takes over and drives the next rollout.
	leader.cancel()
	<-leader.done
	delete(replicas, leader.id)
	if _, err := res.Create(ctx, rtm(tag+"-b", nothing), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := finished(tag + "-b")
	if _, ok := replicas[b.Status.Driver]; !ok {
		t.Errorf("rollout b driven by %q: want the replica that was left", b.Status.Driver)
	}
}

// TestControllerManifest checks deploy/controller.yaml against the lab's
// apiserver (server-side dry run) and that it runs the controller with two
// replicas under a ServiceAccount bound to the shipped driver role.
func TestControllerManifest(t *testing.T) {
	e := requireLab(t)
	data, err := os.ReadFile("../../deploy/controller.yaml")
	if err != nil {
		t.Fatal(err)
	}
	roles := rolloutRoles(t)
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	ctx := context.Background()
	var dep *appsv1.Deployment
	var sa string
	bound := map[string]string{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ServiceAccount":
			var o corev1.ServiceAccount
			if err := yaml.UnmarshalStrict(doc, &o); err != nil {
				t.Fatal(err)
			}
			sa = o.Name
			_, err = e.client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, &o, dry)
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			if err := yaml.UnmarshalStrict(doc, &o); err != nil {
				t.Fatal(err)
			}
			if _, ok := roles[o.RoleRef.Name]; !ok {
				t.Errorf("ClusterRoleBinding %s binds %s, not a role of deploy/rbac/unshim-rollout.yaml", o.Name, o.RoleRef.Name)
			}
			bound[o.RoleRef.Name] = o.Subjects[0].Name
			_, err = e.client.RbacV1().ClusterRoleBindings().Create(ctx, &o, dry)
		case "RoleBinding":
			var o rbacv1.RoleBinding
			if err := yaml.UnmarshalStrict(doc, &o); err != nil {
				t.Fatal(err)
			}
			bound[o.RoleRef.Name] = o.Subjects[0].Name
			_, err = e.client.RbacV1().RoleBindings(o.Namespace).Create(ctx, &o, dry)
		case "Deployment":
			dep = &appsv1.Deployment{}
			if err := yaml.UnmarshalStrict(doc, dep); err != nil {
				t.Fatal(err)
			}
			_, err = e.client.AppsV1().Deployments(dep.Namespace).Create(ctx, dep, dry)
		default:
			t.Fatalf("unexpected kind %q in deploy/controller.yaml", meta.Kind)
		}
		if err != nil {
			t.Errorf("the apiserver refused %s: %v", meta.Kind, err)
		}
	}
	if dep == nil || dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.ServiceAccountName != sa {
		t.Fatalf("Deployment: %+v; want 2 replicas as ServiceAccount %s", dep, sa)
	}
	if bound["unshim-rollout-driver"] != sa || bound["unshim-agent-launcher"] != sa {
		t.Errorf("bindings %v: want the driver role and the agent launcher bound to %s", bound, sa)
	}
	cmd := strings.Join(dep.Spec.Template.Spec.Containers[0].Command, " ")
	if !strings.Contains(cmd, "rollout controller") || dep.Namespace != driver.LeaseNamespace {
		t.Errorf("Deployment runs %q in %s: want `rollout controller` in %s", cmd, dep.Namespace, driver.LeaseNamespace)
	}
}
