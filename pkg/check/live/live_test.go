package live_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/live"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/lab/labtest"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Our own minimal CRDs, in the shapes the projects install:
//   - Tekton's CRDs (config/300-crds/300-task.yaml) leave the whole object
//     open: openAPIV3Schema {type: object, x-kubernetes-preserve-unknown-fields: true}.
//   - Argo Workflows' "minimal" CRDs (manifests/base/crds/minimal) name
//     apiVersion, kind, metadata and leave spec open (preserve-unknown-fields).
//   - Runner: a made-up CRD whose full schema has a container-shaped entry.
//   - Widget: a made-up CRD whose full schema has none: never listed.
const crds = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: tasks.tekton.dev}
spec:
  group: tekton.dev
  scope: Namespaced
  names: {kind: Task, plural: tasks, singular: task, listKind: TaskList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: workflows.argoproj.io}
spec:
  group: argoproj.io
  scope: Namespaced
  names: {kind: Workflow, plural: workflows, singular: workflow, listKind: WorkflowList, shortNames: [wf]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [metadata, spec]
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec: {type: object, x-kubernetes-map-type: atomic, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-map-type: atomic, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: runners.unshim-test.example.com}
spec:
  group: unshim-test.example.com
  scope: Namespaced
  names: {kind: Runner, plural: runners, singular: runner, listKind: RunnerList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              volumes:
                type: array
                items:
                  type: object
                  properties:
                    name: {type: string}
                    hostPath: {type: object, properties: {path: {type: string}}}
              jobs:
                type: array
                items:
                  type: object
                  properties:
                    name: {type: string}
                    container:
                      type: object
                      properties:
                        image: {type: string}
                        command: {type: array, items: {type: string}}
                        volumeMounts:
                          type: array
                          items: {type: object, properties: {name: {type: string}, mountPath: {type: string}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.unshim-test.example.com}
spec:
  group: unshim-test.example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}, image: {type: string}}}
`

// Instances, modelled on Tekton's and Argo's documented examples.
const objects = `
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: docker-build}
spec:
  steps:
  - name: build
    image: docker:24-dind
    securityContext: {privileged: true}
    script: |
      dockerd-entrypoint.sh &
      docker build -t app .
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: kaniko}
spec:
  steps:
  - name: build
    image: gcr.io/kaniko-project/executor:v1.23.0
    args: [--destination=registry.example.com/app]
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: build}
spec:
  entrypoint: build
  volumes:
  - name: sock
    hostPath: {path: /var/run/docker.sock}
  templates:
  - name: build
    container:
      image: docker:24-cli
      command: [docker, build, .]
      volumeMounts: [{name: sock, mountPath: /var/run/docker.sock}]
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: from-template}
spec:
  workflowTemplateRef: {name: report}
---
apiVersion: unshim-test.example.com/v1
kind: Runner
metadata: {name: r}
spec:
  volumes:
  - name: sock
    hostPath: {path: /run/docker.sock}
  jobs:
  - name: build
    container:
      image: docker:24-cli
      command: [docker, ps]
      volumeMounts: [{name: sock, mountPath: /var/run/docker.sock}]
---
apiVersion: unshim-test.example.com/v1
kind: Widget
metadata: {name: w}
spec: {size: 3, image: docker:dind}
`

func decodeAll(t *testing.T, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, d := range strings.Split(docs, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

// TestCustomResources checks a namespace of the lab's real apiserver that
// holds Tekton Tasks, Argo Workflows and two made-up kinds: the CRDs are
// discovered, the kinds that may run containers are listed and walked, the
// one that cannot is never listed, an object without a container is
// skipped; then again as a user holding exactly the shipped read-only
// role, which lists Tekton's and Argo's kinds but not the made-up group:
// that kind is reported as skipped, naming the permission.
func TestCustomResources(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)

	for _, crd := range decodeAll(t, crds) {
		_, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", crd.GetName(), err)
		}
		if err == nil {
			name := crd.GetName()
			t.Cleanup(func() { _ = dyn.Resource(crdGVR).Delete(context.Background(), name, metav1.DeleteOptions{}) })
		}
	}
	ns := fmt.Sprintf("crs-%d", time.Now().UnixNano()%1e9)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	for _, obj := range decodeAll(t, objects) {
		gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
		if err != nil {
			t.Fatal(err)
		}
		gvr := gv.WithResource(strings.ToLower(obj.GetKind()) + "s")
		// A new CRD is served once it is established: retry briefly.
		for i := 0; ; i++ {
			_, err = dyn.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
			if err == nil || i == 100 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}

	rs, err := rules.All(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(c kubernetes.Interface, d dynamic.Interface) *check.Result {
		t.Helper()
		res, err := check.Run(ctx, &live.Source{Client: c, Dynamic: d, Namespace: ns}, rs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	findings := func(res *check.Result) map[string][]string {
		out := map[string][]string{}
		for _, f := range res.Findings {
			out[f.Object.String()] = append(out[f.Object.String()], f.Rule+":"+f.Field)
		}
		for _, v := range out {
			sort.Strings(v)
		}
		return out
	}
	skipped := func(res *check.Result) map[string]string {
		out := map[string]string{}
		for _, s := range res.Skipped {
			out[s.Object.String()] = s.Reason
		}
		return out
	}

	admin := run(client, dyn)
	want := map[string][]string{
		"Task/" + ns + "/docker-build": {"docker-cli-privileged:spec.steps[0].command[0]", "docker-in-docker:spec.steps[0].image"},
		"Workflow/" + ns + "/build":    {"docker-socket-mount:spec.volumes[0].hostPath.path"},
		"Runner/" + ns + "/r":          {"docker-socket-mount:spec.volumes[0].hostPath.path"},
	}
	if got := findings(admin); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("findings as admin:\n got  %v\n want %v", got, want)
	}
	sk := skipped(admin)
	if len(sk) != 1 || !strings.Contains(sk["Workflow/"+ns+"/from-template"], "no container-shaped entry") {
		t.Errorf("skipped as admin: %v, want only Workflow %s/from-template", sk, ns)
	}
	if n := admin.Scanned["Widget"]; n != 0 {
		t.Errorf("scanned %d Widgets: a kind whose schema holds no container must not be listed", n)
	}
	if admin.Scanned["Task"] != 2 || admin.Scanned["Workflow"] != 2 || admin.Scanned["Runner"] != 1 {
		t.Errorf("scanned %v, want 2 Tasks, 2 Workflows, 1 Runner", admin.Scanned)
	}

	// As a user bound to exactly the shipped role.
	data, err := os.ReadFile("../../../deploy/rbac/unshim-readonly.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	role.Name = "unshim-readonly-" + ns
	user := "check-" + ns
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: user}
	userClient, userDyn := kubernetes.NewForConfigOrDie(as), dynamic.NewForConfigOrDie(as)
	// The binding takes effect through the authorizer's informer: wait for it.
	for i := 0; i < 100; i++ {
		if _, err = userClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the role's binding never took effect: %v", err)
	}
	res := run(userClient, userDyn)
	delete(want, "Runner/"+ns+"/r")
	if got := findings(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("findings with the shipped role:\n got  %v\n want %v", got, want)
	}
	sk = skipped(res)
	if r := sk["Runner/"+ns+"/*"]; !strings.Contains(r, "cannot list runners.unshim-test.example.com") || !strings.Contains(r, "forbidden") {
		t.Errorf("skipped with the shipped role: %v, want Runner/%s/* naming the list it may not do", sk, ns)
	}
	if len(sk) != 2 {
		t.Errorf("skipped with the shipped role: %v, want the Runners and the Workflow without containers", sk)
	}
}
