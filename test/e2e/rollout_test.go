package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/pin"
	"github.com/unshim/unshim/pkg/rollout/preview"
	"github.com/unshim/unshim/pkg/rollout/store"
	"github.com/unshim/unshim/pkg/runtimelabel"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRD creates (or updates) the shipped RuntimeMigration CRD and
// waits until the apiserver serves it. The CRD is left installed: other
// tests on the same lab may use it.
func installCRD(t *testing.T, e *env) dynamic.Interface {
	t.Helper()
	cfg, err := e.lab.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../deploy/crd/unshim.io_runtimemigrations.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	ctx := context.Background()
	res := dyn.Resource(crdGVR)
	if _, err := res.Create(ctx, u, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		cur, err := res.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u.SetResourceVersion(cur.GetResourceVersion())
		if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			t.Fatalf("update CRD: %v", err)
		}
	} else if err != nil {
		t.Fatalf("the apiserver refused the shipped CRD: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := res.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conds, _, _ := unstructured.NestedSlice(cur.Object, "status", "conditions")
		established := false
		for _, c := range conds {
			c := c.(map[string]any)
			if c["type"] == "Established" && c["status"] == "True" {
				established = true
			}
		}
		if established {
			if _, err := dyn.Resource(v1alpha1.GroupVersionResource).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
				return dyn
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD %s not established: %v", u.GetName(), conds)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func rtm(name string, mut func(map[string]any)) *unstructured.Unstructured {
	spec := map[string]any{"targetRuntime": "containerd", "maxUnavailable": int64(1)}
	if mut != nil {
		mut(spec)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": v1alpha1.Kind,
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
}

// TestRolloutCRDValidation sends objects the schema must refuse to the real
// apiserver, and one it must take.
func TestRolloutCRDValidation(t *testing.T) {
	e := requireLab(t)
	dyn := installCRD(t, e)
	ctx := context.Background()
	res := dyn.Resource(v1alpha1.GroupVersionResource)
	base := e.namespace(t)
	tests := []struct {
		name  string
		mut   func(map[string]any)
		field string // "" means accepted
	}{
		{"percent over 100", func(s map[string]any) { s["maxUnavailable"] = "150%" }, "spec.maxUnavailable"},
		{"not a percent", func(s map[string]any) { s["maxUnavailable"] = "half" }, "spec.maxUnavailable"},
		{"zero count", func(s map[string]any) { s["maxUnavailable"] = int64(0) }, "spec.maxUnavailable"},
		{"zone zero count", func(s map[string]any) { s["zone"] = map[string]any{"maxUnavailable": int64(0)} }, "spec.zone.maxUnavailable"},
		{"unknown target", func(s map[string]any) { s["targetRuntime"] = "podman" }, "spec.targetRuntime"},
		{"unknown canary mode", func(s map[string]any) { s["canary"] = map[string]any{"mode": "Some"} }, "spec.canary.mode"},
		{"negative budget", func(s map[string]any) { s["failureBudget"] = map[string]any{"total": int64(-1)} }, "spec.failureBudget.total"},
		{"bad window time", func(s map[string]any) { s["windows"] = []any{map[string]any{"start": "25:00", "end": "06:00"}} }, "spec.windows[0].start"},
		{"gate checks zero", func(s map[string]any) {
			s["gates"] = []any{map[string]any{"name": "g", "type": "HTTP", "url": "http://x", "checks": int64(0)}}
		}, "spec.gates[0].checks"},
		{"accepted: percent and per-pool count", func(s map[string]any) {
			s["maxUnavailable"] = "25%"
			s["pool"] = map[string]any{"labelKey": "pool", "maxUnavailable": int64(2)}
			s["canary"] = map[string]any{"mode": "Count", "count": int64(2)}
		}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("%s-v%d", base, i)
			_, err := res.Create(ctx, rtm(name, tt.mut), metav1.CreateOptions{})
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = res.Delete(ctx, name, metav1.DeleteOptions{})
				return
			}
			if err == nil {
				_ = res.Delete(ctx, name, metav1.DeleteOptions{})
				t.Fatalf("the apiserver took it; want it refused at %s", tt.field)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err %v; want Invalid naming %s", err, tt.field)
			}
		})
	}
	// The shipped example: the CLI's checks and the apiserver both take it.
	example, err := os.ReadFile("../../deploy/examples/runtimemigration.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1alpha1.Decode(example, "runtimemigration.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m.Name = base + "-example"
	st := &store.Store{Dynamic: dyn}
	if _, err := st.Create(ctx, m); err != nil {
		t.Fatalf("the apiserver refused the example: %v", err)
	}
	_ = res.Delete(ctx, m.Name, metav1.DeleteOptions{})

	// The same file checks: the CLI refuses a bad file before the apiserver.
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte("apiVersion: unshim.io/v1alpha1\nkind: RuntimeMigration\nmetadata: {name: x}\nspec: {targetRuntime: containerd, maxUnavailable: 150%}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"rollout", "create", "-f", f}, {"rollout", "plan", "-f", f}} {
		r := run(t, "", e.kube(args...)...)
		if r.code != 2 || !strings.Contains(r.errOut, "maxUnavailable") {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming maxUnavailable", args, r.code, r.errOut)
		}
	}
	r := run(t, "", e.kube("rollout", "create", "-f", filepath.Join(t.TempDir(), "missing.yaml"))...)
	if r.code != 2 || !strings.Contains(r.errOut, "missing.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.errOut)
	}
}

// TestRolloutPrinterColumns reads a RuntimeMigration as a Table, as kubectl
// get does, after a driver-like status write.
func TestRolloutPrinterColumns(t *testing.T) {
	e := requireLab(t)
	dyn := installCRD(t, e)
	ctx := context.Background()
	name := e.namespace(t) + "-cols"
	res := dyn.Resource(v1alpha1.GroupVersionResource)
	u, err := res.Create(ctx, rtm(name, nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	m, err := v1alpha1.FromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	m.Status = v1alpha1.RuntimeMigrationStatus{Phase: v1alpha1.PhaseRunning, Nodes: []v1alpha1.NodeStatus{
		{Name: "a", State: v1alpha1.NodeDone}, {Name: "b", State: v1alpha1.NodeFailed, Cause: "verify"},
		{Name: "c", State: v1alpha1.NodeBlocked}, {Name: "d", State: v1alpha1.NodeDone}, {Name: "e", State: v1alpha1.NodePending},
	}}
	m.Status.Recount()
	su, err := v1alpha1.ToUnstructured(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.UpdateStatus(ctx, su, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg, err := e.lab.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(cfg.Host, "/")+"/apis/unshim.io/v1alpha1/runtimemigrations/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("table GET: %s: %s", resp.Status, body)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if want := []string{"Name", "Target", "Phase", "Done", "Failed", "Blocked", "Age"}; !reflect.DeepEqual(cols, want) {
		t.Fatalf("columns %v, want %v", cols, want)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows", len(table.Rows))
	}
	got := fmt.Sprint(table.Rows[0].Cells[:6])
	if want := fmt.Sprint([]any{name, "containerd", "Running", "2/5", float64(1), float64(1)}); got != want {
		t.Errorf("row %s, want %s", got, want)
	}
}

// bindRole creates the shipped ClusterRole named role (renamed with
// suffix) and binds it to user.
func bindRole(t *testing.T, e *env, roles map[string]rbacv1.ClusterRole, role, suffix, user string) {
	t.Helper()
	ctx := context.Background()
	r, ok := roles[role]
	if !ok {
		t.Fatalf("deploy/rbac/unshim-rollout.yaml has no ClusterRole %s", role)
	}
	r.Name = role + "-" + suffix
	if _, err := e.client.RbacV1().ClusterRoles().Create(ctx, &r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: r.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: r.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	if _, err := e.client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.client.RbacV1().ClusterRoleBindings().Delete(context.Background(), r.Name, metav1.DeleteOptions{})
		_ = e.client.RbacV1().ClusterRoles().Delete(context.Background(), r.Name, metav1.DeleteOptions{})
	})
}

func rolloutRoles(t *testing.T) map[string]rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile("../../deploy/rbac/unshim-rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]rbacv1.ClusterRole{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var r rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &r); err != nil {
			t.Fatalf("shipped ClusterRole does not parse: %v", err)
		}
		roles[r.Name] = r
	}
	return roles
}

// impersonated returns a dynamic client acting as user (rest.Config.Impersonate).
func impersonated(t *testing.T, e *env, user string) dynamic.Interface {
	t.Helper()
	cfg, err := e.lab.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

// TestRolloutRoles: a user with only the operator role pauses and resumes
// a rollout (with Events recorded) but cannot write its status; a viewer
// reads it but cannot pause it; the driver role writes status.
func TestRolloutRoles(t *testing.T) {
	e := requireLab(t)
	installCRD(t, e)
	roles := rolloutRoles(t)
	for _, want := range []string{"unshim-rollout-viewer", "unshim-rollout-operator", "unshim-rollout-driver"} {
		if _, ok := roles[want]; !ok {
			t.Fatalf("deploy/rbac/unshim-rollout.yaml lacks %s", want)
		}
	}
	ctx := context.Background()
	suffix := e.namespace(t)
	operator, viewer, driver := "op-"+suffix, "view-"+suffix, "drv-"+suffix
	bindRole(t, e, roles, "unshim-rollout-operator", suffix, operator)
	bindRole(t, e, roles, "unshim-rollout-viewer", suffix, viewer)
	bindRole(t, e, roles, "unshim-rollout-driver", suffix, driver)

	// The operator creates the rollout from a file.
	name := suffix + "-rbac"
	f := filepath.Join(t.TempDir(), "rollout.yaml")
	if err := os.WriteFile(f, []byte("apiVersion: unshim.io/v1alpha1\nkind: RuntimeMigration\nmetadata:\n  name: "+name+"\nspec:\n  maxUnavailable: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := store.Store{Dynamic: impersonated(t, e, "")}
	cfgAdmin, _ := e.lab.RESTConfig()
	admin.Dynamic, _ = dynamic.NewForConfig(cfgAdmin)
	t.Cleanup(func() {
		_ = admin.Dynamic.Resource(v1alpha1.GroupVersionResource).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if r := run(t, "", e.kube("rollout", "create", "-f", f, "--as", viewer)...); r.code != 2 || !strings.Contains(r.errOut, "forbidden") {
		t.Errorf("viewer create: exit %d, stderr %q; want 2 forbidden", r.code, r.errOut)
	}
	if r := run(t, "", e.kube("rollout", "create", "-f", f, "--as", operator)...); r.code != 0 {
		t.Fatalf("operator create: exit %d: %s", r.code, r.errOut)
	}

	// Pause and resume as the operator; the spec changes and Events are recorded.
	for _, step := range []struct {
		verb   string
		paused bool
		reason string
	}{{"pause", true, "Paused"}, {"resume", false, "Resumed"}} {
		r := run(t, "", e.kube("rollout", step.verb, name, "--as", operator)...)
		if r.code != 0 {
			t.Fatalf("operator %s: exit %d: %s", step.verb, r.code, r.errOut)
		}
		m, err := admin.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if m.Spec.Paused != step.paused {
			t.Errorf("after %s: spec.paused %v", step.verb, m.Spec.Paused)
		}
		evs, err := e.client.CoreV1().Events(store.EventNamespace).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name + ",involvedObject.kind=" + v1alpha1.Kind + ",reason=" + step.reason})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs.Items) != 1 || evs.Items[0].InvolvedObject.UID != m.UID {
			t.Errorf("after %s: %d %s events on the rollout", step.verb, len(evs.Items), step.reason)
		}
	}

	// The viewer reads but cannot pause or abort.
	if r := run(t, "", e.kube("rollout", "status", name, "--as", viewer)...); r.code != 0 || !strings.Contains(r.out, name) {
		t.Errorf("viewer status: exit %d, out %q, stderr %q", r.code, r.out, r.errOut)
	}
	for _, verb := range []string{"pause", "abort"} {
		if r := run(t, "", e.kube("rollout", verb, name, "--as", viewer)...); r.code != 2 || !strings.Contains(r.errOut, "forbidden") {
			t.Errorf("viewer %s: exit %d, stderr %q; want 2 forbidden", verb, r.code, r.errOut)
		}
	}

	// Status is the driver's: the operator cannot write it, the driver can.
	statusPatch := []byte(`{"status":{"phase":"Running","message":"wave 0"}}`)
	_, err := impersonated(t, e, operator).Resource(v1alpha1.GroupVersionResource).Patch(ctx, name, types.MergePatchType, statusPatch, metav1.PatchOptions{}, "status")
	if !apierrors.IsForbidden(err) {
		t.Errorf("operator status patch: %v; want forbidden", err)
	}
	if _, err := impersonated(t, e, driver).Resource(v1alpha1.GroupVersionResource).Patch(ctx, name, types.MergePatchType, statusPatch, metav1.PatchOptions{}, "status"); err != nil {
		t.Errorf("driver status patch: %v", err)
	}
	// A status change does not let anyone change the spec through status.
	m, err := admin.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status.Phase != v1alpha1.PhaseRunning || m.Spec.Paused {
		t.Errorf("after the driver's status patch: phase %q paused %v", m.Status.Phase, m.Spec.Paused)
	}

	// Abort as the operator; status shows it.
	if r := run(t, "", e.kube("rollout", "abort", name, "--as", operator)...); r.code != 0 {
		t.Fatalf("operator abort: exit %d: %s", r.code, r.errOut)
	}
	r := run(t, "", e.kube("rollout", "status", name, "--as", viewer)...)
	if !strings.Contains(r.out, "abort requested") || !strings.Contains(r.out, "Running") {
		t.Errorf("status after abort:\n%s", r.out)
	}
	if r := run(t, "", e.kube("rollout", "pause", "no-such-rollout", "--as", operator)...); r.code != 2 || !strings.Contains(r.errOut, "not found") {
		t.Errorf("pause of a missing rollout: exit %d, stderr %q", r.code, r.errOut)
	}
}

// labNode registers a node object and its status as a kubelet would.
func labNode(t *testing.T, e *env, name string, labels map[string]string, runtime, kubelet, socket string) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if socket != "" {
		n.Annotations = map[string]string{"kubeadm.alpha.kubernetes.io/cri-socket": socket}
	}
	created, err := e.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	created.Status.NodeInfo = corev1.NodeSystemInfo{ContainerRuntimeVersion: runtime, KubeletVersion: kubelet, OperatingSystem: "linux"}
	created.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := e.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutPlan previews a rollout over node objects of its own: waves
// within the limits, nodes on containerd skipped, the PDB that allows no
// disruption named with its pod, the Docker-dependent pod found by check.
func TestRolloutPlan(t *testing.T) {
	e := requireLab(t)
	installCRD(t, e)
	ctx := context.Background()
	ns := e.namespace(t)

	with := func(kv ...string) map[string]string {
		m := map[string]string{"rollout-test": ns}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	nodes := []string{ns + "-a1", ns + "-a2", ns + "-b1", ns + "-b2", ns + "-cp", ns + "-ctr"}
	labNode(t, e, nodes[0], with("topology.kubernetes.io/zone", "a"), "docker://20.10.24", "v1.23.17", "/var/run/dockershim.sock")
	labNode(t, e, nodes[1], with("topology.kubernetes.io/zone", "a"), "docker://24.0.9", "v1.26.15", "unix:///var/run/cri-dockerd.sock")
	labNode(t, e, nodes[2], with("topology.kubernetes.io/zone", "b"), "docker://20.10.24", "v1.23.17", "")
	labNode(t, e, nodes[3], with("topology.kubernetes.io/zone", "b"), "docker://20.10.24", "v1.23.17", "")
	labNode(t, e, nodes[4], with("topology.kubernetes.io/zone", "a", "node-role.kubernetes.io/control-plane", ""), "docker://20.10.24", "v1.23.17", "")
	labNode(t, e, nodes[5], with("topology.kubernetes.io/zone", "b"), "containerd://1.7.24", "v1.30.14", "")

	// Pods on the nodes: one under a PDB that allows no disruption, one
	// under a PDB that allows one, one that mounts the Docker socket.
	pod := func(name, node string, labels map[string]string, spec func(*corev1.PodSpec)) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.9"}}}}
		if spec != nil {
			spec(&p.Spec)
		}
		if _, err := e.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod("db-0", nodes[0], map[string]string{"app": "db"}, nil)
	pod("web-0", nodes[2], map[string]string{"app": "web"}, nil)
	pod("builder", nodes[3], nil, func(s *corev1.PodSpec) {
		s.Volumes = []corev1.Volume{{Name: "sock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/docker.sock"}}}}
		s.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "sock", MountPath: "/var/run/docker.sock"}}
	})
	one := intstr.FromInt32(1)
	for _, app := range []string{"db", "web"} {
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: app},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}
		created, err := e.client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if app == "web" { // as the disruption controller would report a spare pod
			created.Status = policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1, CurrentHealthy: 2, DesiredHealthy: 1, ExpectedPods: 2, ObservedGeneration: created.Generation}
			if _, err := e.client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	spec := fmt.Sprintf(`apiVersion: unshim.io/v1alpha1
kind: RuntimeMigration
metadata:
  name: %s-plan
spec:
  nodes:
    selector:
      matchLabels: {rollout-test: %s}
  maxUnavailable: 2
  zone: {maxUnavailable: 1}
  canary: {mode: Count, count: 1}
  soakTime: 1m
`, ns, ns)
	f := filepath.Join(t.TempDir(), "rollout.yaml")
	if err := os.WriteFile(f, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", e.kube("rollout", "plan", "-f", f, "-o", "json", "--node-time", "4m")...)
	if r.code != 0 {
		t.Fatalf("rollout plan: exit %d: %s", r.code, r.errOut)
	}
	var p preview.Preview
	if err := json.Unmarshal([]byte(r.out), &p); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	var waves []string
	for _, w := range p.Plan.Waves {
		waves = append(waves, w.Kind+":"+strings.Join(w.Nodes, ","))
	}
	want := []string{
		"Canary:" + nodes[0],
		"Workers:" + nodes[1] + "," + nodes[2], // one per zone, two at most
		"Workers:" + nodes[3],
		"ControlPlane:" + nodes[4],
	}
	if !reflect.DeepEqual(waves, want) {
		t.Errorf("waves\n got %v\nwant %v", waves, want)
	}
	if len(p.Plan.Skipped) != 1 || p.Plan.Skipped[0].Name != nodes[5] {
		t.Errorf("skipped %+v, want %s", p.Plan.Skipped, nodes[5])
	}
	if got, want := p.ETA.Duration, 4*4*time.Minute+3*time.Minute; got != want {
		t.Errorf("ETA %v, want %v", got, want)
	}
	if len(p.PDBs) != 1 || p.PDBs[0].Name != "db" || !reflect.DeepEqual(p.PDBs[0].Pods, []string{ns + "/db-0"}) || !reflect.DeepEqual(p.PDBs[0].Nodes, []string{nodes[0]}) {
		t.Errorf("blocking PDBs %+v; want only %s/db with pod db-0 on %s", p.PDBs, ns, nodes[0])
	}
	found := false
	for _, d := range p.Docker {
		if d.Object.Name == "builder" && d.Object.Namespace == ns {
			found = true
		}
		if d.Object.Namespace != ns {
			// Only pods on the selected nodes count; other tests' pods are elsewhere.
			t.Errorf("finding outside the selected nodes: %+v", d)
		}
	}
	if !found {
		t.Errorf("the pod mounting docker.sock is not among the Docker dependencies: %+v", p.Docker)
	}
	risky := false
	for _, rk := range p.Risks {
		if strings.Contains(rk.Message, ns+"/db") {
			risky = true
		}
	}
	if !risky {
		t.Errorf("no risk names the blocking PDB: %+v", p.Risks)
	}

	// The table shows the same, and a created rollout previews the same by name.
	r = run(t, "", e.kube("rollout", "plan", "-f", f, "--node-time", "4m")...)
	for _, s := range []string{"4 waves", "ETA 19m0s", "ControlPlane", nodes[5] + ": already runs containerd", ns + "/db on " + nodes[0]} {
		if !strings.Contains(r.out, s) {
			t.Errorf("table lacks %q:\n%s", s, r.out)
		}
	}
	if r := run(t, "", e.kube("rollout", "create", "-f", f)...); r.code != 0 {
		t.Fatalf("create: %s", r.errOut)
	}
	t.Cleanup(func() {
		cfg, _ := e.lab.RESTConfig()
		dyn, _ := dynamic.NewForConfig(cfg)
		_ = dyn.Resource(v1alpha1.GroupVersionResource).Delete(context.Background(), ns+"-plan", metav1.DeleteOptions{})
	})
	r2 := run(t, "", e.kube("rollout", "plan", ns+"-plan", "-o", "json", "--node-time", "4m")...)
	var p2 preview.Preview
	if err := json.Unmarshal([]byte(r2.out), &p2); err != nil || !reflect.DeepEqual(p.Plan.Waves, p2.Plan.Waves) {
		t.Errorf("plan by name differs from plan by file (%v): %s", err, r2.errOut)
	}

	// The runtime label: set on every node of the group, then nothing to change.
	r = run(t, "", e.kube("label-runtime", "-l", "rollout-test="+ns)...)
	if r.code != 0 {
		t.Fatalf("label-runtime: %s", r.errOut)
	}
	wantLabel := map[string]string{nodes[0]: "docker", nodes[1]: "cri-dockerd", nodes[5]: "containerd"}
	list, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "rollout-test=" + ns})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		if w, ok := wantLabel[n.Name]; ok && n.Labels[runtimelabel.Key] != w {
			t.Errorf("node %s labelled %q, want %q", n.Name, n.Labels[runtimelabel.Key], w)
		}
	}
	if r := run(t, "", e.kube("label-runtime", "-l", "rollout-test="+ns)...); r.code != 0 || r.out != "" {
		t.Errorf("second label-runtime changed something: %q %q", r.out, r.errOut)
	}

}

