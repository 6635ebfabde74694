package rules

import (
	"fmt"
	"path"
	"sort"

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
	container string
	hostPath  string // as written, joined with the mount's subPath
	norm      string // normalized
	field     string // path of the hostPath.path field
}

// hostPathMounts lists every hostPath of t's pod spec: once per container that
// mounts it (with its subPath applied), or once on its own when nothing mounts it.
func hostPathMounts(t *check.Target) []mountAt {
	if t.PodSpec == nil {
		return nil
	}
	var out []mountAt
	for vi, v := range t.PodSpec.Volumes {
		if v.HostPath == nil {
			continue
		}
		field := fmt.Sprintf("%s.volumes[%d].hostPath.path", t.SpecPath, vi)
		mounted := false
		eachContainer(t.PodSpec, t.SpecPath, func(ca containerAt) {
			for _, m := range ca.c.VolumeMounts {
				if m.Name != v.Name {
					continue
				}
				mounted = true
				p := v.HostPath.Path
				if m.SubPath != "" {
					p = path.Join(p, m.SubPath)
				}
				out = append(out, mountAt{container: ca.c.Name, hostPath: p, norm: normalizePath(p), field: field})
			}
		})
		if !mounted {
			out = append(out, mountAt{hostPath: v.HostPath.Path, norm: normalizePath(v.HostPath.Path), field: field})
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

// hostPathRule is a rule over hostPath mounts: match decides which mounts it reports.
type hostPathRule struct {
	meta  check.RuleMeta
	match func(m mountAt) (msg string, ok bool)
}

func (r hostPathRule) Meta() check.RuleMeta { return r.meta }

func (r hostPathRule) Check(t *check.Target) []check.Hit {
	if !hasHostPath(t) {
		return nil
	}
	var hits []check.Hit
	for _, m := range hostPathMounts(t) {
		if msg, ok := r.match(m); ok {
			hits = append(hits, check.Hit{Container: m.container, Evidence: m.hostPath, Field: m.field, Message: msg})
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

func newHostPathRules(extra []string) hostPathRules {
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
	var r hostPathRules
	r.socket = hostPathRule{
		meta: check.RuleMeta{ID: "docker-socket-mount", Title: "Mounts the Docker socket", Severity: check.SeverityCritical, Remedy: RemedySocket},
		match: func(m mountAt) (string, bool) {
			if !isSocket(m.norm) {
				return "", false
			}
			return fmt.Sprintf("mounts the Docker socket %s from the node; it is gone once the node runs containerd", m.hostPath), true
		},
	}
	r.socketDir = hostPathRule{
		meta: check.RuleMeta{ID: "docker-socket-dir-mount", Title: "Mounts a directory that holds the Docker socket", Severity: check.SeverityMedium,
			Remedy: "Check whether the container uses the Docker socket inside this directory; if it does, apply the docker-socket-mount remedy. " +
				"Otherwise mount only the sub-path it needs (for example /run/containerd/containerd.sock through crictl)."},
		match: func(m mountAt) (string, bool) {
			if isSocket(m.norm) {
				return "", false
			}
			for _, s := range sockList {
				if within(s, m.norm) {
					return fmt.Sprintf("mounts %s, which holds the Docker socket %s", m.hostPath, socks[s]), true
				}
			}
			return "", false
		},
	}
	r.dataRoot = hostPathRule{
		meta: check.RuleMeta{ID: "docker-data-root-mount", Title: "Mounts Docker's data root", Severity: check.SeverityHigh,
			Remedy: "Docker's image and container store (/var/lib/docker) is not used by containerd (/var/lib/containerd). " +
				"Read container state through the CRI (crictl) or the Kubernetes API instead."},
		match: func(m mountAt) (string, bool) {
			if within(m.norm, dockerDataRoot) && !within(m.norm, dockerLogDir) {
				return fmt.Sprintf("mounts Docker's data root %s; containerd keeps its state in /var/lib/containerd", m.hostPath), true
			}
			return "", false
		},
	}
	r.config = hostPathRule{
		meta: check.RuleMeta{ID: "docker-config-mount", Title: "Mounts Docker's configuration", Severity: check.SeverityMedium,
			Remedy: "Docker's daemon.json, certs.d and CLI config do not configure containerd: carry registry mirrors, insecure registries " +
				"and certificates into /etc/containerd/certs.d (unshim convert), and image pull credentials into imagePullSecrets or the kubelet credential provider."},
		match: func(m mountAt) (string, bool) {
			if within(m.norm, dockerConfigDir) {
				return fmt.Sprintf("mounts Docker's configuration %s", m.hostPath), true
			}
			for _, seg := range splitPath(m.norm) {
				if seg == cliConfigSegment {
					return fmt.Sprintf("mounts the Docker CLI configuration %s", m.hostPath), true
				}
			}
			if path.Base(m.norm) == "daemon.json" {
				return fmt.Sprintf("mounts a Docker daemon.json %s", m.hostPath), true
			}
			return "", false
		},
	}
	r.jsonLogs = hostPathRule{
		meta: check.RuleMeta{ID: "docker-json-logs", Title: "Reads Docker's JSON log files", Severity: check.SeverityMedium, Remedy: RemedyLogs},
		match: func(m mountAt) (string, bool) {
			if within(m.norm, dockerLogDir) {
				return fmt.Sprintf("reads container logs from %s; with containerd they are written in CRI format under /var/log/pods", m.hostPath), true
			}
			return "", false
		},
	}
	return r
}

// RemedyLogs is the remedy for log collectors that read Docker's JSON logs.
const RemedyLogs = "Read /var/log/pods (and the /var/log/containers links) and parse the CRI log format: fluent-bit `multiline.parser docker, cri` " +
	"during the rollout and `cri` after it, fluentd's cri parser, promtail's `cri: {}` stage, vector's kubernetes_logs source. " +
	"Mount /var/log/pods, and move log rotation from Docker's log-opts to the kubelet's containerLogMaxSize/containerLogMaxFiles."

func splitPath(p string) []string {
	var out []string
	for p != "/" && p != "." && p != "" {
		out = append(out, path.Base(p))
		p = path.Dir(p)
	}
	return out
}
