// Package winplan owns the migration plan of a Windows node: the PowerShell
// script that moves a Windows kubelet from Docker to containerd, for
// `unshim migrate node NAME --dry-run` on a node whose
// status.nodeInfo.operatingSystem is "windows". It is pure: it renders text
// and touches neither the node nor the API. The API-side steps (drain, the
// kubeadm cri-socket annotation, uncordon) stay with unshim and appear in the
// script as comments only.
package winplan

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/nodeconf"
)

const (
	// Endpoint is containerd's CRI endpoint on Windows, as the kubelet flag and
	// the kubeadm cri-socket annotation spell it.
	Endpoint = "npipe:////./pipe/containerd-containerd"
	// Pipe is the named pipe behind Endpoint.
	Pipe = `\\.\pipe\containerd-containerd`
	// DefaultCNIBinDir and DefaultCNIConfDir are where Kubernetes' Windows
	// guides (and sig-windows-tools) put the CNI plugins and their config.
	DefaultCNIBinDir  = "c:/opt/cni/bin"
	DefaultCNIConfDir = "c:/etc/cni/net.d"
	// DefaultArchiveURL is the containerd release archive for Windows;
	// {version} becomes the version without the leading v.
	DefaultArchiveURL = "https://github.com/containerd/containerd/releases/download/v{version}/containerd-{version}-windows-amd64.tar.gz"
	// FlagsFile is kubeadm's kubelet flags file on Windows.
	FlagsFile = `C:\var\lib\kubelet\kubeadm-flags.env`
	// FlagsBackup is where the script keeps the original FlagsFile; it is
	// written once, so a second run does not overwrite it.
	FlagsBackup = FlagsFile + BackupSuffix
	// BackupSuffix names the copy the script keeps of a file before it rewrites it.
	BackupSuffix = ".pre-unshim"

	// TargetContainerd is the only target on Windows.
	TargetContainerd = "containerd"
	// TargetCRIDockerd is refused on Windows: see ErrUnsupportedTarget.
	TargetCRIDockerd = "cri-dockerd"
)

var (
	// Containerd17 is the containerd used for kubelets older than 1.30:
	// containerd's RELEASES.md lists 2.x for Kubernetes 1.30 and later only.
	Containerd17 = version.MustParseGeneric("1.7.34")
	// Containerd2 is the containerd used for kubelet 1.30 and later.
	Containerd2 = version.MustParseGeneric("2.2.7")
)

// ErrUnsupportedTarget is returned for a target other than containerd.
// cri-dockerd has no documented Windows install (its docs cover Linux
// packages and systemd units only), so unshim does not plan one.
var ErrUnsupportedTarget = errors.New("not supported on Windows nodes")

// Input is what the plan is made from.
type Input struct {
	// NodeName is the Node's name; it only appears quoted, in comments and
	// messages.
	NodeName string
	// Kubelet is the node's kubelet version (status.nodeInfo.kubeletVersion).
	Kubelet *version.Version
	// Containerd is the containerd to install; zero means Containerd17 for
	// kubelets older than 1.30, else Containerd2.
	Containerd *version.Version
	// SandboxImage is the pause image; empty means the kubelet's
	// --pod-infra-container-image if KubeletFlags has it (as nodeconf.Convert
	// does on Linux), else nodeconf.PauseImage of the kubelet version
	// (registry.k8s.io/pause is a multi-arch image with Windows variants).
	SandboxImage string
	// CNIBinDir and CNIConfDir are containerd's CNI directories; empty means
	// the kubelet's --cni-bin-dir / --cni-conf-dir if KubeletFlags has them,
	// else DefaultCNIBinDir / DefaultCNIConfDir.
	CNIBinDir, CNIConfDir string
	// KubeletFlags is KUBELET_KUBEADM_ARGS of FlagsFile, parsed
	// (nodeconf.ParseKubeletFlags). Nil means unknown: the script then edits
	// the file on the node instead of writing it whole.
	KubeletFlags []nodeconf.KubeletFlag
	// Target is the runtime to move to: "" or TargetContainerd.
	Target string
	// ArchiveURL is where the containerd archive comes from, with {version}
	// replaced by the version (1.7.34). Empty means DefaultArchiveURL. For an
	// air-gapped node it may be a local or UNC path instead
	// (C:\k\containerd-{version}-windows-amd64.tar.gz); anything that is not
	// an http(s) URL is copied with Copy-Item.
	ArchiveURL string
	// ArchiveSHA256, if set, is checked against the archive before it is
	// unpacked (the release's .sha256sum file has it).
	ArchiveSHA256 string
}

