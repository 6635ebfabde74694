package v1alpha1

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const crdFile = "../../../../deploy/crd/unshim.io_runtimemigrations.yaml"

// crdSchema reads the shipped CRD's v1alpha1 schema.
func crdSchema(t *testing.T) (crd map[string]any, schema map[string]any) {
	t.Helper()
	b, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatalf("%s: %v", crdFile, err)
	}
	spec := crd["spec"].(map[string]any)
	for _, v := range spec["versions"].([]any) {
		v := v.(map[string]any)
		if v["name"] == Version {
			return crd, v["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
		}
	}
	t.Fatalf("%s has no version %s", crdFile, Version)
	return nil, nil
}

// opaque are types whose schema the apiserver owns or that are a scalar in JSON.
var opaque = map[reflect.Type]bool{
	reflect.TypeOf(metav1.ObjectMeta{}):  true,
	reflect.TypeOf(metav1.ListMeta{}):    true,
	reflect.TypeOf(metav1.Time{}):        true,
	reflect.TypeOf(metav1.Duration{}):    true,
	reflect.TypeOf(intstr.IntOrString{}): true,
}

// compare walks Go type typ and schema s side by side and reports every
// field on one side only: a field added to the Go types without `make crd`
// fails here, and so does a schema field the Go types lost.
func compare(errorf func(string, ...any), path string, typ reflect.Type, s map[string]any) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if opaque[typ] {
		return
	}
	switch typ.Kind() {
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Uint8 {
			return
		}
		items, ok := s["items"].(map[string]any)
		if !ok {
			errorf("%s: a list in Go, no items in the schema", path)
			return
		}
		compare(errorf, path+"[]", typ.Elem(), items)
		return
	case reflect.Map:
		if _, ok := s["additionalProperties"]; !ok {
			errorf("%s: a map in Go, no additionalProperties in the schema", path)
		}
		return
	case reflect.Struct:
	default:
		return
	}
	props, _ := s["properties"].(map[string]any)
	goFields := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			if name == "" && f.Anonymous {
				if opaque[f.Type] || f.Type == reflect.TypeOf(metav1.TypeMeta{}) {
					for _, n := range []string{"apiVersion", "kind"} {
						if f.Type == reflect.TypeOf(metav1.TypeMeta{}) {
							goFields[n] = true
						}
					}
					continue
				}
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			goFields[name] = true
			sub, ok := props[name].(map[string]any)
			if !ok {
				errorf("%s.%s: Go field %s is missing from the CRD schema (run `make crd`)", path, name, f.Name)
				continue
			}
			compare(errorf, path+"."+name, f.Type, sub)
		}
	}
	walk(typ)
	var extra []string
	for n := range props {
		if !goFields[n] {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	for _, n := range extra {
		errorf("%s.%s: in the CRD schema but not in the Go types (run `make crd`)", path, n)
	}
}

func TestCRDSchemaMatchesGoTypes(t *testing.T) {
	_, schema := crdSchema(t)
	compare(t.Errorf, "RuntimeMigration", reflect.TypeOf(RuntimeMigration{}), schema)
}

// TestCRDShape checks the resource's names, scope, status subresource and
// printer columns: what `kubectl get runtimemigrations` and the driver rely on.
func TestCRDShape(t *testing.T) {
	crd, _ := crdSchema(t)
	spec := crd["spec"].(map[string]any)
	names := spec["names"].(map[string]any)
	if spec["group"] != Group || names["kind"] != Kind || names["plural"] != Resource || names["listKind"] != ListKind {
		t.Errorf("names: group %v, %v", spec["group"], names)
	}
	if spec["scope"] != "Cluster" {
		t.Errorf("scope %v, want Cluster", spec["scope"])
	}
	v := spec["versions"].([]any)[0].(map[string]any)
	if _, ok := v["subresources"].(map[string]any)["status"]; !ok {
		t.Error("no status subresource")
	}
	var cols []string
	for _, c := range v["additionalPrinterColumns"].([]any) {
		c := c.(map[string]any)
		cols = append(cols, c["name"].(string)+"="+c["jsonPath"].(string))
	}
	want := []string{"Target=.spec.targetRuntime", "Phase=.status.phase", "Done=.status.progress",
		"Failed=.status.counts.failed", "Blocked=.status.counts.blocked", "Age=.metadata.creationTimestamp"}
	if strings.Join(cols, " ") != strings.Join(want, " ") {
		t.Errorf("printer columns\n got %v\nwant %v", cols, want)
	}
}

func TestCompareCatchesAMissingField(t *testing.T) {
	// The check must be able to fail: a Go struct with a field the schema lacks.
	type probe struct {
		Spec struct {
			TargetRuntime string `json:"targetRuntime"`
			NewField      int32  `json:"newField"`
		} `json:"spec"`
	}
	s := map[string]any{"properties": map[string]any{"spec": map[string]any{
		"properties": map[string]any{"targetRuntime": map[string]any{"type": "string"}},
	}}}
	var got []string
	compare(func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) }, "probe", reflect.TypeOf(probe{}), s)
	if len(got) != 1 || !strings.Contains(got[0], "probe.spec.newField") {
		t.Errorf("compare reported %q, want the one missing field probe.spec.newField", got)
	}
}
