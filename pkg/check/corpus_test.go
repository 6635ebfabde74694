package check_test

import (
	"context"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/manifest"
)

// recorder is a rule that finds nothing and remembers every object checked,
// so the test knows the corpus holds no object its table forgot. Rules run
// in the reader's workers, several at once.
type recorder struct {
	mu   *sync.Mutex
	seen map[string]bool
}

func (recorder) Meta() check.RuleMeta { return check.RuleMeta{ID: "recorder"} }

func (r recorder) Check(t *check.Target) []check.Hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[filepath.Base(t.File)+" "+t.Owner.String()] = true
	return nil
}

// TestCorpus runs the check over testdata/corpus, our own manifests written
// one per pattern seen in public charts, and compares the findings on every
// object with the table below: rule:severity, sorted. An object listed with
// no findings is a trap: a look-alike that must stay quiet.
func TestCorpus(t *testing.T) {
	want := map[string][]string{
		// Old API groups are read as their current types.
		"old-api-groups.yaml DaemonSet/logging/logspout":    {"docker-socket-mount:critical"},
		"old-api-groups.yaml StatefulSet/ci/jenkins":        {"docker-socket-mount:critical"},
		"old-api-groups.yaml Deployment/ci/image-builder":   {"docker-host-env:high", "docker-in-docker:high"},
		"old-api-groups.yaml CronJob/kube-system/docker-gc": {"docker-cli-privileged:high", "docker-socket-mount:critical"},
		"old-api-groups.yaml Deployment/shop/web":           nil,
		// Custom resources that run containers: Tekton and Argo.
		"tekton.yaml Task/ci/docker-build":                {"docker-host-env:high", "docker-in-docker:high"},
		"tekton.yaml Pipeline/ci/release":                 {"docker-cli-privileged:high", "docker-socket-mount:critical"},
		"tekton.yaml Task/ci/kaniko-build":                nil,
		"argo-workflow.yaml Workflow/argo/build-app":      {"docker-host-env:high", "docker-in-docker:high", "docker-socket-mount:critical"},
		"argo-workflow.yaml WorkflowTemplate/argo/report": nil,
		// Built-in kinds that run nothing are checked, with nothing to find.
		"unknown-kinds.yaml Service/shop/web":   nil,
		"unknown-kinds.yaml ClusterRole/reader": nil,
		// node-problem-detector's Docker monitor, in the DaemonSet and its ConfigMap.
		"node-problem-detector.yaml ConfigMap/kube-system/npd-config":            {"docker-monitor-config:medium"},
		"node-problem-detector.yaml DaemonSet/kube-system/node-problem-detector": {"known-docker-agent:medium"},
		"node-problem-detector.yaml ConfigMap/kube-system/npd-kernel-config":     nil,
		"node-problem-detector.yaml DaemonSet/kube-system/npd-kernel-only":       nil,
		// fluentd-kubernetes-daemonset parses Docker's JSON unless told cri.
		"fluentd-kubernetes-daemonset.yaml DaemonSet/kube-system/fluentd":     {"docker-json-logs:medium", "known-docker-agent:medium"},
		"fluentd-kubernetes-daemonset.yaml DaemonSet/kube-system/fluentd-cri": nil,
		// Told cri but still mounting Docker's log directory: harmless, info.
		"fluentd-kubernetes-daemonset.yaml DaemonSet/kube-system/fluentd-cri-old-mount": {"docker-json-logs:info"},
		// Mounts of /, /run, /var/run for the image's own reasons: info, not medium.
		"host-mounts-own-reasons.yaml DaemonSet/monitoring/node-exporter":      {"docker-socket-dir-mount:info"},
		"host-mounts-own-reasons.yaml DaemonSet/kube-system/kured":             {"docker-socket-dir-mount:info"},
		"host-mounts-own-reasons.yaml DaemonSet/kube-system/calico-node":       nil,
		"host-mounts-own-reasons.yaml DaemonSet/calico-system/csi-node-driver": {"docker-socket-dir-mount:info"},
		"host-mounts-own-reasons.yaml DaemonSet/monitoring/cadvisor": {"docker-data-root-mount:high",
			"docker-socket-dir-mount:medium", "docker-socket-dir-mount:medium", "known-docker-agent:medium"},
		// Agents configured for the CRI stay quiet; their Docker-era installs do not.
		"agents-cri-configured.yaml DaemonSet/monitoring/datadog-docker":     {"docker-socket-mount:critical", "known-docker-agent:medium"},
		"agents-cri-configured.yaml DaemonSet/monitoring/datadog-cri":        nil,
		"agents-cri-configured.yaml DaemonSet/monitoring/datadog-dockershim": {"docker-socket-mount:critical", "known-docker-agent:medium"},
		"agents-cri-configured.yaml DaemonSet/weave/weave-scope-agent":       {"docker-socket-mount:critical", "known-docker-agent:medium"},
		"agents-cri-configured.yaml DaemonSet/weave/weave-scope-agent-cri":   nil,
		"agents-cri-configured.yaml DaemonSet/falco/falco-cri":               nil,
		// Log shippers: promtail's Secret, fluent-bit already on docker+cri, vector.
		"log-shippers.yaml Secret/logging/promtail":      {"docker-log-config:medium"},
		"log-shippers.yaml ConfigMap/logging/fluent-bit": nil,
		"log-shippers.yaml ConfigMap/logging/vector":     nil,
		// CI with Docker, and look-alikes.
		"ci-and-look-alikes.yaml Pod/ci/jenkins-agent":                              {"docker-host-env:high", "docker-in-docker:high"},
		"ci-and-look-alikes.yaml Deployment/ci/gitlab-runner":                       {"docker-socket-mount:critical"},
		"ci-and-look-alikes.yaml Deployment/ci/buildkitd":                           nil,
		"ci-and-look-alikes.yaml Deployment/ingress-nginx/ingress-nginx-controller": nil,
		"ci-and-look-alikes.yaml DaemonSet/kube-flannel/kube-flannel-ds":            nil,
		"ci-and-look-alikes.yaml DaemonSet/kube-system/ebs-csi-node":                nil,
	}
	wantSkipped := []string{
		"unknown-kinds.yaml:2 Certificate/shop/web-tls",
		"unknown-kinds.yaml:12 /",
	}

	all, err := rules.All(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := recorder{mu: &sync.Mutex{}, seen: map[string]bool{}}
	res, err := check.Run(context.Background(), &manifest.Source{Paths: []string{"testdata/corpus"}}, append(all, rec))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, f := range res.Findings {
		k := filepath.Base(f.File) + " " + f.Object.String()
		got[k] = append(got[k], f.Rule+":"+f.Severity.String())
		if f.Line <= 0 {
			t.Errorf("%s: %s has no line", k, f.Rule)
		}
	}
	for k, w := range want {
		g := got[k]
		sort.Strings(g)
		sort.Strings(w)
		if strings.Join(g, ",") != strings.Join(w, ",") {
			t.Errorf("%s:\n got  %v\n want %v", k, g, w)
		}
		if !rec.seen[k] {
			t.Errorf("%s was not checked", k)
		}
	}
	for k := range rec.seen {
		if _, ok := want[k]; !ok {
			t.Errorf("%s is checked but not in the table (findings %v)", k, got[k])
		}
	}
	var skipped []string
	for _, s := range res.Skipped {
		skipped = append(skipped, filepath.Base(s.File)+":"+itoa(s.Line)+" "+s.Object.String())
		if s.Reason == "" {
			t.Errorf("skipped %s without a reason", s.Object)
		}
	}
	if strings.Join(skipped, "\n") != strings.Join(wantSkipped, "\n") {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(skipped, "\n"), strings.Join(wantSkipped, "\n"))
	}
	total := 0
	for _, n := range res.Scanned {
		total += n
	}
	if total != len(want)+len(wantSkipped) {
		t.Errorf("scanned %d objects (%v), want %d", total, res.Scanned, len(want)+len(wantSkipped))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