// TestPinUnpin pins a Deployment that mounts the Docker socket to Docker
// nodes, and unpin restores its pod template exactly.
func TestPinUnpin(t *testing.T) {
	e := requireLab(t)
	ctx := context.Background()
	ns := e.namespace(t)
	replicas := int32(0)
	mk := func(name string, affinity *corev1.Affinity) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec: corev1.PodSpec{Affinity: affinity,
						Volumes:    []corev1.Volume{{Name: "sock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/docker.sock"}}}},
						Containers: []corev1.Container{{Name: "c", Image: "docker:24-cli", VolumeMounts: []corev1.VolumeMount{{Name: "sock", MountPath: "/var/run/docker.sock"}}}}}}}}
	}
	ownTerm := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}}}}}
	before := map[string]corev1.PodSpec{}
	for _, d := range []*appsv1.Deployment{mk("plain", nil), mk("own-term", ownTerm)} {
		created, err := e.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before[d.Name] = created.Spec.Template.Spec
	}
	r := run(t, "", e.kube("pin", "--only-namespace", ns)...)
	if r.code != 0 || !strings.Contains(r.out, "Deployment/"+ns+"/plain") || !strings.Contains(r.out, runtimelabel.Key) {
		t.Fatalf("pin (show): exit %d\n%s\n%s", r.code, r.out, r.errOut)
	}
	if d, _ := e.client.AppsV1().Deployments(ns).Get(ctx, "plain", metav1.GetOptions{}); d.Spec.Template.Spec.Affinity != nil {
		t.Fatal("pin without --apply changed the Deployment")
	}
	if r := run(t, "", e.kube("pin", "--only-namespace", ns, "--apply")...); r.code != 0 {
		t.Fatalf("pin --apply: %s", r.errOut)
	}
	wantExpr := corev1.NodeSelectorRequirement{Key: runtimelabel.Key, Operator: corev1.NodeSelectorOpIn, Values: runtimelabel.DockerValues}
	for name, nTerms := range map[string]int{"plain": 1, "own-term": 1} {
		d, err := e.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Annotations[pin.Annotation]; !ok {
			t.Errorf("%s: no %s annotation", name, pin.Annotation)
		}
		a := d.Spec.Template.Spec.Affinity
		if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
			t.Fatalf("%s: no required node affinity after pin", name)
		}
		terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != nTerms {
			t.Fatalf("%s: %d terms", name, len(terms))
		}
		last := terms[0].MatchExpressions[len(terms[0].MatchExpressions)-1]
		if !reflect.DeepEqual(last, wantExpr) {
			t.Errorf("%s: expression %+v, want %+v", name, last, wantExpr)
		}
		if name == "own-term" && terms[0].MatchExpressions[0].Key != "disk" {
			t.Errorf("own-term lost its own expression: %+v", terms[0])
		}
	}
	// Pinning again changes nothing.
	if r := run(t, "", e.kube("pin", "--only-namespace", ns)...); !strings.Contains(r.out, "already pinned") {
		t.Errorf("second pin: %q", r.out)
	}
	if r := run(t, "", e.kube("unpin", "--only-namespace", ns, "--apply")...); r.code != 0 {
		t.Fatalf("unpin --apply: %s", r.errOut)
	}
	for name, spec := range before {
		d, err := e.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d.Spec.Template.Spec, spec) {
			t.Errorf("%s: pod spec after unpin differs from before pin:\n got %+v\nwant %+v", name, d.Spec.Template.Spec.Affinity, spec.Affinity)
		}
		if _, ok := d.Annotations[pin.Annotation]; ok {
			t.Errorf("%s: annotation left after unpin", name)
		}
	}

}

