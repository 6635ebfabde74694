package rules

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/check"
)

// Default Docker socket paths on a node: Docker's own and dockershim's.
var defaultSockets = []string{"/var/run/docker.sock", "/run/docker.sock", "/var/run/dockershim.sock"}

const (
	dockerDataRoot   = "/var/lib/docker"
	dockerLogDir     = "/var/lib/docker/containers"
	dockerConfigDir  = "/etc/docker"
	cliConfigSegment = ".docker"
)

// mountAt is one hostPath a pod sees, with the container that mounts it.
type mountAt struct {
	c        *corev1.Container // nil when no container mounts the volume
	hostPath string            // as written, joined with the mount's subPath
	norm     string            // normalized
	volume   int               // index of the volume in the pod spec
}

func (m mountAt) container() string {
	if m.c == nil {
		return ""
	}
	return m.c.Name
}

// mountsKey names the hostPath mounts among a target's derived values.
var mountsKey = new(int)

// hostPathMounts lists every hostPath of t's pod spec: once per container that
// mounts it (with its subPath applied), or once on its own when nothing
// mounts it. Computed once per target for the five hostPath rules.
func hostPathMounts(t *check.Target) []mountAt {
	return t.Derived(mountsKey, func(t *check.Target) any { return listHostPathMounts(t) }).([]mountAt)
}

func listHostPathMounts(t *check.Target) []mountAt {
	if t.PodSpec == nil {
		return nil
	}
	var out []mountAt
	for vi, v := range t.PodSpec.Volumes {
		if v.HostPath != nil && out == nil {
			out = make([]mountAt, 0, 4)
		}
		if v.HostPath == nil {
			continue
		}
		mounted := false
		eachContainer(t, func(ca containerAt) {
			for _, m := range ca.c.VolumeMounts {
				if m.Name != v.Name {
					continue
				}
				mounted = true
				p := v.HostPath.Path
				if m.SubPath != "" {
					p = path.Join(p, m.SubPath)
				}
				out = append(out, mountAt{c: ca.c, hostPath: p, norm: normalizePath(p), volume: vi})
			}
		})
		if !mounted {
			out = append(out, mountAt{hostPath: v.HostPath.Path, norm: normalizePath(v.HostPath.Path), volume: vi})
		}
	}
	return out
}

// hasHostPath reports whether t's pod spec has any hostPath volume: most have none.
func hasHostPath(t *check.Target) bool {
	if t.PodSpec == nil {
		return false
	}
	for i := range t.PodSpec.Volumes {
		if t.PodSpec.Volumes[i].HostPath != nil {
			return true
		}
	}
	return false
}

// hostPathRule is a rule over hostPath mounts: match decides which mounts it
// reports, and may lower the severity of one (nil keeps the rule's).
type hostPathRule struct {
	meta  check.RuleMeta
	match func(m mountAt, t *check.Target) (msg string, sev *check.Severity, ok bool)
}

func (r hostPathRule) Meta() check.RuleMeta { return r.meta }

func (r hostPathRule) Check(t *check.Target) []check.Hit {
	if !hasHostPath(t) {
		return nil
	}
	var hits []check.Hit
	for _, m := range hostPathMounts(t) {
		if msg, sev, ok := r.match(m, t); ok {
			hits = append(hits, check.Hit{Container: m.container(), Evidence: m.hostPath, Field: t.VolumeField(m.volume) + ".hostPath.path",
				Message: msg, Severity: sev})
		}
	}
	return hits
}

type hostPathRules struct {
	socket, socketDir, dataRoot, config, jsonLogs hostPathRule
}

// RemedySocket is the remedy for pods that talk to the Docker socket.
const RemedySocket = "Stop using the Docker API: build images with Kaniko, Buildah or buildx (BuildKit) instead of docker build; " +
	"use crictl (unix:///run/containerd/containerd.sock) for inspection; talk to the CRI or the Kubernetes API instead of Docker's; " +
	"where Docker must stay on the node, keep it with cri-dockerd."

