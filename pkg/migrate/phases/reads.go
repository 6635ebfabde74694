package phases

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reads are the node and its pods as a run first reads them, shared by the
// phases that look before the switch changes anything on the cluster's
// side (preflight and rehearse; cordon and kubeadm-record keep the node's
// earlier values in the journal from it): one GET of the node and one LIST
// of its pods a run, not one of each a phase. At 1,000 nodes that is
// thousands of requests fewer. Phases that must see the cluster as it is
// now (save-images, drain, verify) read it themselves.
//
// A resumed run starts with empty Reads and reads afresh.
type Reads struct {
	mu       sync.Mutex
	node     *corev1.Node
	pods     []corev1.Pod
	podsRead bool
}

// SetNode keeps node, read by whoever starts the run (the switch reads it
// to work out its plan); nil drops the node read so far, for the next phase
// that needs it to read it again.
func (r *Reads) SetNode(node *corev1.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.node = node
}

// nodeBefore is the node as the run first read it (read now if not yet).
func nodeBefore(ctx context.Context, d Data) (*corev1.Node, error) {
	r := d.Reads()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.node == nil {
		n, err := d.Client().CoreV1().Nodes().Get(ctx, d.Node(), metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("read node %s: %w", d.Node(), err)
		}
		r.node = n
	}
	return r.node, nil
}

// podsBefore are the pods bound to the node as the run first listed them
// (listed now if not yet).
func podsBefore(ctx context.Context, d Data) ([]corev1.Pod, error) {
	r := d.Reads()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.podsRead {
		pods, err := podsOnNode(ctx, d)
		if err != nil {
			return nil, err
		}
		r.pods, r.podsRead = pods, true
	}
	return r.pods, nil
}

// podsOnNode lists the pods bound to the node now, from the apiserver's
// watch cache (eachPodOnNode); a node holds few (the kubelet's maxPods).
func podsOnNode(ctx context.Context, d Data) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	err := eachPodOnNode(ctx, d, true, func(p *corev1.Pod) error {
		pods = append(pods, *p)
		return nil
	})
	return pods, err
}
