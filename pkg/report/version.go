package report

import (
	"fmt"
	"io"

	"github.com/unshim/unshim/pkg/version"
)

// Version writes a binary's version in format f: text (one field a line),
// json or yaml.
func Version(w io.Writer, info version.Info, f Format) error {
	switch f {
	case JSON:
		return writeJSON(w, info)
	case YAML:
		return writeYAML(w, info)
	case Text:
	default:
		return fmt.Errorf("a version cannot be written as %s", f)
	}
	tw := newTabWriter(w)
	for _, kv := range [][2]string{
		{"Version", info.Version},
		{"Git commit", info.GitCommit},
		{"Git tree state", info.GitTreeState},
		{"Build date", info.BuildDate},
		{"Go version", info.GoVersion},
		{"Compiler", info.Compiler},
		{"Platform", info.Platform},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}
