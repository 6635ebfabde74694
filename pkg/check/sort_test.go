package check

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestSort: most serious first, then the owner (namespace, kind, name), rule,
// container, file and line; findings equal in all of these keep their order.
// The same order serves a cluster's findings and a node's (pkg/nodecheck).
func TestSort(t *testing.T) {
	f := func(id string, sev Severity, ns, kind, name, rule, container, file string, line int) Finding {
		return Finding{Message: id, Severity: sev, Object: ObjectRef{Namespace: ns, Kind: kind, Name: name},
			Rule: rule, Container: container, File: file, Line: line}
	}
	want := []Finding{
		f("a", SeverityHigh, "", "Node", "n1", "docker-socket", "", "", 0),
		f("b", SeverityHigh, "default", "Deployment", "web", "docker-socket", "", "", 0),
		f("c", SeverityMedium, "default", "DaemonSet", "agent", "docker-cli", "", "", 0),
		f("d", SeverityMedium, "default", "DaemonSet", "agent", "docker-socket", "init", "", 0),
		f("e", SeverityMedium, "default", "DaemonSet", "agent", "docker-socket", "main", "a.yaml", 3),
		f("f", SeverityMedium, "default", "DaemonSet", "agent", "docker-socket", "main", "a.yaml", 12),
		f("g", SeverityMedium, "default", "DaemonSet", "agent", "docker-socket", "main", "b.yaml", 1),
		f("h", SeverityMedium, "default", "Deployment", "agent", "docker-cli", "", "", 0),
		f("i", SeverityMedium, "kube-system", "DaemonSet", "agent", "docker-cli", "", "", 0),
		f("j", SeverityLow, "", "File", "/etc/cron.d/prune", "docker-caller", "", "", 0),
		f("k", SeverityLow, "", "Image", "busybox", "image-no-digest", "", "", 0),
		f("l", SeverityInfo, "", "Node", "n1", "not-checked", "", "", 0),
		f("m", SeverityInfo, "", "Node", "n1", "not-checked", "", "", 0), // a tie: stays after l
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		got := append([]Finding(nil), want...)
		r.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		// The tie keeps its input order: put l before m as the input had them.
		li, mi := index(got, "l"), index(got, "m")
		if li > mi {
			got[li], got[mi] = got[mi], got[li]
		}
		Sort(got)
		if ids(got) != ids(want) {
			t.Fatalf("round %d: order %s, want %s", round, ids(got), ids(want))
		}
	}
}

func index(fs []Finding, id string) int {
	for i, f := range fs {
		if f.Message == id {
			return i
		}
	}
	return -1
}

func ids(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Message)
	}
	return b.String()
}