// TestRolloutStatusWatch follows a rollout with `status -w` while a
// driver-like writer moves it to Running and then Succeeded; the watch
// prints each state and ends by itself at the final phase.
func TestRolloutStatusWatch(t *testing.T) {
	e := requireLab(t)
	dyn := installCRD(t, e)
	ctx := context.Background()
	name := e.namespace(t) + "-watch"
	res := dyn.Resource(v1alpha1.GroupVersionResource)
	if _, err := res.Create(ctx, rtm(name, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Delete(context.Background(), name, metav1.DeleteOptions{}) })

	done := make(chan result, 1)
	go func() { done <- run(t, "", e.kube("rollout", "status", name, "-w")...) }()
	setStatus := func(phase string, state string) {
		t.Helper()
		u, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := v1alpha1.FromUnstructured(u)
		if err != nil {
			t.Fatal(err)
		}
		m.Status.Phase = phase
		m.Status.Nodes = []v1alpha1.NodeStatus{{Name: "n1", State: state}}
		m.Status.Recount()
		su, err := v1alpha1.ToUnstructured(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.UpdateStatus(ctx, su, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the watch start; an update before it is read by the first GET
	setStatus(v1alpha1.PhaseRunning, v1alpha1.NodeSwitching)
	time.Sleep(200 * time.Millisecond)
	setStatus(v1alpha1.PhaseSucceeded, v1alpha1.NodeDone)
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("status -w: exit %d: %s", r.code, r.errOut)
		}
		// Not a terminal: one line per change, then the final table.
		for _, s := range []string{": Running", "node n1 (wave 1): Switching", ": Succeeded", "node n1 (wave 1): Done", "1 done"} {
			if !strings.Contains(r.out, s) {
				t.Errorf("status -w output lacks %q:\n%s", s, r.out)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("status -w did not end at phase Succeeded")
	}
}

// TestRolloutRunBadFlags: `rollout run` refuses bad transport flags with
// exit 2 before it reaches the cluster (no lab needed).
func TestRolloutRunBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--via", "telnet"}, `--via "telnet": want pod, ssh or nsenter`},
		{[]string{"--via", "nsenter"}, "--via nsenter needs --target-pid"},
		{[]string{"--target-pid", "n1=42"}, "--target-pid goes with --via nsenter"},
		{[]string{"--via", "nsenter", "--target-pid", "n1=0"}, "--target-pid n1=0: want a PID"},
		{[]string{"--lease-duration", "1s"}, "--lease-duration 1s: want at least 3s"},
		{[]string{"--via", "pod"}, "--via pod needs --agent-image"},
		{[]string{"--chunk-size", "-1"}, "--chunk-size -1: want 0 or more"},
	} {
		r := run(t, "", append([]string{"--kubeconfig", "/nonexistent", "rollout", "run", "r"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.errOut, tc.want) {
			t.Errorf("rollout run %v: exit %d, stderr %q; want 2 with %q", tc.args, r.code, r.errOut, tc.want)
		}
	}
	if r := run(t, "", "--kubeconfig", "/nonexistent", "rollout", "controller", "--lease-duration", "1s"); r.code != 2 || !strings.Contains(r.errOut, "want at least 3s") {
		t.Errorf("rollout controller --lease-duration 1s: exit %d, stderr %q", r.code, r.errOut)
	}
}

// TestRolloutReportUndoBadFlags: `rollout report` and `rollout undo` refuse
// bad flags with exit 2 before they reach the cluster, and write nothing.
func TestRolloutReportUndoBadFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.html")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "r", "-o", "pdf"}, `-o "pdf": want markdown or html`},
		{[]string{"report", "r", "--output-file", "/nonexistent/dir/report.html"}, "its directory does not exist"},
		{[]string{"report", "r", "--chunk-size", "-1"}, "--chunk-size -1"},
		{[]string{"report", "r", "-o", "yaml", "--output-file", out}, `-o "yaml"`},
		{[]string{"undo", "r", "--via", "pod"}, "--via pod needs --agent-image"},
		{[]string{"undo", "r", "--via", "telnet"}, `--via "telnet": want pod, ssh or nsenter`},
		{[]string{"undo", "r", "--via", "nsenter"}, "--via nsenter needs --target-pid"},
		{[]string{"undo", "r", "--target-pid", "n1=42"}, "--target-pid goes with --via nsenter"},
		{[]string{"undo", "r", "--lease-duration", "1s"}, "--lease-duration 1s: want at least 3s"},
	} {
		r := run(t, "", append([]string{"--kubeconfig", "/nonexistent", "rollout"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.errOut, tc.want) {
			t.Errorf("rollout %v: exit %d, stderr %q; want 2 with %q", tc.args, r.code, r.errOut, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused report wrote %s: %v", out, err)
	}
}
