package phases

import (
	"context"
	"fmt"
	"github.com/unshim/unshim/pkg/inventory"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodecheck"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/transport"
)

// handledBySwitch are node-check rules the switch itself takes care of
// (it removes the flags, converts the settings, saves the images), so they
// never block it.
var handledBySwitch = map[string]bool{
	nodecheck.RuleKubeletFlag:          true,
	nodecheck.RuleDockerConfig:         true,
	nodecheck.RuleDockerConfigUnmapped: true,
	nodecheck.RuleImageNoDigest:        true,
	nodecheck.RuleCgroupDriver:         true,
	nodecheck.RuleContainerdConfig:     true,
	nodecheck.RuleNotChecked:           true,
}

// Blockers returns the findings that stop a switch: high or critical, not
// handled by the switch, not allowed by rule ID.
func Blockers(fs []check.Finding, target string, allow []string) []check.Finding {
	allowed := map[string]bool{}
	for _, a := range allow {
		allowed[a] = true
	}
	var out []check.Finding
	for _, f := range fs {
		if f.Severity < check.SeverityHigh || allowed[f.Rule] || handledBySwitch[f.Rule] {
			continue
		}
		// The kubelet (dockershim) and cri-dockerd talk to Docker because they
		// are the runtime path the switch replaces.
		if f.Rule == nodecheck.RuleSocketClient && (strings.HasPrefix(f.Object.Name, "kubelet[") || strings.HasPrefix(f.Object.Name, "cri-dockerd[")) {
			continue
		}
		// Keeping Docker through cri-dockerd keeps what uses Docker working.
		if target == nodeplan.CRIDockerd {
			continue
		}
		out = append(out, f)
	}
	return out
}

// NewPreflightPhase checks the node and the pods on it, and stops the run on
// a blocker (a Docker dependency the switch would break) unless its rule is
// allowed; for cri-dockerd it requires cri-dockerd to be installed.
func NewPreflightPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "preflight",
		Short: "Check the node and its pods for what the switch would break",
		Run: run(func(ctx context.Context, d Data) error {
			if d.DryRun() {
				return nil // read-only: the plan lists the findings
			}
			fs, err := preflight(ctx, d)
			if err != nil {
				return err
			}
			b := Blockers(fs, d.Settings().Target, d.Settings().Allow)
			for _, f := range fs {
				d.Logger().V(1).Infof("[preflight] %s %s %s: %s", f.Severity, f.Rule, f.Object, f.Message)
			}
			if len(b) == 0 {
				return nil
			}
			var lines []string
			ids := map[string]bool{}
			for _, f := range b {
				lines = append(lines, fmt.Sprintf("  %s %s %s: %s", f.Severity, f.Rule, f.Object, f.Message))
				ids[f.Rule] = true
			}
			var idList []string
			for id := range ids {
				idList = append(idList, id)
			}
			sort.Strings(idList)
			return fmt.Errorf("%d blockers; fix them, or go on anyway with --allow %s:\n%s", len(b), strings.Join(idList, ","), strings.Join(lines, "\n"))
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			fs, err := preflight(ctx, d)
			if err != nil {
				return []string{"preflight would fail: " + err.Error()}, nil
			}
			b := Blockers(fs, d.Settings().Target, d.Settings().Allow)
			lines := []string{fmt.Sprintf("%d findings, %d blockers", len(fs), len(b))}
			for _, f := range b {
				lines = append(lines, fmt.Sprintf("  BLOCKER %s %s: %s", f.Rule, f.Object, f.Message))
			}
			return lines, nil
		}),
	}
}

func preflight(ctx context.Context, d Data) ([]check.Finding, error) {
	node, err := nodeBefore(ctx, d)
	if err != nil {
		return nil, err
	}
	target := d.Settings().Target
	if rt := inventory.RuntimeName(node); rt != "docker" {
		return nil, fmt.Errorf("node %s runs %s, not Docker: nothing to switch", d.Node(), node.Status.NodeInfo.ContainerRuntimeVersion)
	}
	t := d.Transport()
	if target == nodeplan.CRIDockerd && d.Settings().CRIDockerdPackage == "" && installedCRIDockerd(ctx, t) == "" {
		return nil, fmt.Errorf("cri-dockerd is not installed on %s: name its package or binary with --cri-dockerd-package FILE (.deb, .rpm or the cri-dockerd binary; github.com/Mirantis/cri-dockerd releases), or install it first", d.Node())
	}
	var findings []check.Finding
	if root := d.FilesRoot(); root != "" {
		o := nodecheck.Options{Root: root, NodeName: d.Node(), KubeletVersion: d.Settings().KubeletVersion}
		if m, ok := t.(transport.Mounted); ok {
			// The node's sockets and processes are visible from here too.
			o.DockerHost = "unix://" + strings.TrimSuffix(m.LocalRoot(), "/") + "/run/docker.sock"
			if m.LocalRoot() == "/" {
				o.Proc = "/proc"
			}
		}
		res, err := nodecheck.Run(ctx, log.NoopLogger(), o)
		if err != nil {
			return nil, fmt.Errorf("node check: %w", err)
		}
		findings = append(findings, res.Findings...)
	}
	rs, err := rules.All(rules.Options{})
	if err != nil {
		return nil, err
	}
	res, err := check.Run(ctx, &nodePods{d: d}, rs)
	if err != nil {
		return nil, fmt.Errorf("check the node's pods: %w", err)
	}
	return append(findings, res.Findings...), nil
}

// nodePods is the check source of the pods bound to one node, as the run
// first listed them (a paged LIST with a field selector).
type nodePods struct{ d Data }

func (s *nodePods) Visit(ctx context.Context, fn func(*check.Target) error) error {
	pods, err := podsBefore(ctx, s.d)
	if err != nil {
		return err
	}
	for i := range pods {
		t, ok := check.NewTarget(&pods[i])
		if !ok {
			continue
		}
		t.LivePod = true
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

// eachPodOnNode calls fn for every pod bound to the node, read with paged
// LISTs and a field selector. fromCache reads them from the apiserver's
// watch cache (resourceVersion "0": as fresh as the cache, milliseconds
// behind etcd, and indexed by node) instead of a quorum read: before 1.31
// (ConsistentListFromCache) a quorum LIST with a field selector reads every
// pod of the cluster out of etcd to keep one node's, which a wave of 250
// switches at once turns into the apiserver's whole load. The reads that
// must not miss a pod just bound (the drain's re-check) do not use it.
func eachPodOnNode(ctx context.Context, d Data, fromCache bool, fn func(*corev1.Pod) error) error {
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", d.Node()).String()}
	if fromCache {
		opts.ResourceVersion = "0"
	}
	pods := d.Client().CoreV1().Pods("")
	return kubelist.Each(ctx, "pods on "+d.Node(), 0, opts, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return pods.List(ctx, o)
	}, func(obj runtime.Object) error { return fn(obj.(*corev1.Pod)) })
}
