package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/unshim/unshim/pkg/nodeplan"
)

// Node shapes: how a lab node's kubelet reaches Docker. Other tools call
// them by these names.
const (
	// ShapeDockershim is kubelet 1.23 with its built-in dockershim.
	ShapeDockershim = "dockershim"
	// ShapeCRIDockerd is a kubelet on the lab's cri-dockerd: 1.23 with
	// --container-runtime=remote, or a later one through CRI v1.
	ShapeCRIDockerd = "cri-dockerd"
)

// NewestKubeletVersion is the newest kubelet the lab builds from the module
// proxy (see README: which releases build and why the others do not).
const NewestKubeletVersion = "v1.30.14"

// CRIDockerdEndpoint is the CRI socket of cri-dockerd.
const CRIDockerdEndpoint = nodeplan.CRIDockerdEndpoint

// NodeShape says what the lab nodes started by one Up look like.
type NodeShape struct {
	// Shape is ShapeDockershim (default) or ShapeCRIDockerd.
	Shape string
	// KubeletVersion is the nodes' kubelet; NodeKubeletVersion when empty.
	// dockershim needs 1.23 or older; cri-dockerd takes any the lab builds.
	KubeletVersion string
}

func (s *NodeShape) complete() {
	if s.Shape == "" {
		s.Shape = ShapeDockershim
	}
	if s.KubeletVersion == "" {
		s.KubeletVersion = NodeKubeletVersion
	}
}

// Validate says what is wrong with the shape, before anything is built.
func (s NodeShape) Validate() error {
	s.complete()
	minor := kubeletMinor(s.KubeletVersion)
	if minor < 0 {
		return fmt.Errorf("kubelet version %q: want v1.MINOR.PATCH", s.KubeletVersion)
	}
	switch s.Shape {
	case ShapeDockershim:
		if minor > 23 {
			return fmt.Errorf("node shape %s needs a kubelet of 1.23 or older (dockershim left the kubelet in 1.24), not %s: use --node-shape %s", ShapeDockershim, s.KubeletVersion, ShapeCRIDockerd)
		}
	case ShapeCRIDockerd:
		if minor < 20 {
			return fmt.Errorf("node shape %s needs a kubelet of 1.20 or newer (CRI v1alpha2 over a remote socket), not %s", ShapeCRIDockerd, s.KubeletVersion)
		}
	default:
		return fmt.Errorf("node shape %q: want %s or %s", s.Shape, ShapeDockershim, ShapeCRIDockerd)
	}
	return nil
}

// kubeletMinor is MINOR of v1.MINOR.PATCH, or -1.
func kubeletMinor(v string) int {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) != 3 || parts[0] != "1" {
		return -1
	}
	m, err := strconv.Atoi(parts[1])
	if err != nil {
		return -1
	}
	if _, err := strconv.Atoi(parts[2]); err != nil {
		return -1
	}
	return m
}

// criDockerdLabFlags are the flags the lab's cri-dockerd runs with, in the
// drop-in the switch writes too: the lab's pause image (no registry is
// reachable) and CNI.
func criDockerdLabFlags() []string {
	return []string{"--pod-infra-container-image=" + PauseImage, "--network-plugin=cni"}
}

// installCRIDockerd installs the lab's cri-dockerd into a node's root as
// Mirantis's deb package does (the binary in /usr/bin, the units in
// /lib/systemd/system), and the drop-in with the lab's flags.
func installCRIDockerd(root, bin string) error {
	if err := copyFile(bin, filepath.Join(root, nodeplan.CRIDockerdBinary), 0o755); err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
	}{
		{nodeplan.CRIDockerdPackageUnit, nodeplan.CRIDockerdServiceUnit(nodeplan.CRIDockerdBinary)},
		{"/lib/systemd/system/" + nodeplan.CRIDockerdSocket, nodeplan.CRIDockerdSocketUnit()},
		{nodeplan.CRIDockerdDropIn, nodeplan.CRIDockerdDropInFile(nodeplan.CRIDockerdBinary, criDockerdLabFlags())},
	}
	for _, f := range files {
		if err := writeRootFile(root, f.path, f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ShapeName is the node's shape; nodes recorded before shapes existed are
// dockershim nodes.
func (n *Node) ShapeName() string {
	if n.Shape == "" {
		return ShapeDockershim
	}
	return n.Shape
}

// Kubelet is the node's kubelet version.
func (n *Node) Kubelet() string {
	if n.KubeletVersion == "" {
		return NodeKubeletVersion
	}
	return n.KubeletVersion
}

// AddNodes starts nodes of o.NodeShape until the running lab has o.Nodes
// of them; the nodes it has keep their shapes.
func (l *Lab) AddNodes(ctx context.Context, o Options) error {
	o.Dir = l.Dir
	o.complete()
	if err := o.NodeShape.Validate(); err != nil {
		return err
	}
	return l.addNodes(ctx, o)
}
