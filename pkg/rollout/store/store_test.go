package store

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

func newStore(t *testing.T) (*Store, *fake.Clientset) {
	t.Helper()
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.GroupVersionResource: v1alpha1.ListKind})
	kc := fake.NewClientset()
	return &Store{Dynamic: dyn, Kube: kc, Actor: "alice@laptop"}, kc
}

func TestCreateApplyEvents(t *testing.T) {
	s, kc := newStore(t)
	ctx := t.Context()
	m := &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "r"},
		Spec:   v1alpha1.RuntimeMigrationSpec{TargetRuntime: v1alpha1.TargetContainerd},
		Status: v1alpha1.RuntimeMigrationStatus{Phase: v1alpha1.PhaseSucceeded}}
	created, err := s.Create(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if created.Status.Phase != "" {
		t.Errorf("create kept a status: %+v", created.Status)
	}
	bad := m.DeepCopy()
	bad.Name, bad.Spec.TargetRuntime = "bad", "podman"
	if _, err := s.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "targetRuntime") {
		t.Errorf("create of a bad spec: %v", err)
	}

	for _, step := range []struct {
		change        Change
		paused, abort bool
		reason, actor string
	}{
		{Pause, true, false, "Paused", "alice@laptop"},
		{Resume, false, false, "Resumed", "alice@laptop"},
		{Abort, false, true, "Aborted", "alice@laptop"},
	} {
		got, err := s.Apply(ctx, "r", step.change)
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.Paused != step.paused || got.Spec.Abort != step.abort || got.Spec.TargetRuntime != v1alpha1.TargetContainerd {
			t.Errorf("after %s: spec %+v", step.change.Verb, got.Spec)
		}
		evs, err := kc.CoreV1().Events(EventNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last := evs.Items[len(evs.Items)-1]
		if last.Reason != step.reason || last.InvolvedObject.Kind != v1alpha1.Kind || last.InvolvedObject.Name != "r" ||
			!strings.Contains(last.Message, step.actor) {
			t.Errorf("after %s: event %+v", step.change.Verb, last)
		}
	}
	if _, err := s.Apply(ctx, "missing", Pause); err == nil || !strings.Contains(err.Error(), "pause runtimemigration missing") {
		t.Errorf("pause of a missing rollout: %v", err)
	}
}