func newHostPathRules(extra []string, knownList []KnownMount) (hostPathRules, error) {
	socks := map[string]string{} // normalized -> as first written
	for _, s := range append(append([]string(nil), defaultSockets...), extra...) {
		n := normalizePath(s)
		if _, ok := socks[n]; !ok && n != "" {
			socks[n] = s
		}
	}
	sockList := make([]string, 0, len(socks))
	for n := range socks {
		sockList = append(sockList, n)
	}
	sort.Strings(sockList)

	isSocket := func(p string) bool { _, ok := socks[p]; return ok }
	known, err := newKnownMounts(knownList)
	if err != nil {
		return hostPathRules{}, err
	}
	info := check.SeverityInfo
	var r hostPathRules
	r.socket = hostPathRule{
		meta: check.RuleMeta{ID: "docker-socket-mount", Title: "Mounts the Docker socket", Severity: check.SeverityCritical, Remedy: RemedySocket},
		match: func(m mountAt, t *check.Target) (string, *check.Severity, bool) {
			if !isSocket(m.norm) {
				return "", nil, false
			}
			return fmt.Sprintf("mounts the Docker socket %s from the node; it is gone once the node runs containerd", m.hostPath), nil, true
		},
	}
	r.socketDir = hostPathRule{
		meta: check.RuleMeta{ID: "docker-socket-dir-mount", Title: "Mounts a directory that holds the Docker socket", Severity: check.SeverityMedium,
			Remedy: "Check whether the container uses the Docker socket inside this directory; if it does, apply the docker-socket-mount remedy. " +
				"Otherwise mount only the sub-path it needs (for example /run/containerd/containerd.sock through crictl)."},
		match: func(m mountAt, t *check.Target) (string, *check.Severity, bool) {
			if isSocket(m.norm) {
				return "", nil, false
			}
			for _, s := range sockList {
				if !within(s, m.norm) {
					continue
				}
				msg := fmt.Sprintf("mounts %s, which holds the Docker socket %s", m.hostPath, socks[s])
				if k := known.reason(r.socketDir.meta.ID, m, t); k != nil {
					return fmt.Sprintf("%s; %s: %s", msg, k.Name, k.Reason), &info, true
				}
				return msg, nil, true
			}
			return "", nil, false
		},
	}
	r.dataRoot = hostPathRule{
		meta: check.RuleMeta{ID: "docker-data-root-mount", Title: "Mounts Docker's data root", Severity: check.SeverityHigh,
			Remedy: "Docker's image and container store (/var/lib/docker) is not used by containerd (/var/lib/containerd). " +
				"Read container state through the CRI (crictl) or the Kubernetes API instead."},
		match: func(m mountAt, t *check.Target) (string, *check.Severity, bool) {
			if within(m.norm, dockerDataRoot) && !within(m.norm, dockerLogDir) {
				return fmt.Sprintf("mounts Docker's data root %s; containerd keeps its state in /var/lib/containerd", m.hostPath), nil, true
			}
			return "", nil, false
		},
	}
	r.config = hostPathRule{
		meta: check.RuleMeta{ID: "docker-config-mount", Title: "Mounts Docker's configuration", Severity: check.SeverityMedium,
			Remedy: "Docker's daemon.json, certs.d and CLI config do not configure containerd: carry registry mirrors, insecure registries " +
				"and certificates into /etc/containerd/certs.d (unshim convert), and image pull credentials into imagePullSecrets or the kubelet credential provider."},
		match: func(m mountAt, t *check.Target) (string, *check.Severity, bool) {
			if within(m.norm, dockerConfigDir) {
				return fmt.Sprintf("mounts Docker's configuration %s", m.hostPath), nil, true
			}
			if hasSegment(m.norm, cliConfigSegment) {
				return fmt.Sprintf("mounts the Docker CLI configuration %s", m.hostPath), nil, true
			}
			if path.Base(m.norm) == "daemon.json" {
				return fmt.Sprintf("mounts a Docker daemon.json %s", m.hostPath), nil, true
			}
			return "", nil, false
		},
	}
	r.jsonLogs = hostPathRule{
		meta: check.RuleMeta{ID: "docker-json-logs", Title: "Reads Docker's JSON log files", Severity: check.SeverityMedium, Remedy: RemedyLogs},
		match: func(m mountAt, t *check.Target) (string, *check.Severity, bool) {
			if within(m.norm, dockerLogDir) {
				msg := fmt.Sprintf("reads container logs from %s; with containerd they are written in CRI format under /var/log/pods", m.hostPath)
				if k := known.reason(r.jsonLogs.meta.ID, m, t); k != nil {
					return fmt.Sprintf("mounts %s; %s: %s", m.hostPath, k.Name, k.Reason), &info, true
				}
				return msg, nil, true
			}
			return "", nil, false
		},
	}
	return r, nil
}

// RemedyLogs is the remedy for log collectors that read Docker's JSON logs.
const RemedyLogs = "Read /var/log/pods (and the /var/log/containers links) and parse the CRI log format: fluent-bit `multiline.parser docker, cri` " +
	"during the rollout and `cri` after it, fluentd's cri parser, promtail's `cri: {}` stage, vector's kubernetes_logs source. " +
	"Mount /var/log/pods, and move log rotation from Docker's log-opts to the kubelet's containerLogMaxSize/containerLogMaxFiles."

// knownMounts matches a mount against the catalog's images that mount a
// directory for reasons of their own.
type knownMounts struct {
	entries []knownMount
}

// knownMount is a compiled KnownMount.
type knownMount struct {
	KnownMount
	images       *imageMatcher
	paths        []string // normalized
	when, unless []condition
}

func newKnownMounts(entries []KnownMount) (knownMounts, error) {
	var k knownMounts
	for _, e := range entries {
		km := knownMount{KnownMount: e, images: newImageMatcher([][]string{e.Images})}
		for _, p := range e.Paths {
			km.paths = append(km.paths, normalizePath(p))
		}
		if len(km.Rules) == 0 {
			km.Rules = []string{DefaultKnownMountRule}
		}
		var err error
		if km.when, err = compileConditions(e.When); err != nil {
			return k, fmt.Errorf("known mount %s: %w", e.Name, err)
		}
		if km.unless, err = compileConditions(e.Unless); err != nil {
			return k, fmt.Errorf("known mount %s: %w", e.Name, err)
		}
		k.entries = append(k.entries, km)
	}
	return k, nil
}

// reason returns the first entry that lowers rule for this mount: its image
// runs the mounting container, its paths include the mounted one, and its
// conditions hold; nil when there is none.
func (k knownMounts) reason(rule string, m mountAt, t *check.Target) *KnownMount {
	if m.c == nil {
		return nil
	}
	for i := range k.entries {
		e := &k.entries[i]
		if !slices.Contains(e.Rules, rule) || !slices.Contains(e.paths, m.norm) || e.images.match(m.c.Image) < 0 {
			continue
		}
		ca := containerAt{c: m.c, t: t}
		if len(e.when) > 0 && !anyHolds(e.when, ca, t) || anyHolds(e.unless, ca, t) {
			continue
		}
		return &e.KnownMount
	}
	return nil
}

// hasSegment reports whether one of the elements of path p is seg.
func hasSegment(p, seg string) bool {
	for p != "" {
		i := strings.IndexByte(p, '/')
		if i < 0 {
			return p == seg
		}
		if p[:i] == seg {
			return true
		}
		p = p[i+1:]
	}
	return false
}
