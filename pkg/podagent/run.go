package podagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/unshim/unshim/pkg/kubelist"
)

// logTailLines is how much of a failed agent's log its error keeps.
const logTailLines = 30

// waitingFailures are reasons a container waits for that the agent does not
// get over by waiting longer: its image is missing or its spec is wrong.
var waitingFailures = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// ErrStillRunning is returned when an agent pod of the same name has not finished.
var ErrStillRunning = errors.New("agent pod still running")

// Run runs the agent on o.Node: it deletes a finished agent pod of the same
// name left from an earlier run, creates the pod, watches it until it
// succeeds or fails, and copies its log (what the hand-off started) to out.
// A failed pod gives an error with the end of its log. Run gives up after
// o.Timeout. It leaves the finished pod in place, for inspection; the next
// run removes it.
func Run(ctx context.Context, client kubernetes.Interface, o Options, out io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	o.complete()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	pods := client.CoreV1().Pods(o.Namespace)
	want := PodSpec(o)
	name := want.Name
	if err := deleteFinished(ctx, client, o.Namespace, name); err != nil {
		return err
	}
	if _, err := pods.Create(ctx, want, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create agent pod %s/%s on node %s: %w", o.Namespace, name, o.Node, err)
	}
	pod, err := waitFinished(ctx, client, o.Namespace, name)
	if err != nil {
		// A pod that did not finish must not start later (when its node's
		// kubelet comes back, say): remove it, then tell why it hung.
		bg := context.WithoutCancel(ctx)
		events := podEvents(bg, client, o.Namespace, name)
		if derr := forceDelete(bg, client, o.Namespace, name); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("agent pod %s/%s on node %s (timeout %s): %w%s", o.Namespace, name, o.Node, o.Timeout, err, events)
	}
	if pod.Status.Phase == corev1.PodFailed {
		reason := terminatedReason(pod)
		tail, _ := podLog(context.WithoutCancel(ctx), client, o.Namespace, name, logTailLines)
		// The termination message is the log's end when the container wrote none of its own.
		if t := strings.TrimSpace(string(tail)); t != "" && !strings.Contains(reason, t) {
			reason += "\n" + t
		}
		return fmt.Errorf("agent pod %s/%s on node %s failed: %s", o.Namespace, name, o.Node, reason)
	}
	log, err := podLog(ctx, client, o.Namespace, name, 0)
	if err != nil {
		// Whatever the hand-off started may already have stopped Docker, and
		// with it the kubelet's way to read the log: the pod succeeded all the same.
		_, werr := fmt.Fprintf(out, "(log of agent pod %s/%s unavailable: %v)\n", o.Namespace, name, err)
		return werr
	}
	_, err = out.Write(log)
	return err
}

// deleteFinished removes the agent pod name if it exists and has finished,
// and waits until it is gone. A pod still pending or running is ErrStillRunning.
func deleteFinished(ctx context.Context, client kubernetes.Interface, namespace, name string) error {
	pods := client.CoreV1().Pods(namespace)
	old, err := pods.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get agent pod %s/%s: %w", namespace, name, err)
	}
	if old.DeletionTimestamp == nil && old.Status.Phase != corev1.PodSucceeded && old.Status.Phase != corev1.PodFailed {
		return fmt.Errorf("agent pod %s/%s (phase %s): %w", namespace, name, old.Status.Phase, ErrStillRunning)
	}
	// Its containers have ended: remove it at once, without waiting for a
	// kubelet that may be stopped or migrating.
	var zero int64
	err = pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &old.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete finished agent pod %s/%s: %w", namespace, name, err)
	}
	_, err = watchPod(ctx, client, namespace, name, func(ev watch.Event, pod *corev1.Pod) (bool, error) {
		return ev.Type == watch.Deleted || pod == nil || pod.UID != old.UID, nil
	})
	if err != nil {
		return fmt.Errorf("wait for finished agent pod %s/%s to go: %w", namespace, name, err)
	}
	return nil
}

// waitFinished watches the pod name until it succeeds or fails.
func waitFinished(ctx context.Context, client kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	return watchPod(ctx, client, namespace, name, func(ev watch.Event, pod *corev1.Pod) (bool, error) {
		if ev.Type == watch.Deleted || pod == nil {
			return false, errors.New("deleted before it finished")
		}
		switch pod.Status.Phase {
		case corev1.PodSucceeded, corev1.PodFailed:
			return true, nil
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && waitingFailures[w.Reason] {
				return false, fmt.Errorf("container %s cannot start: %s: %s", cs.Name, w.Reason, w.Message)
			}
		}
		return false, nil
	})
}

// watchPod watches the pod name (listing first, re-watching when the watch
// ends) until cond is true or fails, and returns the pod it was true for
// (nil when the pod does not exist).
func watchPod(ctx context.Context, client kubernetes.Interface, namespace, name string, cond func(watch.Event, *corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	pods := client.CoreV1().Pods(namespace)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := kubelist.FieldListWatch(sel, pods.List, pods.Watch)
	var last *corev1.Pod
	precondition := func(store cache.Store) (bool, error) {
		// The initial list decides when the pod is absent: no event would come.
		if _, exists, err := store.GetByKey(namespace + "/" + name); err != nil || exists {
			return false, err
		}
		return cond(watch.Event{Type: watch.Deleted}, nil)
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, precondition, func(ev watch.Event) (bool, error) {
		pod, _ := ev.Object.(*corev1.Pod)
		ok, err := cond(ev, pod)
		if ok {
			last = pod
		}
		return ok, err
	})
	if wait.Interrupted(err) {
		return nil, fmt.Errorf("gave up waiting: %w", context.Cause(ctx))
	}
	return last, err
}

// podLog returns the pod's log, its last tail lines when tail > 0.
func podLog(ctx context.Context, client kubernetes.Interface, namespace, name string, tail int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := &corev1.PodLogOptions{}
	if tail > 0 {
		opts.TailLines = &tail
	}
	rc, err := client.CoreV1().Pods(namespace).GetLogs(name, opts).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		return buf.Bytes(), err
	}
	return buf.Bytes(), nil
}

// forceDelete removes the pod name from the API at once (grace period 0).
func forceDelete(ctx context.Context, client kubernetes.Interface, namespace, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var zero int64
	err := client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete unfinished agent pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// maxEvents is how many of a hung pod's events an error quotes.
const maxEvents = 5

// podEvents returns the pod's latest events as lines to append to an error,
// or "" when there are none or they cannot be read.
func podEvents(ctx context.Context, client kubernetes.Interface, namespace, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": name}.AsSelector().String()
	list, err := client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil || len(list.Items) == 0 {
		return ""
	}
	items := list.Items
	sort.SliceStable(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
	if len(items) > maxEvents {
		items = items[len(items)-maxEvents:]
	}
	var b strings.Builder
	b.WriteString("\nlatest events:")
	for _, e := range items {
		fmt.Fprintf(&b, "\n  %s %s (x%d): %s", e.Type, e.Reason, max(e.Count, 1), strings.TrimSpace(e.Message))
	}
	return b.String()
}

func eventTime(e corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	return e.EventTime.Time
}

// terminatedReason says how the agent's container ended.
func terminatedReason(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			s := fmt.Sprintf("container %s exited %d (%s)", cs.Name, t.ExitCode, t.Reason)
			if msg := strings.TrimSpace(t.Message); msg != "" {
				s += ": " + msg
			}
			return s
		}
	}
	if pod.Status.Message != "" {
		return pod.Status.Reason + ": " + pod.Status.Message
	}
	return "phase " + string(pod.Status.Phase)
}
