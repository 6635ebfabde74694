package e2e

import (
	"context"
	"os"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestRBAC runs `nodes` and `check` impersonating a user who holds exactly
// the shipped ClusterRole, and the same user without it.
func TestRBAC(t *testing.T) {
	e := requireLab(t)
	data, err := os.ReadFile("../../deploy/rbac/unshim-readonly.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatalf("shipped ClusterRole does not parse: %v", err)
	}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "list" {
				t.Errorf("ClusterRole grants %q on %v: unshim's reads are LISTs only", v, r.Resources)
			}
		}
	}
	ns := e.namespace(t)
	objs := readManifest(t, "testdata/rules/docker-socket-mount.yaml")
	e.apply(t, ns, objs)

	ctx := context.Background()
	suffix := ns
	user := "rbac-user-" + suffix
	role.Name = "unshim-readonly-" + suffix
	if _, err := e.client.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})

	// Without a binding the user can read nothing: clear message, exit 2.
	for _, args := range [][]string{{"nodes"}, {"check", "-n", ns}, {"check", "-A"}} {
		r := run(t, "", e.kube(append(args, "--as", user)...)...)
		if r.code != 2 || !strings.Contains(r.errOut, "forbidden") {
			t.Errorf("%v without the role: exit %d, stderr %q; want 2 and forbidden", args, r.code, r.errOut)
		}
	}

	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	if _, err := e.client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.client.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	// RBAC bindings take effect through the authorizer's informer: retry briefly.
	var r result
	for i := 0; i < 50; i++ {
		if r = run(t, "", e.kube("nodes", "--as", user, "-o", "json")...); r.code == 0 {
			break
		}
	}
	if r.code != 0 {
		t.Fatalf("nodes with the role: exit %d: %s", r.code, r.errOut)
	}
	for _, args := range [][]string{{"check", "-n", ns, "-o", "json"}, {"check", "-A", "-o", "json"}} {
		r = run(t, "", e.kube(append(args, "--as", user)...)...)
		if r.code != 1 {
			t.Fatalf("%v with the role: exit %d, want 1 (findings): %s", args, r.code, r.errOut)
		}
		l := decodeFindings(t, r)
		if len(l.Findings) == 0 {
			t.Errorf("%v with the role: no findings", args)
		}
	}
}
