package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/internal/testutil"
	"github.com/unshim/unshim/pkg/migrate/phases"
)

// completions runs `unshim __complete ARGS...` (or, as name
// kubectl_complete-unshim, the helper kubectl runs) in-process and returns
// the candidates and the directive line.
func completions(t *testing.T, name string, args ...string) ([]string, string) {
	t.Helper()
	r := runAs(t, name, "", args...)
	if r.code != 0 {
		t.Fatalf("%s %v: exit %d: %s", name, args, r.code, r.errOut)
	}
	lines := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
	var out []string
	for _, l := range lines[:len(lines)-1] {
		out = append(out, strings.SplitN(l, "\t", 2)[0])
	}
	return out, lines[len(lines)-1]
}

// TestCompleteNodeNames: node arguments complete to the names of the
// cluster's nodes (the lab's real apiserver), through `unshim __complete`
// and through kubectl's plugin helper kubectl_complete-unshim.
func TestCompleteNodeNames(t *testing.T) {
	e := requireLab(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("cmpl-%04d-", rand.Intn(10000))
	var want []string
	for _, s := range []string{"a", "b", "c"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: prefix + s}}
		if _, err := e.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.client.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{}) })
		want = append(want, n.Name)
	}
	tests := []struct {
		name string
		prog string
		args []string
		want []string
	}{
		{"migrate node", "unshim", []string{"__complete", "migrate", "node", "--kubeconfig", e.lab.Kubeconfig, prefix}, want},
		{"node rollback, prefix narrows", "unshim", []string{"__complete", "node", "rollback", "--kubeconfig", e.lab.Kubeconfig, prefix + "b"}, want[1:2]},
		{"node purge-docker", "unshim", []string{"__complete", "node", "purge-docker", "--kubeconfig", e.lab.Kubeconfig, prefix}, want},
		{"one phase", "unshim", []string{"__complete", "migrate", "node", "phase", "drain", "--kubeconfig", e.lab.Kubeconfig, prefix}, want},
		{"nodes leaves out names given", "unshim", []string{"__complete", "nodes", "--kubeconfig", e.lab.Kubeconfig, want[0], prefix}, want[1:]},
		{"kubectl plugin helper", "kubectl_complete-unshim", []string{"migrate", "node", "--kubeconfig", e.lab.Kubeconfig, prefix}, want},
		{"no such prefix", "unshim", []string{"__complete", "migrate", "node", "--kubeconfig", e.lab.Kubeconfig, prefix + "zz"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, directive := completions(t, tt.prog, tt.args...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("completions = %q; want %q", got, tt.want)
			}
			if directive != ":4" { // ShellCompDirectiveNoFileComp
				t.Errorf("directive %q; want :4 (no file names)", directive)
			}
		})
	}
}

// TestCompleteValues: phases (the phase subcommands), --via and --to
// complete without a cluster.
func TestCompleteValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"phase subcommand, no cluster", []string{"migrate", "node", "--kubeconfig", "/nonexistent", ""}, []string{"phase"}},
		{"phases", []string{"migrate", "node", "phase", ""}, phaseNames()},
		{"phases under node migrate", []string{"node", "migrate", "phase", ""}, phaseNames()},
		{"--via of a phase", []string{"migrate", "node", "phase", "drain", "n1", "--via", ""}, []string{"local", "ssh", "pod", "nsenter"}},
		{"--via of migrate node", []string{"migrate", "node", "n1", "--via", ""}, []string{"local", "ssh", "pod", "nsenter"}},
		{"--via of node rollback", []string{"node", "rollback", "n1", "--via", ""}, []string{"local", "ssh", "nsenter"}},
		{"--to", []string{"migrate", "node", "n1", "--to", ""}, []string{"containerd", "cri-dockerd"}},
		{"version -o", []string{"version", "-o", ""}, []string{"text", "json", "yaml"}},
		{"completion shells", []string{"completion", ""}, []string{"bash", "fish", "powershell", "zsh"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := completions(t, "unshim", append([]string{"__complete"}, tt.args...)...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("completions = %q; want %q", got, tt.want)
			}
		})
	}
	if len(phaseNames()) < 2 {
		t.Fatal("no phases to complete")
	}
}

