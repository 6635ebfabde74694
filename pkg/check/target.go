package check

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// NewTarget returns the Target for a typed object the rules can inspect
// (Pods, workloads with a pod template, ConfigMaps), with Owner set to the
// object itself, and false for any other kind.
func NewTarget(obj runtime.Object) (*Target, bool) {
	var (
		meta metav1.Object
		kind string
		t    Target
	)
	switch o := obj.(type) {
	case *corev1.Pod:
		meta, kind, t.PodSpec, t.SpecPath = o, "Pod", &o.Spec, "spec"
	case *corev1.PodTemplate:
		meta, kind, t.PodSpec, t.SpecPath = o, "PodTemplate", &o.Template.Spec, "template.spec"
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return nil, false
		}
		meta, kind, t.PodSpec, t.SpecPath = o, "ReplicationController", &o.Spec.Template.Spec, "spec.template.spec"
	case *appsv1.Deployment:
		meta, kind, t.PodSpec, t.SpecPath = o, "Deployment", &o.Spec.Template.Spec, "spec.template.spec"
	case *appsv1.ReplicaSet:
		meta, kind, t.PodSpec, t.SpecPath = o, "ReplicaSet", &o.Spec.Template.Spec, "spec.template.spec"
	case *appsv1.DaemonSet:
		meta, kind, t.PodSpec, t.SpecPath = o, "DaemonSet", &o.Spec.Template.Spec, "spec.template.spec"
	case *appsv1.StatefulSet:
		meta, kind, t.PodSpec, t.SpecPath = o, "StatefulSet", &o.Spec.Template.Spec, "spec.template.spec"
	case *batchv1.Job:
		meta, kind, t.PodSpec, t.SpecPath = o, "Job", &o.Spec.Template.Spec, "spec.template.spec"
	case *batchv1.CronJob:
		meta, kind, t.PodSpec, t.SpecPath = o, "CronJob", &o.Spec.JobTemplate.Spec.Template.Spec, "spec.jobTemplate.spec.template.spec"
	case *corev1.ConfigMap:
		meta, kind, t.ConfigMap = o, "ConfigMap", o
	default:
		return nil, false
	}
	t.Object = ObjectRef{Kind: kind, Namespace: meta.GetNamespace(), Name: meta.GetName()}
	t.Owner = t.Object
	return &t, true
}
