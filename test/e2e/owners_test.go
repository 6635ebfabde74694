package e2e

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func sockSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "registry.example.com/app:1",
			VolumeMounts: []corev1.VolumeMount{{Name: "sock", MountPath: "/var/run/docker.sock"}}}},
		Volumes: []corev1.Volume{{Name: "sock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/docker.sock"}}}},
	}
}

func ownerRef(apiVersion, kind, name string, uid types.UID) []metav1.OwnerReference {
	t := true
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &t}}
}

// TestOwnerRollUp creates each owner chain in the lab, as the controllers
// would, with pods mounting the Docker socket, and checks that findings roll
// up to the top-level owner with the pods counted.
func TestOwnerRollUp(t *testing.T) {
	e := requireLab(t)
	ns := e.namespace(t)
	ctx := context.Background()
	c := e.client
	labels := map[string]string{"app": "x"}
	sel := &metav1.LabelSelector{MatchLabels: labels}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: sockSpec()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pods := func(prefix string, n int, owner []metav1.OwnerReference) {
		t.Helper()
		for i := 0; i < n; i++ {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Labels: labels, OwnerReferences: owner}, Spec: sockSpec()}
			_, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			must(err)
		}
	}

	d, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	must(err)
	rs, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f9", OwnerReferences: ownerRef("apps/v1", "Deployment", d.Name, d.UID)},
		Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	must(err)
	pods("web-5d8f9", 3, ownerRef("apps/v1", "ReplicaSet", rs.Name, rs.UID))

	bareRS, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "lonely-rs"}, Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	must(err)
	pods("lonely-rs", 2, ownerRef("apps/v1", "ReplicaSet", bareRS.Name, bareRS.UID))

	jobTmpl := *tmpl.DeepCopy()
	jobTmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	cj, err := c.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 0 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTmpl}}}}, metav1.CreateOptions{})
	must(err)
	job, err := c.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-2891", OwnerReferences: ownerRef("batch/v1", "CronJob", cj.Name, cj.UID)},
		Spec: batchv1.JobSpec{Template: jobTmpl}}, metav1.CreateOptions{})
	must(err)
	pods("nightly-2891", 2, ownerRef("batch/v1", "Job", job.Name, job.UID))

	oneOff, err := c.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate-db"}, Spec: batchv1.JobSpec{Template: jobTmpl}}, metav1.CreateOptions{})
	must(err)
	pods("migrate-db", 1, ownerRef("batch/v1", "Job", oneOff.Name, oneOff.UID))

	ds, err := c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	must(err)
	pods("agent", 4, ownerRef("apps/v1", "DaemonSet", ds.Name, ds.UID))

	ss, err := c.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl, ServiceName: "db"}}, metav1.CreateOptions{})
	must(err)
	pods("db", 2, ownerRef("apps/v1", "StatefulSet", ss.Name, ss.UID))

	rc, err := c.CoreV1().ReplicationControllers(ns).Create(ctx, &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: corev1.ReplicationControllerSpec{Selector: labels, Template: &tmpl}}, metav1.CreateOptions{})
	must(err)
	pods("legacy", 2, ownerRef("v1", "ReplicationController", rc.Name, rc.UID))

	pods("bare", 1, nil)

	zero := int32(0)
	_, err = c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "scaled-down"}, Spec: appsv1.DeploymentSpec{Replicas: &zero, Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	must(err)

	// A small page size makes the check page through every list.
	r := run(t, "", e.kube("check", "-n", ns, "-o", "json", "--chunk-size", "2")...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (critical findings): %s", r.code, r.errOut)
	}
	l := decodeFindings(t, r)
	got := map[string]int{}
	for _, f := range l.Findings {
		if f.Rule != "docker-socket-mount" {
			t.Errorf("unexpected rule %s on %s", f.Rule, f.Object)
			continue
		}
		got[f.Object.Kind+"/"+f.Object.Name] = f.Pods
	}
	want := map[string]int{
		"Deployment/web": 3, "ReplicaSet/lonely-rs": 2, "CronJob/nightly": 2, "Job/migrate-db": 1,
		"DaemonSet/agent": 4, "StatefulSet/db": 2, "ReplicationController/legacy": 2, "Pod/bare-0": 1,
		"Deployment/scaled-down": 0,
	}
	for k, n := range want {
		p, ok := got[k]
		if !ok {
			t.Errorf("no finding for %s; got %v", k, got)
			continue
		}
		if p != n {
			t.Errorf("%s: %d pods counted, want %d", k, p, n)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("finding on %s, which is not a top-level owner", k)
		}
	}
	if n := l.Scanned["Pod"]; n != 17 {
		t.Errorf("scanned %d pods, want 17", n)
	}
}
