package manifest

import (
	"fmt"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/unshim/unshim/pkg/check"
)

// containerLists are keys whose items are containers in the custom resources
// that run them: Tekton's steps and sidecars, Argo Workflows' container,
// script, initContainers and sidecars, and embedded pod templates.
var containerLists = map[string]bool{
	"containers": true, "initContainers": true, "ephemeralContainers": true,
	"sidecars": true, "steps": true, "container": true, "script": true,
}

// containerKeys mark a mapping with an image as a container wherever it sits.
var containerKeys = []string{"command", "args", "env", "volumeMounts", "script", "source"}

// scope is a part of an object with a `volumes` list of its own (a pod
// template, an Argo template, a Tekton Task's spec) and the containers found in it.
type scope struct {
	parent     *scope
	volumes    []corev1.Volume
	volPaths   []string
	containers []corev1.Container
	ctrPaths   []string
}

// genericTargets walks an object of a kind unshim does not type and returns
// one target per scope that holds container-shaped entries: a mapping with a
// string `image` and a command, args, env, volume mounts or a script, or any
// mapping with an image in a list of containers (containerLists). Each
// target's PodSpec holds the scope's containers and the volumes visible
// there (its own and its enclosing scopes'), and Fields where they sit, so
// every container rule runs on them. The walk is lenient: fields of an
// unexpected shape are passed over, as the schema is not known.
func genericTargets(n *yaml.Node, base *check.Target) []*check.Target {
	root := &scope{}
	var scopes []*scope
	scopes = append(scopes, root)
	// parent is the name of the enclosing mapping: an Argo template's
	// container has no name of its own and goes by its template's.
	var walk func(n *yaml.Node, field, key, parent string, sc *scope)
	walk = func(n *yaml.Node, field, key, parent string, sc *scope) {
		n = resolve(n)
		if n == nil {
			return
		}
		switch n.Kind {
		case yaml.SequenceNode:
			for i, it := range n.Content {
				walk(it, fmt.Sprintf("%s[%d]", field, i), key, parent, sc)
			}
		case yaml.MappingNode:
			if isContainer(n, key) {
				var c corev1.Container
				genericContainer(n, &c)
				if c.Name == "" {
					c.Name = parent
				}
				sc.containers = append(sc.containers, c)
				sc.ctrPaths = append(sc.ctrPaths, field)
				return
			}
			if vols := resolve(child(n, "volumes")); vols != nil && vols.Kind == yaml.SequenceNode {
				inner := &scope{parent: sc}
				for i, v := range vols.Content {
					vol, ok := genericVolume(v)
					if !ok {
						continue
					}
					inner.volumes = append(inner.volumes, vol)
					inner.volPaths = append(inner.volPaths, join(field, fmt.Sprintf("volumes[%d]", i)))
				}
				scopes = append(scopes, inner)
				sc = inner
			}
			name := scalar(n, "name")
			_ = eachEntry(n, func(k string, v *yaml.Node) error {
				if k == "volumes" || k == "metadata" && field == "" {
					return nil
				}
				walk(v, join(field, k), k, name, sc)
				return nil
			})
		}
	}
	walk(n, "", "", "", root)

	var out []*check.Target
	for _, sc := range scopes {
		if len(sc.containers) == 0 {
			continue
		}
		t := *base
		spec := &corev1.PodSpec{Containers: sc.containers}
		fields := &check.SpecFields{Containers: sc.ctrPaths}
		seen := map[string]bool{}
		for s := sc; s != nil; s = s.parent {
			for i, v := range s.volumes {
				if seen[v.Name] {
					continue // an inner scope's volume hides an outer one of the same name
				}
				seen[v.Name] = true
				spec.Volumes = append(spec.Volumes, v)
				fields.Volumes = append(fields.Volumes, s.volPaths[i])
			}
		}
		t.PodSpec, t.Fields = spec, fields
		out = append(out, &t)
	}
	return out
}

func join(field, key string) string {
	switch {
	case field == "":
		return key
	case key == "":
		return field
	}
	return field + "." + key
}

// isContainer reports whether mapping n, the value of key (or an item of it), is a container.
func isContainer(n *yaml.Node, key string) bool {
	img := resolve(child(n, "image"))
	if img == nil || img.Kind != yaml.ScalarNode || img.Value == "" {
		return false
	}
	if containerLists[key] {
		return true
	}
	for _, k := range containerKeys {
		if child(n, k) != nil {
			return true
		}
	}
	return false
}

// genericContainer reads the fields the rules look at, passing over any of
// an unexpected shape. A Tekton step's script becomes its command, an Argo
// script template's source its args, so the rules that read commands see them.
func genericContainer(n *yaml.Node, c *corev1.Container) {
	d := &leanDecoder{}
	c.Name, _ = d.str(child(n, "name"))
	c.Image, _ = d.str(child(n, "image"))
	c.Command, _ = d.strs(child(n, "command"))
	c.Args, _ = d.strs(child(n, "args"))
	if script, _ := d.str(child(n, "script")); script != "" && len(c.Command) == 0 {
		c.Command = []string{script}
	}
	if source, _ := d.str(child(n, "source")); source != "" && len(c.Args) == 0 {
		c.Args = []string{source}
	}
	c.Env, _ = d.env(child(n, "env"))
	c.VolumeMounts, _ = d.mounts(child(n, "volumeMounts"))
	if sc := resolve(child(n, "securityContext")); sc != nil && sc.Kind == yaml.MappingNode {
		if p := child(sc, "privileged"); p != nil {
			if b, err := d.boolean(p); err == nil {
				c.SecurityContext = &corev1.SecurityContext{Privileged: &b}
			}
		}
	}
}

// genericVolume reads a volume's name and hostPath; false when it has no name.
func genericVolume(n *yaml.Node) (corev1.Volume, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return corev1.Volume{}, false
	}
	d := &leanDecoder{}
	name, err := d.str(child(n, "name"))
	if err != nil || name == "" {
		return corev1.Volume{}, false
	}
	v := corev1.Volume{Name: name}
	if hp := resolve(child(n, "hostPath")); hp != nil && hp.Kind == yaml.MappingNode {
		if p, err := d.str(child(hp, "path")); err == nil {
			v.HostPath = &corev1.HostPathVolumeSource{Path: p}
		}
	}
	return v, true
}

// CustomResourceTargets runs the walk -f does on kinds it does not know
// (see genericTargets) over an object read elsewhere, such as a custom
// resource listed from a live cluster: one target per scope of
// container-shaped entries, none when the object holds none.
func CustomResourceTargets(obj map[string]any, base *check.Target) ([]*check.Target, error) {
	var n yaml.Node
	if err := n.Encode(obj); err != nil {
		return nil, fmt.Errorf("walk %s: %w", base.Object, err)
	}
	return genericTargets(&n, base), nil
}

// IsContainerList reports whether the items of a field named key are
// containers wherever they sit (containers, steps, sidecars, ...).
func IsContainerList(key string) bool { return containerLists[key] }

// ContainerKeys returns the fields that, beside an image, make a mapping a
// container wherever it sits.
func ContainerKeys() []string { return append([]string(nil), containerKeys...) }
