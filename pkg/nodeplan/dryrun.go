package nodeplan

import (
	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/winplan"
)

// The operating systems a DryRun is made for (the Node's
// status.nodeInfo.operatingSystem).
const (
	Linux   = "linux"
	Windows = "windows"
)

// DryRun is a dry run's result, one value for both kinds of node: the phases
// of a Linux node's switch with the plan's summary, or the PowerShell plan of
// a Windows node. pkg/report renders it as text, JSON or YAML.
type DryRun struct {
	Node   string `json:"node"`
	Target string `json:"target"`
	// OS is Linux or Windows.
	OS           string `json:"os"`
	Endpoint     string `json:"endpoint,omitempty"`
	SandboxImage string `json:"sandboxImage,omitempty"`
	// ConfigVersion is the version of containerd's config.toml the switch
	// writes (0 for cri-dockerd and Windows).
	ConfigVersion int `json:"configVersion,omitempty"`
	// Phases are a Linux node's phases, in order (those that apply).
	Phases   []PhaseDryRun       `json:"phases,omitempty"`
	Unmapped []nodeconf.Unmapped `json:"unmapped,omitempty"`
	Notes    []string            `json:"notes,omitempty"`
	// Windows is a Windows node's plan; nil for Linux.
	Windows *WindowsPlan `json:"windows,omitempty"`
}

// PhaseDryRun is one phase of a dry run.
type PhaseDryRun struct {
	Phase string   `json:"phase"`
	Short string   `json:"short"`
	Done  bool     `json:"done,omitempty"`
	Lines []string `json:"lines"`
	// Steps are the changes to the node the phase makes: its Run, in dry-run
	// mode, records them without making them, exactly as a run records them
	// in the journal before making them.
	Steps []journal.Step `json:"steps,omitempty"`
}

// LinuxDryRun is the dry run of a Linux node's switch: its phases and plan.
func LinuxDryRun(node string, p *Plan, phases []PhaseDryRun) *DryRun {
	return &DryRun{Node: node, Target: p.Target, OS: Linux, Endpoint: p.Endpoint, SandboxImage: p.SandboxImage,
		ConfigVersion: p.Schema, Phases: phases, Unmapped: p.Unmapped, Notes: p.Notes}
}

// WindowsPlan is the PowerShell plan of a Windows node, as data.
type WindowsPlan struct {
	Kubelet          string        `json:"kubelet"`
	Containerd       string        `json:"containerd"`
	ArchiveURL       string        `json:"archiveURL"`
	CNIBinDir        string        `json:"cniBinDir"`
	CNIConfDir       string        `json:"cniConfDir"`
	ContainerdConfig string        `json:"containerdConfig"`
	KubeletArgs      []string      `json:"kubeletArgs,omitempty"`
	Steps            []WindowsStep `json:"steps"`
	// Script is the whole PowerShell script to run on the node.
	Script string `json:"script"`
}

// WindowsStep is one named step of a Windows node's script.
type WindowsStep struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Lines are PowerShell lines; none for a step unshim does from the API.
	Lines []string `json:"lines,omitempty"`
}

// WindowsDryRun is the dry run of a Windows node's switch, from its script.
func WindowsDryRun(target string, s *winplan.Script) *DryRun {
	w := &WindowsPlan{Kubelet: s.Kubelet.String(), Containerd: s.Containerd.String(), ArchiveURL: s.ArchiveURL,
		CNIBinDir: s.CNIBinDir, CNIConfDir: s.CNIConfDir, ContainerdConfig: string(s.ContainerdConfig),
		KubeletArgs: s.KubeletArgs, Script: string(s.Render())}
	for _, st := range s.Steps {
		w.Steps = append(w.Steps, WindowsStep{Name: st.Name, Description: st.Description, Lines: st.Lines})
	}
	if target == "" {
		target = Containerd
	}
	return &DryRun{Node: s.Node, Target: target, OS: Windows, SandboxImage: s.SandboxImage, Notes: s.Notes, Windows: w}
}
