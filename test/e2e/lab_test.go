package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/lab"
)

// TestLabLifecycle starts a second lab through the CLI, uses it, and tears
// it down, checking that no process of it is left behind.
func TestLabLifecycle(t *testing.T) {
	cache, err := lab.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	_, etcdErr := exec.LookPath("etcd")
	_, binErr := os.Stat(filepath.Join(cache, "bin", "kube-apiserver-"+lab.DefaultKubeVersion))
	if etcdErr != nil || binErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab prerequisites missing in CI: etcd: %v, kube-apiserver: %v", etcdErr, binErr)
		}
		t.Skipf("lab prerequisites missing: etcd: %v, kube-apiserver: %v", etcdErr, binErr)
	}
	dir := filepath.Join(t.TempDir(), "lab")

	r := run(t, "", "lab", "status", "--dir", dir)
	if r.code != 2 {
		t.Errorf("status of no lab: exit %d, want 2", r.code)
	}
	start := time.Now()
	r = run(t, "", "lab", "up", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("lab up: exit %d: %s", r.code, r.errOut)
	}
	t.Logf("lab up (binaries cached) took %s", time.Since(start))
	l, err := lab.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })
	if len(l.Processes) != 2 {
		t.Fatalf("processes %+v, want etcd and kube-apiserver", l.Processes)
	}
	if !strings.HasPrefix(l.APIServerURL, "https://127.0.0.1:") || !strings.HasPrefix(l.EtcdURL, "http://127.0.0.1:") {
		t.Errorf("lab listens beyond loopback: %s %s", l.APIServerURL, l.EtcdURL)
	}

	r = run(t, "", "lab", "status", "--dir", dir, "-o", "json")
	var st struct {
		Running    bool   `json:"running"`
		Kubeconfig string `json:"kubeconfig"`
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil || r.code != 0 || !st.Running || st.Kubeconfig != l.Kubeconfig {
		t.Fatalf("status: exit %d, %+v, %v", r.code, st, err)
	}
	// The kubeconfig it wrote works, with TLS verified against the lab's CA.
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Discovery().ServerVersion()
	if err != nil || v.GitVersion != lab.DefaultKubeVersion {
		t.Fatalf("server version %v, %v; want %s", v, err, lab.DefaultKubeVersion)
	}
	if _, err := c.CoreV1().ServiceAccounts("default").List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	// A second up finds the running lab and starts nothing new.
	r = run(t, "", "lab", "up", "--dir", dir)
	again, _ := lab.Load(dir)
	if r.code != 0 || again == nil || again.Processes[0].PID != l.Processes[0].PID {
		t.Errorf("second up: exit %d, %+v", r.code, again)
	}

	r = run(t, "", "lab", "down", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("lab down: exit %d: %s", r.code, r.errOut)
	}
	for _, p := range l.Processes {
		if _, err := os.Stat(filepath.Join("/proc", itoa(p.PID))); err == nil {
			if stat, _ := os.ReadFile(filepath.Join("/proc", itoa(p.PID), "cmdline")); strings.Contains(string(stat), p.Name) {
				t.Errorf("%s (pid %d) still running after lab down", p.Name, p.PID)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab directory left behind: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestLabControllers starts a lab with kube-controller-manager and
// kube-scheduler and checks they do their work: a Deployment gets its
// ReplicaSet and Pods, a new namespace its ServiceAccount, and the Pods a node.
func TestLabControllers(t *testing.T) {
	cache, err := lab.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(cache, "bin", c+"-"+lab.DefaultKubeVersion)); err != nil && os.Getenv("CI") != "true" {
			t.Skipf("%s not built yet (run `unshim lab up --controllers` once): %v", c, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "lab")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Dir: dir, Controllers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Down(); err != nil {
			t.Error(err)
		}
		for _, p := range l.Processes {
			if stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.PID), "cmdline")); err == nil && strings.Contains(string(stat), p.Name) {
				t.Errorf("%s (pid %d) still running after Down", p.Name, p.PID)
			}
		}
	}()
	if len(l.Processes) != 4 || !l.Controllers {
		t.Fatalf("processes %+v", l.Processes)
	}
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	// A schedulable node for the scheduler to bind to.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ctl-node", Labels: map[string]string{"kubernetes.io/os": "linux"}}}
	created, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	created.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	created.Status.Capacity = created.Status.Allocatable
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "default ServiceAccount in a new namespace", func() (bool, error) {
		_, err := c.CoreV1().ServiceAccounts("apps").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	replicas := int32(2)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web:1"}}}},
	}}
	if _, err := c.AppsV1().Deployments("apps").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "2 pods of the Deployment bound to ctl-node", func() (bool, error) {
		pods, err := c.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		bound := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == "ctl-node" && len(p.OwnerReferences) == 1 && p.OwnerReferences[0].Kind == "ReplicaSet" {
				bound++
			}
		}
		return bound == 2, nil
	})
}

func poll(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