// phaseNames are the names of every phase, in cobra's (sorted) order.
func phaseNames() []string {
	var names []string
	for _, p := range phases.All() {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// TestCompletionScripts: `unshim completion SHELL` writes a script for
// bash, zsh, fish and PowerShell, and the real bash, zsh and fish complete
// with it (their completion functions called as the shell calls them;
// PowerShell is not in Debian, its script is only checked for the call).
func TestCompletionScripts(t *testing.T) {
	bin := unshimBinary(t)
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "unshim")); err != nil {
		t.Fatal(err)
	}
	path := dir + string(os.PathListSeparator) + os.Getenv("PATH")
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := run(t, "", "completion", shell)
		if r.code != 0 || !strings.Contains(r.out, "__complete") {
			t.Fatalf("completion %s: exit %d, %d bytes without a __complete call: %s", shell, r.code, len(r.out), r.errOut)
		}
		if err := os.WriteFile(filepath.Join(dir, "unshim."+shell), []byte(r.out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := func(shell string) string { return filepath.Join(dir, "unshim."+shell) }
	tests := []struct {
		shell string
		argv  []string
		want  []string
	}{
		// bash: as bash-completion (which cobra's script needs) calls the
		// function for `unshim migrate node n1 --via <TAB>`.
		{"bash", []string{"bash", "--norc", "-c", `source /usr/share/bash-completion/bash_completion; source "$1"; COMP_WORDS=(unshim migrate node n1 --via ""); COMP_CWORD=5; COMP_LINE="unshim migrate node n1 --via "; COMP_POINT=${#COMP_LINE}; __start_unshim 2>/dev/null; printf '%s\n' "${COMPREPLY[@]}"`, "bash", script("bash")},
			[]string{"local", "ssh", "pod", "nsenter"}},
		{"bash", []string{"bash", "--norc", "-c", `source /usr/share/bash-completion/bash_completion; source "$1"; COMP_WORDS=(unshim node migrate phase ""); COMP_CWORD=4; COMP_LINE="unshim node migrate phase "; COMP_POINT=${#COMP_LINE}; __start_unshim 2>/dev/null; printf '%s\n' "${COMPREPLY[@]}"`, "bash", script("bash")},
			phaseNames()},
		// zsh: compdef and _describe (of compsys) stubbed; _describe lists the candidates it was given.
		{"zsh", []string{"zsh", "-f", "-c", `compdef() { :; }; _describe() { print -rl -- "${completions[@]%%:*}"; }; source "$1"; words=(unshim migrate node n1 --to ""); CURRENT=6; _unshim`, "zsh", script("zsh")},
			[]string{"containerd", "cri-dockerd"}},
		// fish: its own completion engine, non-interactively.
		{"fish", []string{"fish", "--no-config", "-c", `source $argv[1]; complete --do-complete "unshim migrate node n1 --via "`, script("fish")},
			[]string{"local", "ssh", "pod", "nsenter"}},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			testutil.RequireBinary(t, tt.shell)
			if tt.shell == "bash" {
				if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
					testutil.Missing(t, "bash-completion not installed (see hack/apt-packages.txt): %v", err)
				}
			}
			c := exec.Command(tt.argv[0], tt.argv[1:]...)
			c.Env = append(os.Environ(), "PATH="+path, "KUBECONFIG=/nonexistent")
			out, err := c.Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tt.shell, err, out)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if l = strings.TrimSpace(strings.SplitN(l, "\t", 2)[0]); l != "" {
					got = append(got, l)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s completes %q; want %q", tt.shell, got, want)
			}
		})
	}
}

// unshimBinary returns $UNSHIM_BIN (hack/test.sh builds it) or builds unshim.
func unshimBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("UNSHIM_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "unshim")
	c := exec.Command("go", "build", "-o", bin, "./cmd/unshim")
	c.Dir = "../.."
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build unshim: %v\n%s", err, out)
	}
	return bin
}
