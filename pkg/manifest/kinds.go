package manifest

import "strings"

// podSpecPaths maps "group/Kind" of the built-in kinds that hold a pod spec
// to the field path of that spec. Old API groups and versions
// (extensions/v1beta1, apps/v1beta1, apps/v1beta2, batch/v1beta1,
// batch/v2alpha1), which dockershim-era clusters still carry in their
// manifests, are read as their current types: the pod template sits at the
// same path in every version.
var podSpecPaths = map[string]string{
	"/Pod":                   "spec",
	"/PodTemplate":           "template.spec",
	"/ReplicationController": "spec.template.spec",
	"apps/Deployment":        "spec.template.spec",
	"extensions/Deployment":  "spec.template.spec",
	"apps/ReplicaSet":        "spec.template.spec",
	"extensions/ReplicaSet":  "spec.template.spec",
	"apps/DaemonSet":         "spec.template.spec",
	"extensions/DaemonSet":   "spec.template.spec",
	"apps/StatefulSet":       "spec.template.spec",
	"batch/Job":              "spec.template.spec",
	"batch/CronJob":          "spec.jobTemplate.spec.template.spec",
}

// noPodGroups are built-in API groups none of whose kinds runs a container.
var noPodGroups = map[string]bool{
	"rbac.authorization.k8s.io":    true,
	"networking.k8s.io":            true,
	"policy":                       true,
	"autoscaling":                  true,
	"apiextensions.k8s.io":         true,
	"scheduling.k8s.io":            true,
	"storage.k8s.io":               true,
	"admissionregistration.k8s.io": true,
	"apiregistration.k8s.io":       true,
	"node.k8s.io":                  true,
	"coordination.k8s.io":          true,
	"discovery.k8s.io":             true,
	"certificates.k8s.io":          true,
	"flowcontrol.apiserver.k8s.io": true,
	"events.k8s.io":                true,
	"resource.k8s.io":              true,
}

// noPodKinds are the other built-in kinds that run no container.
var noPodKinds = map[string]bool{
	"/Service": true, "/ServiceAccount": true, "/Namespace": true, "/Endpoints": true,
	"/PersistentVolume": true, "/PersistentVolumeClaim": true, "/LimitRange": true,
	"/ResourceQuota": true, "/Event": true, "/Node": true, "/Binding": true, "/ComponentStatus": true,
	"apps/ControllerRevision": true, "extensions/Ingress": true, "extensions/NetworkPolicy": true,
	"extensions/PodSecurityPolicy": true,
}

// groupOf returns the API group of apiVersion ("" for the core group).
func groupOf(apiVersion string) string {
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

// podSpecPath returns the field path of the pod spec of a built-in workload kind.
func podSpecPath(apiVersion, kind string) (string, bool) {
	p, ok := podSpecPaths[groupOf(apiVersion)+"/"+kind]
	return p, ok
}

// runsNoPods reports whether a built-in kind is known to run no container.
func runsNoPods(apiVersion, kind string) bool {
	g := groupOf(apiVersion)
	return noPodGroups[g] || noPodKinds[g+"/"+kind]
}