// Step is one named step of the script.
type Step struct {
	Name        string
	Description string
	// Lines are PowerShell lines; none for a step unshim does from the API.
	Lines []string
}

// Script is the PowerShell migration plan of one Windows node.
type Script struct {
	Node         string
	Kubelet      *version.Version
	Containerd   *version.Version
	SandboxImage string
	CNIBinDir    string
	CNIConfDir   string
	ArchiveURL   string
	// ContainerdConfig is the config.toml the script writes.
	ContainerdConfig []byte
	// KubeletArgs is the new KUBELET_KUBEADM_ARGS; nil when the current flags
	// were unknown and the script edits the file on the node.
	KubeletArgs []string
	// Notes say what the plan changed or assumed.
	Notes []string
	Steps []Step
}

// Plan makes the migration script for a Windows node.
func Plan(in Input) (*Script, error) {
	switch in.Target {
	case "", TargetContainerd:
	case TargetCRIDockerd:
		return nil, fmt.Errorf("target %s on Windows node %q: %w (cri-dockerd documents no Windows install); use containerd", in.Target, in.NodeName, ErrUnsupportedTarget)
	default:
		return nil, fmt.Errorf("target %q on Windows node %q: %w", in.Target, in.NodeName, ErrUnsupportedTarget)
	}
	if in.NodeName == "" {
		return nil, errors.New("node name is empty")
	}
	if in.Kubelet == nil {
		return nil, fmt.Errorf("node %q: kubelet version unknown", in.NodeName)
	}
	if !in.Kubelet.AtLeast(version.MajorMinor(1, 20)) {
		return nil, fmt.Errorf("node %q: kubelet %s: containerd on Windows needs Kubernetes 1.20 or later", in.NodeName, in.Kubelet)
	}
	s := &Script{
		Node:         in.NodeName,
		Kubelet:      in.Kubelet,
		Containerd:   in.Containerd,
		SandboxImage: in.SandboxImage,
		CNIBinDir:    in.CNIBinDir,
		CNIConfDir:   in.CNIConfDir,
		ArchiveURL:   in.ArchiveURL,
	}
	if s.Containerd == nil {
		s.Containerd = Containerd2
		if !in.Kubelet.AtLeast(version.MajorMinor(1, 30)) {
			s.Containerd = Containerd17
		}
	}
	if c := s.Containerd; c.LessThan(version.MajorMinor(1, 6)) || c.AtLeast(version.MajorMinor(3, 0)) {
		return nil, fmt.Errorf("node %q: containerd %s: want 1.6, 1.7 or 2.x", in.NodeName, c)
	}
	if s.SandboxImage == "" {
		// As nodeconf.Convert does on Linux: the kubelet's own pause image
		// first (on an air-gapped node it is often a mirror), else kubeadm's.
		for _, f := range in.KubeletFlags {
			if f.Name == "pod-infra-container-image" && f.Value != "" {
				s.SandboxImage = f.Value
				s.Notes = append(s.Notes, "sandbox image: "+f.Value+", from the kubelet's --pod-infra-container-image")
			}
		}
	}
	if s.SandboxImage == "" {
		s.SandboxImage = nodeconf.PauseImage(in.Kubelet)
	}
	for _, f := range in.KubeletFlags {
		switch {
		case f.Name == "cni-bin-dir" && s.CNIBinDir == "":
			// containerd 1.x takes one directory: the first.
			s.CNIBinDir, _, _ = strings.Cut(f.Value, ",")
			s.Notes = append(s.Notes, "CNI plugins: "+s.CNIBinDir+", from the kubelet's --cni-bin-dir")
		case f.Name == "cni-conf-dir" && s.CNIConfDir == "":
			s.CNIConfDir = f.Value
			s.Notes = append(s.Notes, "CNI config: "+s.CNIConfDir+", from the kubelet's --cni-conf-dir")
		}
	}
	if s.CNIBinDir == "" {
		s.CNIBinDir = DefaultCNIBinDir
	}
	if s.CNIConfDir == "" {
		s.CNIConfDir = DefaultCNIConfDir
	}
	if s.ArchiveURL == "" {
		s.ArchiveURL = DefaultArchiveURL
	}
	s.ArchiveURL = strings.ReplaceAll(s.ArchiveURL, "{version}", s.Containerd.String())
	for _, v := range []struct{ what, val string }{
		{"node name", s.Node}, {"sandbox image", s.SandboxImage}, {"CNI bin dir", s.CNIBinDir},
		{"CNI conf dir", s.CNIConfDir}, {"archive URL", s.ArchiveURL}, {"archive SHA-256", in.ArchiveSHA256},
	} {
		if err := checkText(v.what, v.val); err != nil {
			return nil, fmt.Errorf("node %q: %w", in.NodeName, err)
		}
	}
	if in.ArchiveSHA256 != "" && !isHex(in.ArchiveSHA256, 64) {
		return nil, fmt.Errorf("node %q: archive SHA-256 %q: want 64 hex digits", in.NodeName, in.ArchiveSHA256)
	}

	if s.Containerd.Major() >= 2 && !in.Kubelet.AtLeast(version.MajorMinor(1, 30)) {
		s.Notes = append(s.Notes, "containerd's RELEASES.md lists containerd 2.x for Kubernetes 1.30 and later only; kubelet "+in.Kubelet.String()+" is older")
	}
	if in.Kubelet.AtLeast(version.MajorMinor(1, 24)) {
		s.Notes = append(s.Notes, "no way back to Docker: kubelet "+in.Kubelet.String()+" has no dockershim, and cri-dockerd is not planned on Windows")
	} else {
		s.Notes = append(s.Notes, "to roll back: Stop-Service kubelet, copy "+FlagsBackup+" back over "+FlagsFile+
			", Set-Service docker -StartupType Automatic, Start-Service docker, Start-Service kubelet")
	}

	var err error
	if s.ContainerdConfig, err = containerdConfig(s.Containerd, s.SandboxImage, s.CNIBinDir, s.CNIConfDir); err != nil {
		return nil, err
	}
	if in.KubeletFlags != nil {
		var notes []string
		if s.KubeletArgs, notes, err = kubeletArgs(in.Kubelet, s.SandboxImage, in.KubeletFlags); err != nil {
			return nil, fmt.Errorf("node %q: %w", in.NodeName, err)
		}
		s.Notes = append(s.Notes, notes...)
	} else {
		s.Notes = append(s.Notes, "kubelet flags unknown: the script edits "+FlagsFile+" on the node, and any --pod-infra-container-image there is set to the sandbox image")
	}
	if s.Steps, err = steps(s, in.ArchiveSHA256); err != nil {
		return nil, fmt.Errorf("node %q: %w", in.NodeName, err)
	}
	return s, nil
}

