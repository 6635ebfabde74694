package podagent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/podagent"
	"github.com/unshim/unshim/pkg/release"
	"github.com/unshim/unshim/pkg/version"
)

const (
	agentImage = "unshim-agent:test"
	markerFile = "/var/lib/unshim/handoff-test"
	copyPath   = "/var/lib/unshim/bin/unshim"
)

// TestHandoffSurvivesDocker runs the agent on a real lab node (Docker 20.10,
// dockershim kubelet 1.23, systemd): the pod hands a command to a transient
// unit of the node's systemd, the command stops Docker (and with it the
// pod), and still finishes its work. Before that, a second agent for a unit
// still active starts nothing.
func TestHandoffSurvivesDocker(t *testing.T) {
	labtest.RequireNodePrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	archive, bin := buildAgentImage(ctx, t)

	start := time.Now()
	l := labtest.UpForTest(ctx, t, "podagenttest", lab.Options{Nodes: 1})
	t.Logf("lab with one node up in %s", time.Since(start).Round(time.Second))
	n := l.Nodes[0]
	// The image `make agent-image` builds, loaded as an operator would:
	// into the node's Docker (which runs the pod) and its containerd.
	if err := n.LoadArchive(ctx, archive, true); err != nil {
		t.Fatal(err)
	}
	if out, err := n.Run(ctx, "ctr", "--namespace", "k8s.io", "images", "ls", "--quiet"); err != nil || !strings.Contains(string(out), "docker.io/library/"+agentImage) {
		t.Fatalf("the agent image is not in the node's containerd: %v\n%s", err, out)
	}
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	// Pods are admitted with the ServiceAccount "default"; the lab runs no controller-manager to create it.
	if err := lab.EnsureServiceAccount(ctx, c, podagent.DefaultNamespace); err != nil {
		t.Fatal(err)
	}
	opts := func(unit string, delay time.Duration, argv ...string) podagent.Options {
		return podagent.Options{Node: n.Name, Image: agentImage, Unit: unit, Argv: argv, Delay: delay, Timeout: 3 * time.Minute}
	}

	t.Run("rerun leaves an active unit alone", func(t *testing.T) {
		const unit = "unshim-handoff-idem"
		defer n.Run(context.Background(), "systemctl", "stop", unit+".service")
		for i, want := range []string{"started " + unit + ".service on the host", unit + ".service is already active"} {
			var out bytes.Buffer
			t0 := time.Now()
			if err := podagent.Run(ctx, c, opts(unit, -1, "/bin/sleep", "300"), &out); err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
			t.Logf("run %d in %s: %s", i+1, time.Since(t0).Round(100*time.Millisecond), strings.TrimSpace(out.String()))
			if !strings.Contains(out.String(), want) {
				t.Errorf("run %d printed %q; want %q", i+1, out.String(), want)
			}
		}
		if out, err := n.Run(ctx, "systemctl", "show", "--property=MainPID", "--value", unit+".service"); err != nil || strings.TrimSpace(string(out)) == "0" {
			t.Errorf("%s has no main process: %s %v", unit, out, err)
		}
	})

	t.Run("rerun leaves a pending timer alone", func(t *testing.T) {
		const unit = "unshim-handoff-later"
		defer n.Run(context.Background(), "systemctl", "stop", unit+".timer", unit+".service")
		for i, want := range []string{"started " + unit + ".timer on the host", unit + ".timer is already active"} {
			var out bytes.Buffer
			if err := podagent.Run(ctx, c, opts(unit, 10*time.Minute, "/bin/true"), &out); err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
			if !strings.Contains(out.String(), want) {
				t.Errorf("run %d printed %q; want %q", i+1, out.String(), want)
			}
		}
	})

	t.Run("a failed hand-off fails the run with the agent's log", func(t *testing.T) {
		err := podagent.Run(ctx, c, opts("unshim-handoff-fail", -1, "/nonexistent/program"), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "failed") || !strings.Contains(err.Error(), "job failed") {
			t.Fatalf("run: %v; want the pod's failure with the hand-off's log (job failed)", err)
		}
		t.Logf("run: %v", err)
		pod, gerr := c.CoreV1().Pods(podagent.DefaultNamespace).Get(ctx, podagent.PodName(n.Name), metav1.GetOptions{})
		if gerr != nil || pod.Status.Phase != corev1.PodFailed {
			t.Errorf("agent pod: %v, %v; want Failed", phase(pod), gerr)
		}
	})

	t.Run("the unit outlives Docker and the pod", func(t *testing.T) {
		const unit = "unshim-handoff-test"
		defer func() {
			// Docker back, so that the lab stops as usual.
			if out, err := n.Run(context.Background(), "systemctl", "start", "docker.socket", "docker.service"); err != nil {
				t.Errorf("start docker again: %v: %s", err, out)
			}
		}()
		var out bytes.Buffer
		t0 := time.Now()
		err := podagent.Run(ctx, c, opts(unit, 0, "/bin/sh", "-c", "systemctl stop docker.service docker.socket; sleep 3; date > "+markerFile), &out)
		t.Logf("agent finished in %s: %s", time.Since(t0).Round(100*time.Millisecond), strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatal(err)
		}
		if want := "started " + unit + ".timer on the host"; !strings.Contains(out.String(), want) {
			t.Errorf("agent printed %q; want %q", out.String(), want)
		}
		pod, err := c.CoreV1().Pods(podagent.DefaultNamespace).Get(ctx, podagent.PodName(n.Name), metav1.GetOptions{})
		if err != nil || pod.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("agent pod: %v, %v; want Succeeded", phase(pod), err)
		}
		var marker []byte
		deadline := time.Now().Add(3 * time.Minute) // stopping Docker took up to 40s here
		for {
			if marker, err = n.Transport().ReadFile(ctx, markerFile); err == nil {
				break
			}
			if time.Now().After(deadline) {
				journal, _ := n.Run(ctx, "journalctl", "--no-pager", "-u", unit+".service")
				t.Fatalf("%s not written by the unit: %v\njournal:\n%s", markerFile, err, journal)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("marker written %s after the agent started: %s", time.Since(t0).Round(100*time.Millisecond), strings.TrimSpace(string(marker)))
		for _, u := range []string{"docker.service", "docker.socket"} {
			if st, _ := n.Run(ctx, "systemctl", "is-active", u); strings.TrimSpace(string(st)) == "active" {
				t.Errorf("%s still active: the unit did not stop it", u)
			}
		}
		// The container is gone with Docker, the unit finished: nothing of the pod's cgroup is left running.
		if st, _ := n.Run(ctx, "systemctl", "is-active", unit+".service"); strings.TrimSpace(string(st)) == "active" {
			t.Errorf("%s still active after its command finished", unit)
		}

		got, err := n.Transport().ReadFile(ctx, copyPath)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s on the node differs from the built binary (%d and %d bytes)", copyPath, len(got), len(want))
		}
		if mode, err := n.Transport().Mode(ctx, copyPath); err != nil || mode.Perm() != 0o755 {
			t.Errorf("%s: mode %v, %v; want 0755", copyPath, mode, err)
		}
	})
}

func phase(p *corev1.Pod) corev1.PodPhase {
	if p == nil {
		return ""
	}
	return p.Status.Phase
}

// buildAgentImage builds the agent image as `make agent-image` does (a
// static unshim at /unshim, go-containerregistry, no Docker) and returns
// the tarball and the binary it holds.
func buildAgentImage(ctx context.Context, t *testing.T) (string, string) {
	t.Helper()
	start := time.Now()
	o := release.Options{Dir: filepath.Join("..", ".."), Stamp: version.Stamp{Version: "v0.0.0-test", GitCommit: "test", BuildDate: "2025-01-01T00:00:00Z"}}
	img, err := release.BuildAgentImage(ctx, o, runtime.GOARCH, agentImage, filepath.Join(t.TempDir(), "agent.tar"))
	if err != nil {
		t.Fatalf("build the agent image: %v", err)
	}
	t.Logf("built the agent image %s (%s) in %s", img.Ref, img.Digest, time.Since(start).Round(100*time.Millisecond))
	return img.File, filepath.Join(filepath.Dir(img.File), "build", "linux-"+runtime.GOARCH, "unshim")
}
