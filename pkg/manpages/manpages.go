// Package manpages writes unshim's man pages, generated from the commands
// themselves with cobra's doc generator (`make man`, and part of `make
// release`).
package manpages

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd/unshim"
)

// Write writes a man page (section 1) for every unshim command into dir,
// generated from the commands themselves (cobra's doc generator), dated
// date so that the same commit gives the same pages.
func Write(dir, ver string, date time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var discard bytes.Buffer
	root := unshim.NewCommand(genericiooptions.IOStreams{In: &discard, Out: &discard, ErrOut: &discard}, false)
	// cobra adds its completion command when the root runs; man pages list it too.
	root.InitDefaultCompletionCmd()
	disableAutoGenTag(root)
	hdr := &doc.GenManHeader{Title: "UNSHIM", Section: "1", Source: "unshim " + ver, Manual: "unshim manual", Date: &date}
	if err := doc.GenManTree(root, hdr, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}

func disableAutoGenTag(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		disableAutoGenTag(sub)
	}
}
