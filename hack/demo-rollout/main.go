// Command demo-rollout prepares a running lab (unshim lab up --nodes 3
// --controllers) for hack/demo-rollout.sh: the RuntimeMigration CRD, a
// Deployment "web" of two replicas under a PodDisruptionBudget of
// minAvailable 1, and the rollout's file; it prints the --target-pid flags
// that reach the lab's nodes. It talks to the lab's apiserver with
// client-go only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/lab"
)

func main() {
	dir := flag.String("lab", lab.DefaultDir(), "the lab's directory")
	out := flag.String("rollout-file", "", "where to write the RuntimeMigration")
	flag.Parse()
	if err := run(*dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "demo-rollout:", err)
		os.Exit(1)
	}
}

func run(dir, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := lab.Load(dir)
	if err != nil {
		return err
	}
	if len(l.Nodes) < 3 {
		return fmt.Errorf("the lab in %s has %d nodes; want 3 (unshim lab up --nodes 3 --controllers)", dir, len(l.Nodes))
	}
	rc, err := l.RESTConfig()
	if err != nil {
		return err
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	if err := installCRD(ctx, dyn); err != nil {
		return err
	}
	if err := workload(ctx, kc); err != nil {
		return err
	}
	m := &v1alpha1.RuntimeMigration{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: "demo"},
		Spec: v1alpha1.RuntimeMigrationSpec{
			TargetRuntime: v1alpha1.TargetContainerd, MaxUnavailable: &intstr.IntOrString{IntVal: 1},
			Canary:       v1alpha1.Canary{Mode: v1alpha1.CanaryCount, Count: 1},
			DrainTimeout: &metav1.Duration{Duration: 3 * time.Minute}, VerifyTimeout: &metav1.Duration{Duration: 3 * time.Minute},
		},
	}
	data, err := sigsyaml.Marshal(m)
	if err != nil {
		return err
	}
	// The status is the driver's: not in the file.
	data = []byte(strings.Replace(string(data), "status: {}\n", "", 1))
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return err
	}
	var flags []string
	for _, n := range l.Nodes {
		flags = append(flags, "--target-pid", n.Name+"="+strconv.Itoa(n.LeaderPID))
	}
	fmt.Println(strings.Join(flags, " "))
	return nil
}

func installCRD(ctx context.Context, dyn dynamic.Interface) error {
	data, err := os.ReadFile(filepath.Join("deploy", "crd", "unshim.io_runtimemigrations.yaml"))
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := sigsyaml.Unmarshal(data, &obj); err != nil {
		return err
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("install the CRD: %w", err)
	}
	for {
		if _, err := dyn.Resource(v1alpha1.GroupVersionResource).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the RuntimeMigration CRD is not served: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// workload is web: two replicas under a PDB of minAvailable 1 (so a drain
// evicts one at a time), ready before the rollout starts; and a DaemonSet
// of the same image. The lab's nodes have no registry to pull from: a
// switch carries over the images of the pods on its node, and the
// DaemonSet puts busybox on every node, so that web's pods rescheduled on
// an already switched node find it there.
func workload(ctx context.Context, kc kubernetes.Interface) error {
	const ns = "demo"
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := lab.EnsureServiceAccount(ctx, kc, ns); err != nil {
		return err
	}
	labels := map[string]string{"app": "web"}
	replicas, grace := int32(2), int64(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", "while true; do sleep 1; done"}}},
		}},
	}}
	if _, err := kc.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}}, Spec: d.Spec.Template.Spec},
	}}
	if _, err := kc.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	one := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}}}
	if _, err := kc.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	for {
		d, err := kc.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		a, aerr := kc.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		if err == nil && aerr == nil && d.Status.ReadyReplicas == replicas && a.Status.DesiredNumberScheduled > 0 && a.Status.NumberReady == a.Status.DesiredNumberScheduled {
			fmt.Fprintln(os.Stderr, "web: 2 replicas ready under PDB web (minAvailable 1); DaemonSet agent ready on every node")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("web not ready: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
