package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
	"github.com/unshim/unshim/pkg/rollout/preview"
)

// RolloutPreview writes the preview of `unshim rollout plan`.
func RolloutPreview(w io.Writer, p *preview.Preview, f Format) error {
	switch f {
	case JSON:
		return writeJSON(w, p)
	case YAML:
		return writeYAML(w, p)
	}
	name := p.Name
	if name == "" {
		name = "(from file)"
	}
	fmt.Fprintf(w, "Rollout %s to %s: %d nodes in %d waves, ETA %s (%s per wave, %s soak between waves)\n",
		name, p.Target, p.Nodes, p.Waves, p.ETA.Duration.Round(time.Second), p.Times["perWave"], p.Times["soak"])
	l := p.Plan.Limits
	lim := fmt.Sprintf("maxUnavailable %d overall", l.Overall)
	if l.ZoneKey != "" {
		lim += fmt.Sprintf("; per zone (%s) %s", l.ZoneKey, perGroup(l.PerZone))
	}
	if l.PoolKey != "" {
		lim += fmt.Sprintf("; per pool (%s) %s", l.PoolKey, perGroup(l.PerPool))
	}
	fmt.Fprintln(w, "Limits: "+lim)
	fmt.Fprintln(w)
	if len(p.Plan.Waves) == 0 {
		fmt.Fprintln(w, "Nothing to switch: no selected node needs it.")
	} else {
		tw := newTabWriter(w)
		fmt.Fprintln(tw, "WAVE\tKIND\tNODES")
		for _, wv := range p.Plan.Waves {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", wv.Index, wv.Kind, strings.Join(wv.Nodes, ","))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(p.Plan.Skipped) > 0 {
		fmt.Fprintln(w, "\nSkipped:")
		for _, s := range p.Plan.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Reason)
		}
	}
	if len(p.PDBs) > 0 {
		fmt.Fprintln(w, "\nPodDisruptionBudgets that allow no disruption now:")
		for _, b := range p.PDBs {
			fmt.Fprintf(w, "  %s/%s on %s: %s\n", b.Namespace, b.Name, strings.Join(b.Nodes, ","), strings.Join(b.Pods, ", "))
		}
	}
	if len(p.Docker) > 0 {
		fmt.Fprintln(w, "\nDocker-dependent workloads on the selected nodes:")
		tw := newTabWriter(w)
		fmt.Fprintln(tw, "  SEVERITY\tWORKLOAD\tRULE\tPODS\tEVIDENCE")
		for _, d := range p.Docker {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", d.Severity, d.Object, d.Rule, d.Pods, d.Evidence)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(p.Risks) > 0 {
		fmt.Fprintln(w, "\nRisks:")
		for _, r := range p.Risks {
			fmt.Fprintf(w, "  [%s] %s\n", r.Severity, r.Message)
		}
	}
	return nil
}

func perGroup(m map[string]int) string {
	if len(m) == 0 {
		return "(no nodes)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", orNone(k), m[k])
	}
	return strings.Join(parts, " ")
}

// RolloutStatus writes a RuntimeMigration's state for `unshim rollout status`.
func RolloutStatus(w io.Writer, m *v1alpha1.RuntimeMigration, f Format) error {
	switch f {
	case JSON:
		return writeJSON(w, m)
	case YAML:
		return writeYAML(w, m)
	}
	st := m.Status
	phase := orNone(st.Phase)
	var flags []string
	if m.Spec.Paused {
		flags = append(flags, "paused")
	}
	if m.Spec.Abort {
		flags = append(flags, "abort requested")
	}
	if len(flags) > 0 {
		phase += " (" + strings.Join(flags, ", ") + ")"
	}
	fmt.Fprintf(w, "RuntimeMigration %s to %s: %s\n", m.Name, m.Spec.TargetRuntime, phase)
	if st.Message != "" {
		fmt.Fprintf(w, "Message: %s\n", st.Message)
	}
	c := st.Counts
	undone := ""
	if c.Undone > 0 {
		undone = fmt.Sprintf(", %d undone", c.Undone)
	}
	fmt.Fprintf(w, "Nodes: %d total, %d done, %d switching, %d pending, %d failed, %d blocked, %d rolled back, %d skipped%s\n",
		c.Total, c.Done, c.Switching, c.Pending, c.Failed, c.Blocked, c.RolledBack, c.Skipped, undone)
	if st.ObservedGeneration != m.Generation {
		fmt.Fprintf(w, "The driver has not acted on the latest spec yet (generation %d, observed %d).\n", m.Generation, st.ObservedGeneration)
	}
	for _, cond := range st.Conditions {
		if cond.Status == "True" {
			fmt.Fprintf(w, "%s: %s %s\n", cond.Type, cond.Reason, cond.Message)
		}
	}
	if len(st.Nodes) == 0 {
		fmt.Fprintln(w, "No waves yet: the driver has not planned this rollout (see `unshim rollout plan`).")
		return nil
	}
	fmt.Fprintln(w)
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "WAVE\tNODE\tSTATE\tPHASE\tELAPSED\tCAUSE")
	for _, n := range st.Nodes {
		elapsed := ""
		if n.StartTime != nil {
			end := time.Now()
			if n.CompletionTime != nil {
				end = n.CompletionTime.Time
			}
			elapsed = end.Sub(n.StartTime.Time).Round(time.Second).String()
		}
		cause := n.Cause
		if n.Blocking != nil {
			b := n.Blocking
			cause = strings.TrimSpace(cause + fmt.Sprintf(" blocked by PDB %s (pods %s)", orNone(b.PodDisruptionBudget), strings.Join(b.Pods, ", ")))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", n.Wave, n.Name, n.State, n.Phase, elapsed, cause)
	}
	return tw.Flush()
}
