package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Object is one Kubernetes object read from a manifest into its full typed form.
type Object struct {
	Obj  runtime.Object
	File string
	node *yaml.Node
}

// Line returns the line of a field path such as "spec.containers[0].image"
// inside the object, or of the nearest enclosing field that exists.
func (o *Object) Line(field string) int {
	return lineOf(o.node, field)
}

// Read reads every object of every path into its full typed form, for
// callers that create the objects (tests apply them to a cluster). Kinds the
// check does not type are left out. Visit, which the check uses, reads only
// the fields the rules look at and is much faster.
func (s *Source) Read() ([]Object, error) {
	if len(s.Paths) == 0 {
		return nil, errors.New("no manifest given")
	}
	var out []Object
	for _, p := range s.Paths {
		if p == "-" {
			if s.Stdin == nil {
				return nil, errors.New("read stdin: no input")
			}
			objs, err := Decode("<stdin>", s.Stdin)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			objs, err := readFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func readFile(path string) ([]Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	defer f.Close()
	return Decode(path, f)
}

// Decode reads every object of a YAML or JSON stream; name is used for File and in errors.
func Decode(name string, r io.Reader) ([]Object, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Object
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			line, msg := yamlError(err)
			return nil, &ParseError{File: name, Line: line, Err: errors.New(msg)}
		}
		objs, err := fromDocument(name, &doc)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
}

func fromDocument(file string, doc *yaml.Node) ([]Object, error) {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil // an empty document, as Helm renders for disabled templates
	}
	if n.Kind != yaml.MappingNode {
		return nil, &ParseError{File: file, Line: n.Line, Err: errors.New("document is not a Kubernetes object (not a mapping)")}
	}
	kind := scalar(n, "kind")
	apiVersion := scalar(n, "apiVersion")
	if kind == "" || apiVersion == "" {
		return nil, nil // not a Kubernetes object (a values file, a kustomization without kind)
	}
	if strings.HasSuffix(kind, "List") {
		if items := child(n, "items"); items != nil {
			if items.Kind != yaml.SequenceNode {
				return nil, &ParseError{File: file, Line: items.Line, Err: fmt.Errorf("%s: items is not a list", kind)}
			}
			var out []Object
			for _, it := range items.Content {
				objs, err := fromDocument(file, it)
				if err != nil {
					return nil, err
				}
				out = append(out, objs...)
			}
			return out, nil
		}
	}
	obj := newTyped(apiVersion, kind)
	if obj == nil {
		return nil, nil // a kind the check does not look into
	}
	var generic any
	if err := n.Decode(&generic); err != nil {
		return nil, &ParseError{File: file, Line: n.Line, Err: err}
	}
	raw, err := json.Marshal(generic)
	if err != nil {
		return nil, &ParseError{File: file, Line: n.Line, Err: fmt.Errorf("%s: %w", kind, err)}
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		line := n.Line
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			line = lineOf(n, te.Field)
			err = fmt.Errorf("%s field %s: want %s, got %s", kind, te.Field, te.Type, te.Value)
		} else {
			err = fmt.Errorf("%s: %w", kind, err)
		}
		return nil, &ParseError{File: file, Line: line, Err: err}
	}
	return []Object{{Obj: obj, File: file, node: n}}, nil
}

// newTyped returns an empty typed object for the kinds the check inspects,
// old API groups included, and nil for others.
func newTyped(apiVersion, kind string) runtime.Object {
	if _, ok := podSpecPath(apiVersion, kind); !ok {
		if groupOf(apiVersion) == "" && kind == "ConfigMap" {
			return &corev1.ConfigMap{}
		}
		return nil
	}
	switch kind {
	case "Pod":
		return &corev1.Pod{}
	case "PodTemplate":
		return &corev1.PodTemplate{}
	case "ReplicationController":
		return &corev1.ReplicationController{}
	case "Deployment":
		return &appsv1.Deployment{}
	case "ReplicaSet":
		return &appsv1.ReplicaSet{}
	case "DaemonSet":
		return &appsv1.DaemonSet{}
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "Job":
		return &batchv1.Job{}
	case "CronJob":
		return &batchv1.CronJob{}
	}
	return nil
}