// checkText refuses what must not reach the script even quoted: control
// characters (a newline would end a comment line) and non-ASCII (Windows
// PowerShell 5.1 reads a .ps1 without a byte-order mark in the ANSI code
// page, so the text would not survive).
func checkText(what, s string) error {
	for _, r := range s {
		if r > unicode.MaxASCII || unicode.IsControl(r) {
			return fmt.Errorf("%s %q: only printable ASCII can go into the script", what, s)
		}
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// Render returns the script as one .ps1 text.
func (s *Script) Render() []byte {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# unshim: move Windows node %s from Docker to containerd.", psQuote(s.Node))
	w("# kubelet %s, containerd %s, sandbox image %s.", s.Kubelet, s.Containerd, psQuote(s.SandboxImage))
	w("# Run in an elevated PowerShell on the node, after unshim has drained it.")
	for _, n := range s.Notes {
		w("# note: %s", n)
	}
	w("")
	w("$ErrorActionPreference = 'Stop'")
	w("$ProgressPreference = 'SilentlyContinue'")
	for i, st := range s.Steps {
		w("")
		w("# ---- step %d/%d: %s ----", i+1, len(s.Steps), st.Name)
		for _, l := range strings.Split(st.Description, "\n") {
			w("# %s", l)
		}
		for _, l := range st.Lines {
			w("%s", l)
		}
	}
	return b.Bytes()
}
