package e2e

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeFlags keeps the README's flag tables in step with --help: each
// command's "Flags:" block must appear in README.md exactly as --help prints it.
func TestReadmeFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"nodes", "check", "node check", "convert", "migrate node", "node purge-docker", "lab up", "lab status", "lab seed", "version", "rollout plan", "rollout create", "rollout status", "rollout run", "rollout controller", "rollout report", "rollout undo", "label-runtime", "pin", "unpin"} {
		r := run(t, "", append(strings.Fields(cmd), "--help")...)
		if r.code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, r.code)
		}
		var block []string
		in := false
		for _, l := range strings.Split(r.out, "\n") {
			if l == "Flags:" {
				in = true
				continue
			}
			if in && l == "" {
				break
			}
			if in {
				block = append(block, l)
			}
		}
		if len(block) == 0 {
			t.Fatalf("%s --help has no Flags: block", cmd)
		}
		if !strings.Contains(string(readme), "```\n"+strings.Join(block, "\n")+"\n```") {
			t.Errorf("README.md lacks the current flags of `unshim %s`; paste this block:\n%s", cmd, strings.Join(block, "\n"))
		}
	}
}
