package plan

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

// ec2Name is a node name as EKS and kOps name them (the instance's private
// DNS name, ip-10-0-1-2.eu-west-1.compute.internal): a real shape whose
// length sets how many nodes one RuntimeMigration's status can hold.
func ec2Name(i int) string {
	return fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", i/65536, i/256%256, i%256)
}

func sized(t *testing.T, n int) (*Plan, *v1alpha1.RuntimeMigration) {
	t.Helper()
	var nodes []Node
	for i := 0; i < n; i++ {
		nodes = append(nodes, node(ec2Name(i), fmt.Sprintf("zone=z%d", i%3)))
	}
	nodes = append(nodes, node("ip-10-200-0-1.eu-west-1.compute.internal", "containerd"))
	s := spec(func(s *v1alpha1.RuntimeMigrationSpec) { s.MaxUnavailable = percent(5) })
	p, err := Make(nodes, s)
	if err != nil {
		t.Fatal(err)
	}
	return p, &v1alpha1.RuntimeMigration{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: *s}
}

func TestProjected(t *testing.T) {
	p, m := sized(t, 10)
	m.Status.Driver = "before"
	proj := p.Projected(m)
	if m.Status.Driver != "before" || len(m.Status.Nodes) != 0 {
		t.Errorf("Projected changed its input's status: %+v", m.Status)
	}
	if len(proj.Status.Nodes) != 10 || len(proj.Status.Skipped) != 1 || proj.Name != "all" {
		t.Fatalf("projected %d nodes, %d skipped, name %q; want 10, 1, all", len(proj.Status.Nodes), len(proj.Status.Skipped), proj.Name)
	}
	for _, n := range proj.Status.Nodes {
		if n.StartTime == nil || n.CompletionTime == nil || n.UndoStartTime == nil || n.UndoCompletionTime == nil || n.FromRuntime == "" {
			t.Errorf("%s: %+v; want every time and the runtime set", n.Name, n)
		}
	}
	// Its size grows with the nodes: each entry is in it.
	small, _ := json.Marshal(proj)
	p2, m2 := sized(t, 20)
	big, _ := json.Marshal(p2.Projected(m2))
	if per := (len(big) - len(small)) / 10; per < 2*len(ec2Name(0)) || per > 600 {
		t.Errorf("a node adds %d bytes to the projection; want its name twice (wave and entry) and its entry's times, 100-600 bytes", per)
	}
}

func TestCheckSize(t *testing.T) {
	// 1,000 nodes of EKS-length names fit in one object; 8,000 do not
	// (about 280 bytes each: 2.1 MiB).
	p, m := sized(t, 1000)
	if err := p.CheckSize(m); err != nil {
		t.Errorf("1,000 nodes: %v", err)
	}
	p, m = sized(t, 8000)
	err := p.CheckSize(m)
	if err == nil {
		t.Fatal("8,000 nodes: no error; want the rollout refused")
	}
	for _, want := range []string{"runtimemigration all", "8001 nodes", "split it", "1.5 MiB", "--max-request-bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want %q in it", err, want)
		}
	}
	// The advice holds: a rollout of the size it names fits.
	var most int
	if _, err := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "at most about ")+len("at most about "):], "%d", &most); err != nil || most < 1000 {
		t.Fatalf("error %q: want the nodes a rollout may hold (at most about N), got %d (%v)", err, most, err)
	}
	p, m = sized(t, most)
	if err := p.CheckSize(m); err != nil {
		t.Errorf("%d nodes, as the advice says: %v", most, err)
	}
	// The names of spec.nodes.names count too: the object carries them.
	p, m = sized(t, most)
	for _, w := range p.Waves {
		m.Spec.Nodes.Names = append(m.Spec.Nodes.Names, w.Nodes...)
	}
	if err := p.CheckSize(m); err == nil {
		t.Errorf("%d nodes also named in spec.nodes.names: no error; want the names counted", most)
	}
}
