package manifest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/check"
)

// visitAll returns every target Visit hands over.
func visitAll(t *testing.T, src *Source) []*check.Target {
	t.Helper()
	var out []*check.Target
	if err := src.Visit(context.Background(), func(tg *check.Target) error {
		out = append(out, tg)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// project keeps the fields of a pod spec the rules read, as the lean decoder fills them.
func project(s *corev1.PodSpec) *corev1.PodSpec {
	if s == nil {
		return nil
	}
	ctrs := func(cs []corev1.Container) []corev1.Container {
		var out []corev1.Container
		for _, c := range cs {
			p := corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args}
			for _, e := range c.Env {
				pe := corev1.EnvVar{Name: e.Name, Value: e.Value}
				if e.ValueFrom != nil {
					pe.ValueFrom = &corev1.EnvVarSource{}
				}
				p.Env = append(p.Env, pe)
			}
			for _, m := range c.VolumeMounts {
				p.VolumeMounts = append(p.VolumeMounts, corev1.VolumeMount{Name: m.Name, MountPath: m.MountPath, SubPath: m.SubPath, ReadOnly: m.ReadOnly})
			}
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil {
				p.SecurityContext = &corev1.SecurityContext{Privileged: c.SecurityContext.Privileged}
			}
			out = append(out, p)
		}
		return out
	}
	p := &corev1.PodSpec{InitContainers: ctrs(s.InitContainers), Containers: ctrs(s.Containers)}
	for _, v := range s.Volumes {
		pv := corev1.Volume{Name: v.Name}
		if v.HostPath != nil {
			pv.HostPath = &corev1.HostPathVolumeSource{Path: v.HostPath.Path}
		}
		p.Volumes = append(p.Volumes, pv)
	}
	return p
}

// TestLeanMatchesTyped keeps the lean decoder in step with the full typed
// decode (JSON into the k8s.io/api types) on every manifest in the tree:
// the fields the rules read must come out the same.
func TestLeanMatchesTyped(t *testing.T) {
	var files []string
	for _, dir := range []string{"testdata", "../check/testdata/corpus", "../../test/e2e/testdata/rules"} {
		fs, _ := filepath.Glob(filepath.Join(dir, "*.*"))
		for _, f := range fs {
			if ext := filepath.Ext(f); ext == ".yaml" || ext == ".json" {
				files = append(files, f)
			}
		}
	}
	if len(files) < 10 {
		t.Fatalf("only %d manifests found", len(files))
	}
	for _, f := range files {
		typed, err := (&Source{Paths: []string{f}}).Read()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		lean := map[string]*check.Target{}
		for _, tg := range visitAll(t, &Source{Paths: []string{f}}) {
			lean[tg.Object.String()] = tg
		}
		for _, o := range typed {
			want, ok := check.NewTarget(o.Obj)
			if !ok {
				continue
			}
			got := lean[want.Object.String()]
			if got == nil {
				t.Errorf("%s: %s not visited", f, want.Object)
				continue
			}
			if !reflect.DeepEqual(project(got.PodSpec), project(want.PodSpec)) {
				t.Errorf("%s: %s: lean pod spec\n%+v\ntyped\n%+v", f, want.Object, project(got.PodSpec), project(want.PodSpec))
			}
			if got.SpecPath != want.SpecPath {
				t.Errorf("%s: %s: spec path %q, typed %q", f, want.Object, got.SpecPath, want.SpecPath)
			}
			if want.ConfigMap != nil && !reflect.DeepEqual(got.ConfigMap.Data, want.ConfigMap.Data) {
				t.Errorf("%s: %s: lean data %v, typed %v", f, want.Object, got.ConfigMap.Data, want.ConfigMap.Data)
			}
		}
	}
}

// TestVisitOrder: with several workers, objects still reach the check in
// the order of the files and of the documents in them.
func TestVisitOrder(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := 0; i < 40; i++ {
		var b strings.Builder
		for j := 0; j < 1+i%4; j++ {
			name := fmt.Sprintf("p%02d-%d", i, j)
			want = append(want, "Pod/"+name)
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers:\n  - {name: c, image: docker:dind}\n", name)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", i)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, workers := range []int{1, 2, 8} {
		for run := 0; run < 3; run++ {
			var got []string
			for _, tg := range visitAll(t, &Source{Paths: []string{dir}, Workers: workers}) {
				got = append(got, tg.Object.String())
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("workers=%d: order\n%v\nwant\n%v", workers, got, want)
			}
		}
	}
}

// TestVisitStopsOnError: a bad file late in the list stops the visit with
// its location, whatever the workers were doing.
func TestVisitStopsOnError(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 20; i++ {
		body := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"
		if i == 17 {
			body = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n"
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := (&Source{Paths: []string{dir}, Workers: 2}).Visit(context.Background(), func(*check.Target) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "f17.yaml:4") {
		t.Fatalf("error %v, want one at f17.yaml:4", err)
	}
}

// TestAnchorsAndMerges: YAML anchors, aliases and merge keys are followed.
func TestAnchorsAndMerges(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata: {name: merged}
spec:
  containers:
  - &base
    name: first
    image: docker:dind
  - <<: *base
    name: second
  volumes:
  - name: s
    hostPath: &sock {path: /var/run/docker.sock}
  - name: t
    hostPath: *sock
`
	ts := visitAll(t, &Source{Paths: []string{"-"}, Stdin: strings.NewReader(in)})
	if len(ts) != 1 || ts[0].PodSpec == nil {
		t.Fatalf("targets %+v", ts)
	}
	s := ts[0].PodSpec
	if len(s.Containers) != 2 || s.Containers[1].Name != "second" || s.Containers[1].Image != "docker:dind" {
		t.Errorf("containers %+v", s.Containers)
	}
	if len(s.Volumes) != 2 || s.Volumes[1].HostPath == nil || s.Volumes[1].HostPath.Path != "/var/run/docker.sock" {
		t.Errorf("volumes %+v", s.Volumes)
	}
}

// TestGenericFields: containers found by the generic walk carry the field
// paths (and so the lines) where they sit in the custom resource.
func TestGenericFields(t *testing.T) {
	in := `apiVersion: example.com/v1
kind: Runner
metadata: {name: r}
spec:
  volumes:
  - name: sock
    hostPath: {path: /run/docker.sock}
  jobs:
  - name: build
    container:
      image: docker:24-cli
      volumeMounts: [{name: sock, mountPath: /var/run/docker.sock}]
`
	ts := visitAll(t, &Source{Paths: []string{"-"}, Stdin: strings.NewReader(in)})
	if len(ts) != 1 || ts[0].Fields == nil || ts[0].Skip != "" {
		t.Fatalf("targets %+v", ts)
	}
	tg := ts[0]
	if got := tg.ContainerField("containers", 0); got != "spec.jobs[0].container" {
		t.Errorf("container field %q", got)
	}
	if got := tg.VolumeField(0); got != "spec.volumes[0]" {
		t.Errorf("volume field %q", got)
	}
	if tg.PodSpec.Containers[0].Name != "build" {
		t.Errorf("container name %q, want the job's", tg.PodSpec.Containers[0].Name)
	}
	if l := tg.Line(tg.VolumeField(0) + ".hostPath.path"); l != 7 {
		t.Errorf("line %d, want 7", l)
	}
}
