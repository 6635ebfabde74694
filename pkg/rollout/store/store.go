// Package store owns RuntimeMigration objects in the cluster: reading,
// listing, watching and creating them through the dynamic client, and the
// operator's spec changes (pause, resume, abort), each recorded as an Event
// on the object. It never writes status: that is the driver's.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

// EventNamespace is where Events about RuntimeMigrations (cluster-scoped)
// are recorded, as Events about Nodes are.
const EventNamespace = metav1.NamespaceDefault

// EventSource is the reporting component of the Events this package records.
const EventSource = "unshim"

// Store reads and changes RuntimeMigrations.
type Store struct {
	Dynamic dynamic.Interface
	// Kube records Events; nil records none.
	Kube kubernetes.Interface
	// Actor names who made a change in its Event ("user@host"); may be empty.
	Actor string
}

func (s *Store) res() dynamic.NamespaceableResourceInterface {
	return s.Dynamic.Resource(v1alpha1.GroupVersionResource)
}

// Get reads one RuntimeMigration.
func (s *Store) Get(ctx context.Context, name string) (*v1alpha1.RuntimeMigration, error) {
	u, err := s.res().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get runtimemigration %s: %w", name, err)
	}
	return v1alpha1.FromUnstructured(u)
}

// Create creates m; its status is left to the driver.
func (s *Store) Create(ctx context.Context, m *v1alpha1.RuntimeMigration) (*v1alpha1.RuntimeMigration, error) {
	if err := m.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("runtimemigration %s: %w", m.Name, err)
	}
	m = m.DeepCopy()
	m.Status = v1alpha1.RuntimeMigrationStatus{}
	u, err := v1alpha1.ToUnstructured(m)
	if err != nil {
		return nil, err
	}
	delete(u.Object, "status")
	out, err := s.res().Create(ctx, u, metav1.CreateOptions{FieldManager: EventSource})
	if err != nil {
		return nil, fmt.Errorf("create runtimemigration %s: %w", m.Name, err)
	}
	return v1alpha1.FromUnstructured(out)
}

// Watch watches one RuntimeMigration from resourceVersion rv.
func (s *Store) Watch(ctx context.Context, name, rv string) (watch.Interface, error) {
	w, err := s.res().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: rv})
	if err != nil {
		return nil, fmt.Errorf("watch runtimemigration %s: %w", name, err)
	}
	return w, nil
}

// Change is an operator's change to a rollout's spec.
type Change struct {
	// Verb names the change in messages ("pause").
	Verb string
	// Patch is the merge patch of spec fields.
	Patch map[string]any
	// Reason and Message make the Event.
	Reason, Message string
	// Stamp, when set, is an annotation the change sets to the time it is
	// made (RFC 3339): resume stamps ResumedAtAnnotation, which is how a
	// driver that paused a rollout itself (a gate, the failure budget) sees
	// that it may go on, spec.paused being false all along.
	Stamp string
}

// ResumedAtAnnotation is when the rollout was last resumed.
const ResumedAtAnnotation = "unshim.io/resumed-at"

// The operator's changes.
var (
	Pause  = Change{Verb: "pause", Patch: map[string]any{"paused": true}, Reason: "Paused", Message: "rollout paused: no more nodes start; nodes under way finish"}
	Resume = Change{Verb: "resume", Patch: map[string]any{"paused": false}, Reason: "Resumed", Message: "rollout resumed", Stamp: ResumedAtAnnotation}
	Abort  = Change{Verb: "abort", Patch: map[string]any{"abort": true}, Reason: "Aborted", Message: "rollout aborted: no more nodes start; nodes under way finish or roll back"}
)

// Apply merge-patches c into the spec of RuntimeMigration name and records
// an Event on it. Changing only spec needs only `patch` on
// runtimemigrations, which the operator role grants.
func (s *Store) Apply(ctx context.Context, name string, c Change) (*v1alpha1.RuntimeMigration, error) {
	patch := map[string]any{"spec": c.Patch}
	if c.Stamp != "" {
		patch["metadata"] = map[string]any{"annotations": map[string]any{c.Stamp: time.Now().UTC().Format(time.RFC3339Nano)}}
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	u, err := s.res().Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: EventSource})
	if err != nil {
		return nil, fmt.Errorf("%s runtimemigration %s: %w", c.Verb, name, err)
	}
	m, err := v1alpha1.FromUnstructured(u)
	if err != nil {
		return nil, err
	}
	msg := c.Message
	if s.Actor != "" {
		msg += " (by " + s.Actor + ")"
	}
	if err := s.Event(ctx, m, corev1.EventTypeNormal, c.Reason, msg); err != nil {
		return m, fmt.Errorf("%s runtimemigration %s: done, but %w", c.Verb, name, err)
	}
	return m, nil
}

// Event records an Event on m.
func (s *Store) Event(ctx context.Context, m *v1alpha1.RuntimeMigration, typ, reason, message string) error {
	return s.record(ctx, corev1.ObjectReference{
		APIVersion:      v1alpha1.GroupVersion.String(),
		Kind:            v1alpha1.Kind,
		Name:            m.Name,
		UID:             m.UID,
		ResourceVersion: m.ResourceVersion,
	}, typ, reason, message)
}

// NodeEvent records an Event on Node node, referenced as the kubelet
// references its own (UID = the node's name, in the default namespace), so
// that kubectl describe node lists it.
func (s *Store) NodeEvent(ctx context.Context, node, typ, reason, message string) error {
	return s.record(ctx, corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node, UID: types.UID(node)}, typ, reason, message)
}

func (s *Store) record(ctx context.Context, ref corev1.ObjectReference, typ, reason, message string) error {
	if s.Kube == nil {
		return nil
	}
	now := metav1.NewTime(time.Now())
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x%s", ref.Name, now.UnixNano(), hex.EncodeToString(suffix[:])),
			Namespace: EventNamespace,
		},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             message,
		Type:                typ,
		Source:              corev1.EventSource{Component: EventSource},
		ReportingController: "unshim.io/" + EventSource,
		ReportingInstance:   s.Actor,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
	}
	if ev.ReportingInstance == "" {
		ev.ReportingInstance = EventSource
	}
	if _, err := s.Kube.CoreV1().Events(EventNamespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("record event %s on %s %s: %w", reason, strings.ToLower(ref.Kind), ref.Name, err)
	}
	return nil
}
