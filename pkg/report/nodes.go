package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/unshim/unshim/pkg/inventory"
)

// NodeList is the machine-readable form of `unshim nodes`.
type NodeList struct {
	Nodes   []inventory.NodeRuntime `json:"nodes"`
	Summary inventory.Summary       `json:"summary"`
}

// Nodes writes an inventory in format f (table, wide, json or yaml).
func Nodes(w io.Writer, nodes []inventory.NodeRuntime, f Format) error {
	if nodes == nil {
		nodes = []inventory.NodeRuntime{}
	}
	sum := inventory.Summarize(nodes)
	switch f {
	case JSON:
		return writeJSON(w, NodeList{Nodes: nodes, Summary: sum})
	case YAML:
		return writeYAML(w, NodeList{Nodes: nodes, Summary: sum})
	case Table, Wide:
	default:
		return fmt.Errorf("nodes cannot be written as %s", f)
	}
	tw := newTabWriter(w)
	head := "NAME\tSTATUS\tVERSION\tCONTAINER-RUNTIME\tCRI-SOCKET\tMIGRATE"
	if f == Wide {
		head += "\tVIA\tROLES\tINTERNAL-IP\tOS\tOS-IMAGE\tKERNEL-VERSION\tNOTES"
	}
	fmt.Fprintln(tw, head)
	for _, n := range nodes {
		migrate := "no"
		if n.NeedsMigration {
			migrate = "yes"
		}
		rt := n.Runtime
		if n.RuntimeVersion != "" {
			rt += "://" + n.RuntimeVersion
		}
		line := strings.Join([]string{n.Name, n.Status, n.KubeletVersion, rt, orNone(n.CRISocket), migrate}, "\t")
		if f == Wide {
			osArch := n.OS
			if n.Arch != "" {
				osArch += "/" + n.Arch
			}
			line += "\t" + strings.Join([]string{orNone(n.Via), orNone(strings.Join(n.Roles, ",")), orNone(n.InternalIP),
				osArch, orNone(n.OSImage), orNone(n.KernelVersion), orNone(strings.Join(n.Notes, "; "))}, "\t")
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, sum.String())
	return err
}
