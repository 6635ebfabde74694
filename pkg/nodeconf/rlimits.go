package nodeconf

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BaseSpecPath is where Convert writes the base OCI spec that carries
// Docker's default-ulimits to every container.
const BaseSpecPath = "/etc/containerd/cri-base.json"

// ulimitNames are Docker's ulimit names (docker/go-units ulimit.go) and the
// OCI rlimit types they stand for.
var ulimitNames = map[string]string{
	"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
	"fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
	"nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
	"rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}

// ulimits carries Docker's default-ulimits over to the containers.
//
// dockerd puts default-ulimits into each container's OCI spec
// (process.rlimits; moby daemon/oci_linux.go WithRlimits) and never limits
// itself with them. containerd's CRI drops the rlimits of its default spec
// (internal/cri/opts WithoutDefaultSecuritySettings, containerd/cri#515), so
// containers inherit containerd's own limits, unless the runtime has a
// base_runtime_spec: then that spec, rlimits included, is the base of every
// container (internal/cri/server/container_create.go). So the limits go into
// a base spec, containerd's default spec (oci.GenerateSpec) with Docker's
// rlimits, and every runtime points at it. Setting LimitNOFILE= on
// containerd.service instead would limit containerd itself, which Docker's
// settings never did.
func (c *converter) ulimits() error {
	s := c.in.Daemon.Get("default-ulimits")
	if s == nil {
		return nil
	}
	m, _ := s.Value.(map[string]Ulimit)
	var rl []specs.POSIXRlimit
	for _, k := range sortedKeys(m) {
		u := m[k]
		name := u.Name
		if name == "" {
			name = k
		}
		typ, ok := ulimitNames[name]
		if !ok {
			c.unmapped("default-ulimits."+k, u, "unknown ulimit name")
			continue
		}
		if u.Soft > u.Hard && u.Hard >= 0 {
			return &InputError{File: s.Source, Key: "default-ulimits." + k, Err: fmt.Errorf("soft limit %d is above the hard limit %d", u.Soft, u.Hard)}
		}
		rl = append(rl, specs.POSIXRlimit{Type: typ, Soft: rlimit(u.Soft), Hard: rlimit(u.Hard)})
	}
	if len(rl) == 0 {
		return nil
	}
	data, err := BaseSpec(rl)
	if err != nil {
		return err
	}
	c.out.Files = append(c.out.Files, File{Path: BaseSpecPath, Data: data})
	c.baseSpec = BaseSpecPath
	return nil
}

// rlimit turns Docker's -1 (unlimited) into RLIM_INFINITY.
func rlimit(n int64) uint64 {
	if n < 0 {
		return math.MaxUint64
	}
	return uint64(n)
}

// BaseSpec returns containerd's default Linux OCI spec with rlimits as its
// process rlimits, as JSON for base_runtime_spec.
func BaseSpec(rlimits []specs.POSIXRlimit) ([]byte, error) {
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	spec, err := oci.GenerateSpecWithPlatform(ctx, nil, "linux/amd64", &containers.Container{ID: "base"})
	if err != nil {
		return nil, fmt.Errorf("generate containerd's default spec: %w", err)
	}
	spec.Process.Rlimits = rlimits
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// runtimeBaseSpecs points every runtime at the base spec.
func (c *converter) runtimeBaseSpecs() {
	if c.baseSpec == "" {
		return
	}
	base := append(c.criRt(), "containerd", "runtimes")
	for _, name := range c.cfg.sub(base...).subs {
		c.setAt(base, c.baseSpec, name, "base_runtime_spec")
	}
}
