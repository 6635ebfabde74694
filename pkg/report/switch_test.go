package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodeplan"
)

func linuxDryRun() *nodeplan.DryRun {
	return &nodeplan.DryRun{Node: "worker-1", Target: nodeplan.Containerd, OS: nodeplan.Linux,
		Endpoint: nodeplan.ContainerdEndpoint, SandboxImage: "registry.k8s.io/pause:3.9", ConfigVersion: 2,
		Phases: []nodeplan.PhaseDryRun{
			{Phase: "preflight", Short: "Check the node", Done: true, Lines: []string{"no blockers"}},
			{Phase: "stop-docker", Short: "Stop Docker", Lines: []string{"systemctl stop docker.service"},
				Steps: []journal.Step{{Phase: "stop-docker", Kind: journal.StepExec, Argv: []string{"systemctl", "stop", "docker.service"},
					Undo: [][]string{{"systemctl", "start", "docker.service"}}}}},
		},
		Unmapped: []nodeconf.Unmapped{{Key: "userns-remap", Value: "default", Reason: "no containerd equivalent"}},
		Notes:    []string{"the kubelet restarts"}}
}

func windowsDryRun() *nodeplan.DryRun {
	return &nodeplan.DryRun{Node: "win-1", Target: nodeplan.Containerd, OS: nodeplan.Windows, Notes: []string{"containerd 1.7 for kubelet 1.29"},
		Windows: &nodeplan.WindowsPlan{Kubelet: "1.29.1", Containerd: "1.7.34",
			Steps:  []nodeplan.WindowsStep{{Name: "stop-kubelet", Description: "Stop the kubelet", Lines: []string{"Stop-Service -Name 'kubelet'"}}},
			Script: "# unshim plan for win-1\r\nStop-Service -Name 'kubelet'\r\n"}}
}

// TestSwitchDryRunText: a Linux node's phases in order, with a done phase
// marked, each recorded step with its undo, what is not carried over and
// the notes; a Windows node's text is its script alone, byte for byte, so
// that it can be saved and run.
func TestSwitchDryRunText(t *testing.T) {
	var b bytes.Buffer
	if err := SwitchDryRun(&b, linuxDryRun(), Text); err != nil {
		t.Fatal(err)
	}
	want := `Switch of node worker-1 to containerd (endpoint unix:///run/containerd/containerd.sock, sandbox image registry.k8s.io/pause:3.9, config.toml version 2)

[1/2] preflight: Check the node (done: skipped on resume)
    no blockers

[2/2] stop-docker: Stop Docker
    systemctl stop docker.service
    step: `
	if got := b.String(); !strings.HasPrefix(got, want) {
		t.Fatalf("text =\n%s\nwant it to begin\n%s", got, want)
	}
	for _, w := range []string{`(undo: ["systemctl" "start" "docker.service"])`, "Not carried over to containerd:\n    userns-remap=default: no containerd equivalent\n", "\nNote: the kubelet restarts\n"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, b.String())
		}
	}

	b.Reset()
	w := windowsDryRun()
	if err := SwitchDryRun(&b, w, Text); err != nil {
		t.Fatal(err)
	}
	if b.String() != w.Windows.Script {
		t.Errorf("windows text = %q, want the script %q", b.String(), w.Windows.Script)
	}
}

// TestSwitchDryRunData: -o json and -o yaml carry the whole value, and read
// back into it unchanged, for both kinds of node.
func TestSwitchDryRunData(t *testing.T) {
	for _, d := range []*nodeplan.DryRun{linuxDryRun(), windowsDryRun()} {
		for _, f := range []Format{JSON, YAML} {
			t.Run(d.OS+"/"+string(f), func(t *testing.T) {
				var b bytes.Buffer
				if err := SwitchDryRun(&b, d, f); err != nil {
					t.Fatal(err)
				}
				var back nodeplan.DryRun
				var err error
				if f == JSON {
					err = json.Unmarshal(b.Bytes(), &back)
				} else {
					err = yaml.UnmarshalStrict(b.Bytes(), &back)
				}
				if err != nil {
					t.Fatalf("%v\n%s", err, b.String())
				}
				want, _ := json.Marshal(d)
				got, _ := json.Marshal(&back)
				if !bytes.Equal(got, want) {
					t.Errorf("read back\n%s\nwant\n%s", got, want)
				}
				if !strings.Contains(b.String(), "worker-1") && !strings.Contains(b.String(), "win-1") {
					t.Errorf("no node name in\n%s", b.String())
				}
			})
		}
	}
	if err := SwitchDryRun(&bytes.Buffer{}, linuxDryRun(), Table); err == nil {
		t.Error("a dry run written as a table: no error")
	}
}
