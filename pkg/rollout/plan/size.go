package plan

import (
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

// MaxObjectBytes is the largest a RuntimeMigration can be stored: the
// apiserver stores a custom resource as its JSON in one etcd key, and etcd
// refuses a write larger than its --max-request-bytes, 1.5 MiB unless raised
// (etcd's embed.DefaultMaxRequestBytes; the write fails with "etcdserver:
// request is too large"). Every status write carries every node's entry, so
// a rollout that outgrows it mid-way can no longer record anything, not even
// a pause, while nodes of its wave stay cordoned.
const MaxObjectBytes = 1536 * 1024

// ObjectReserve is the room kept below MaxObjectBytes for what the
// projection (Projected) leaves out: failed and blocked nodes' causes and
// pods, the conditions' messages, metadata a client adds.
const ObjectReserve = 128 * 1024

// Projected is m as it stands at its largest without failures: every planned
// node's entry with the longest state and its four times (switch and undo,
// start and completion), every skipped node, a condition of each type
// (without a message: messages are in ObjectReserve). The status alone is
// replaced; m is not changed.
func (p *Plan) Projected(m *v1alpha1.RuntimeMigration) *v1alpha1.RuntimeMigration {
	st := p.InitialStatus()
	t := metav1.NewTime(time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC))
	for i := range st.Nodes {
		n := &st.Nodes[i]
		n.State = v1alpha1.NodeRolledBack
		n.StartTime, n.CompletionTime, n.UndoStartTime, n.UndoCompletionTime = &t, &t, &t, &t
	}
	for i := range st.Waves {
		st.Waves[i].StartTime, st.Waves[i].CompletionTime = &t, &t
	}
	st.Phase, st.Message, st.Driver = v1alpha1.PhaseCompleted, "", m.Status.Driver
	st.StartTime, st.CompletionTime = &t, &t
	for _, c := range []string{v1alpha1.ConditionProgressing, v1alpha1.ConditionPaused, v1alpha1.ConditionComplete, v1alpha1.ConditionBlocked, v1alpha1.ConditionUndone} {
		st.Conditions = append(st.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue, LastTransitionTime: t, Reason: "Projected"})
	}
	st.Recount()
	return &v1alpha1.RuntimeMigration{TypeMeta: m.TypeMeta, ObjectMeta: *m.ObjectMeta.DeepCopy(), Spec: *m.Spec.DeepCopy(), Status: st}
}

// CheckSize refuses a plan whose RuntimeMigration could outgrow what one
// object can hold (MaxObjectBytes less ObjectReserve), saying how large it
// would grow and how many nodes one rollout of such names can hold.
func (p *Plan) CheckSize(m *v1alpha1.RuntimeMigration) error {
	data, err := json.Marshal(p.Projected(m))
	if err != nil {
		return fmt.Errorf("size of runtimemigration %s: %w", m.Name, err)
	}
	limit := MaxObjectBytes - ObjectReserve
	if len(data) <= limit {
		return nil
	}
	nodes := p.Nodes() + len(p.Skipped)
	per := len(data) / max(nodes, 1)
	return fmt.Errorf("runtimemigration %s would grow to %d KiB with the entries of its %d nodes (%d bytes each), over the %d KiB a RuntimeMigration may take (etcd stores at most 1.5 MiB in one object by default, --max-request-bytes): split it into rollouts of at most about %d nodes each (spec.nodes.selector by pool or zone)",
		m.Name, len(data)/1024, nodes, per, limit/1024, limit/max(per, 1)*9/10)
}
