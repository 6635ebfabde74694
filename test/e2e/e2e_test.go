// Package e2e runs the unshim command line in-process against the lab's real
// kube-apiserver and etcd, as a user would run it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/cmd/unshim/app"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/manifest"
	"github.com/unshim/unshim/pkg/report"
)

// env is a lab with an admin client.
type env struct {
	lab    *lab.Lab
	client kubernetes.Interface
}

func requireLab(t *testing.T) *env {
	t.Helper()
	l := labtest.Require(t)
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	return &env{lab: l, client: c}
}

// result is what one unshim run returned.
type result struct {
	code        int
	out, errOut string
}

// run runs unshim in-process with args and stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runAs(t, "unshim", stdin, args...)
}

func runAs(t *testing.T, name, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := app.Run(ctx, streams, name, args)
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

// kube returns the connection flags for the lab.
func (e *env) kube(args ...string) []string {
	return append([]string{"--kubeconfig", e.lab.Kubeconfig}, args...)
}

// namespace creates a fresh namespace (with its default ServiceAccount) deleted after the test.
func (e *env) namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("e2e-%s-%04d", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), rand.Intn(10000))
	if len(name) > 63 {
		name = strings.TrimRight(name[len(name)-63:], "-")
		name = strings.TrimLeft(name, "-")
	}
	ctx := context.Background()
	if _, err := e.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := lab.EnsureServiceAccount(ctx, e.client, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

// apply creates the objects of a manifest file in namespace ns.
func (e *env) apply(t *testing.T, ns string, objs []manifest.Object) {
	t.Helper()
	for _, o := range objs {
		if err := e.create(ns, o.Obj); err != nil {
			t.Fatalf("create %T from %s: %v", o.Obj, o.File, err)
		}
	}
}

func (e *env) create(ns string, obj runtime.Object) error {
	ctx := context.Background()
	c := e.client
	var err error
	switch o := obj.(type) {
	case *corev1.Pod:
		_, err = c.CoreV1().Pods(ns).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ConfigMap:
		_, err = c.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ReplicationController:
		_, err = c.CoreV1().ReplicationControllers(ns).Create(ctx, o, metav1.CreateOptions{})
	case *appsv1.Deployment:
		_, err = c.AppsV1().Deployments(ns).Create(ctx, o, metav1.CreateOptions{})
	case *appsv1.ReplicaSet:
		_, err = c.AppsV1().ReplicaSets(ns).Create(ctx, o, metav1.CreateOptions{})
	case *appsv1.DaemonSet:
		_, err = c.AppsV1().DaemonSets(ns).Create(ctx, o, metav1.CreateOptions{})
	case *appsv1.StatefulSet:
		_, err = c.AppsV1().StatefulSets(ns).Create(ctx, o, metav1.CreateOptions{})
	case *batchv1.Job:
		_, err = c.BatchV1().Jobs(ns).Create(ctx, o, metav1.CreateOptions{})
	case *batchv1.CronJob:
		_, err = c.BatchV1().CronJobs(ns).Create(ctx, o, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("unsupported object %T", obj)
	}
	return err
}

// decodeFindings parses `unshim check -o json` output.
func decodeFindings(t *testing.T, r result) report.FindingList {
	t.Helper()
	var l report.FindingList
	if err := json.Unmarshal([]byte(r.out), &l); err != nil {
		t.Fatalf("check output is not JSON: %v\nstdout:\n%s\nstderr:\n%s", err, r.out, r.errOut)
	}
	return l
}

// rulesByObject maps each finding's object name to the rules found on it.
func rulesByObject(l report.FindingList) map[string]map[string]bool {
	m := map[string]map[string]bool{}
	for _, f := range l.Findings {
		if m[f.Object.Name] == nil {
			m[f.Object.Name] = map[string]bool{}
		}
		m[f.Object.Name][f.Rule] = true
	}
	return m
}

func readManifest(t *testing.T, path string) []manifest.Object {
	t.Helper()
	objs, err := (&manifest.Source{Paths: []string{path}}).Read()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
