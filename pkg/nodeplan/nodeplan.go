// Package nodeplan works out what switching one node's runtime changes: the
// containerd files (from the node's Docker setup, through nodeconf.Convert),
// the kubelet's flags and configuration in the place its version and
// kubeadm's read them, and kubeadm's record of the CRI socket. It reads the
// node's files and changes nothing; the migration phases apply the plan.
package nodeplan

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/transport"
)

// Targets.
const (
	Containerd = "containerd"
	CRIDockerd = "cri-dockerd"
)

// Endpoints and the kubeadm record.
const (
	ContainerdEndpoint = nodeconf.DefaultEndpoint
	CRIDockerdEndpoint = "unix:///var/run/cri-dockerd.sock"
	// KubeadmFlagsFile carries KUBELET_KUBEADM_ARGS.
	KubeadmFlagsFile = "/var/lib/kubelet/kubeadm-flags.env"
	// InstanceConfigFile is kubeadm's per-node kubelet configuration (1.32+).
	InstanceConfigFile = "/var/lib/kubelet/instance-config.yaml"
	kubeadmFlagsVar    = "KUBELET_KUBEADM_ARGS"
)

// Input says which node to plan for and how.
type Input struct {
	// FS is the node's file system (nodefiles.Open); when nil, it is read
	// under Root.
	FS fs.FS
	// Root is where the node's file system is visible ("/" on the node),
	// when FS is nil.
	Root   string
	Target string
	// KubeletVersion is the node's kubelet (from the Node's status).
	KubeletVersion *version.Version
	// ContainerdVersion is the containerd that will run (ignored for cri-dockerd).
	ContainerdVersion *version.Version
	// CRISocket is the node's kubeadm annotation, "" when it has none.
	CRISocket string
}

// FileChange is one file the switch writes, with what was there.
type FileChange struct {
	Path    string
	Old     []byte
	Existed bool
	New     []byte
	Perm    os.FileMode
	Why     string
}

// Changed reports whether the file's content changes.
func (f FileChange) Changed() bool { return !f.Existed || !bytes.Equal(f.Old, f.New) }

// Plan is everything a switch changes on the node and in its Node object.
type Plan struct {
	Target   string
	Endpoint string
	// Containerd are the runtime's files (config.toml, hosts.toml, drop-ins);
	// empty for cri-dockerd.
	Containerd []FileChange
	// Kubelet are the kubelet's files (kubeadm-flags.env, config.yaml or
	// instance-config.yaml).
	Kubelet []FileChange
	// Annotation is the new value of inventory.CRISocketAnnotation, "" to leave it.
	Annotation    string
	OldAnnotation string
	SandboxImage  string
	// Schema is the containerd config.toml version, 0 for cri-dockerd.
	Schema   int
	Unmapped []nodeconf.Unmapped
	// Notes are decisions an operator should read.
	Notes []string
}

// Files are all the files the plan writes, containerd's first.
func (p *Plan) Files() []FileChange {
	return append(append([]FileChange{}, p.Containerd...), p.Kubelet...)
}

// Paths are the node paths of every file the plan writes.
func (p *Plan) Paths() []string {
	var out []string
	for _, f := range p.Files() {
		out = append(out, f.Path)
	}
	return out
}

// Build reads the node's files (in.FS, or under in.Root) and plans its switch.
func Build(in Input) (*Plan, error) {
	switch in.Target {
	case Containerd, CRIDockerd:
	default:
		return nil, fmt.Errorf("unknown target %q: want %s or %s", in.Target, Containerd, CRIDockerd)
	}
	if in.FS == nil {
		in.FS = transport.DirFS(in.Root)
	}
	node, err := nodefiles.LoadFS(in.FS)
	if err != nil {
		return nil, err
	}
	kv := in.KubeletVersion
	if kv == nil {
		return nil, errors.New("the kubelet's version is unknown: it decides where the kubelet's flags go")
	}
	node.Input.KubeletVersion = kv
	node.Input.ContainerdVersion = in.ContainerdVersion
	if in.Target == CRIDockerd && in.ContainerdVersion == nil {
		node.Input.ContainerdVersion = version.MajorMinor(1, 6)
	}
	out, err := nodeconf.Convert(node.Input)
	if err != nil {
		return nil, err
	}
	p := &Plan{Target: in.Target, Endpoint: ContainerdEndpoint, SandboxImage: out.SandboxImage, OldAnnotation: in.CRISocket}
	if in.Target == CRIDockerd {
		p.Endpoint = CRIDockerdEndpoint
		p.Notes = append(p.Notes, "Docker keeps running; cri-dockerd (from --cri-dockerd-package, or the one the node has) serves the kubelet on "+CRIDockerdEndpoint)
	} else {
		p.Schema = out.Schema
		p.Unmapped = out.Unmapped
		for _, f := range out.Files {
			fc, err := change(in.FS, f.Path, f.Data, os.FileMode(f.Perm()), "containerd setup converted from Docker's")
			if err != nil {
				return nil, err
			}
			p.Containerd = append(p.Containerd, fc)
		}
	}
	if err := p.kubelet(in, node, out); err != nil {
		return nil, err
	}
	return p, nil
}

func change(fsys fs.FS, path string, data []byte, perm os.FileMode, why string) (FileChange, error) {
	old, err := fs.ReadFile(fsys, nodefiles.Rel(path))
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return FileChange{}, fmt.Errorf("read %s: %w", path, err)
	}
	if existed {
		if st, err := fs.Stat(fsys, nodefiles.Rel(path)); err == nil {
			perm = st.Mode().Perm()
		}
	}
	return FileChange{Path: path, Old: old, Existed: existed, New: data, Perm: perm, Why: why}, nil
}

// kubelet plans the kubelet's side: where the runtime endpoint goes depends
// on what the node's kubeadm reads (research: migration.md 1.3).
//   - instance-config.yaml exists (kubeadm 1.32+, NodeLocalCRISocket): the
//     endpoint goes there, and kubeadm no longer uses the annotation;
//   - else the endpoint is a flag in kubeadm-flags.env (kubeadm rewrites that
//     file from the annotation on upgrade, so the annotation changes too);
//     kubelets before 1.24 also need --container-runtime=remote, and
//     --container-runtime is gone from 1.27 on;
//   - flags the kubelet's version no longer accepts are removed;
//   - other settings (log rotation, cgroup driver) go to config.yaml.
func (p *Plan) kubelet(in Input, node *nodefiles.Node, out *nodeconf.Output) error {
	kv := in.KubeletVersion
	edits := map[string][]nodeconf.FlagEdit{} // file → edits
	var files []string
	add := func(file string, e nodeconf.FlagEdit) {
		if _, ok := edits[file]; !ok {
			files = append(files, file)
		}
		edits[file] = append(edits[file], e)
	}
	for _, r := range out.KubeletFlags.Remove {
		name := strings.TrimLeft(r.Flag, "-")
		if name == "container-runtime-endpoint" || name == "container-runtime" {
			continue // decided below
		}
		add(r.File, nodeconf.FlagEdit{Name: name, Remove: true})
	}
	// Where the kubelet's flags are today.
	flagFile := map[string]string{}
	for _, f := range node.Input.KubeletFlags {
		flagFile[f.Name] = f.File
	}
	endpointFile := KubeadmFlagsFile
	if f, ok := flagFile["container-runtime-endpoint"]; ok {
		endpointFile = f
	}
	_, instanceErr := fs.Stat(in.FS, nodefiles.Rel(InstanceConfigFile))
	useInstance := instanceErr == nil
	if useInstance {
		if f, ok := flagFile["container-runtime-endpoint"]; ok {
			add(f, nodeconf.FlagEdit{Name: "container-runtime-endpoint", Remove: true})
		}
		data, err := fs.ReadFile(in.FS, nodefiles.Rel(InstanceConfigFile))
		if err != nil {
			return fmt.Errorf("read %s: %w", InstanceConfigFile, err)
		}
		nd, err := nodeconf.SetYAMLFields(InstanceConfigFile, data, [][2]any{{"containerRuntimeEndpoint", p.Endpoint}})
		if err != nil {
			return err
		}
		fc, err := change(in.FS, InstanceConfigFile, nd, 0o644, "kubeadm 1.32+ keeps the node's CRI socket here (NodeLocalCRISocket)")
		if err != nil {
			return err
		}
		p.Kubelet = append(p.Kubelet, fc)
		p.Notes = append(p.Notes, "kubeadm reads the CRI socket from "+InstanceConfigFile+"; the annotation is left as it is")
	} else {
		add(endpointFile, nodeconf.FlagEdit{Name: "container-runtime-endpoint", Value: p.Endpoint})
		if in.CRISocket != "" || kv.LessThan(version.MustParseGeneric("1.32")) {
			p.Annotation = p.Endpoint
		}
	}
	if kv.LessThan(version.MustParseGeneric("1.24")) {
		f := KubeadmFlagsFile
		if ff, ok := flagFile["container-runtime"]; ok {
			f = ff
		}
		add(f, nodeconf.FlagEdit{Name: "container-runtime", Value: "remote"})
	} else if f, ok := flagFile["container-runtime"]; ok && kv.AtLeast(version.MajorMinor(1, 27)) {
		add(f, nodeconf.FlagEdit{Name: "container-runtime", Remove: true})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i] == KubeadmFlagsFile && files[j] != KubeadmFlagsFile })
	for _, file := range files {
		data, err := fs.ReadFile(in.FS, nodefiles.Rel(file))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read %s: %w", file, err)
		}
		variable := kubeadmFlagsVar
		if file != KubeadmFlagsFile {
			variable = "KUBELET_EXTRA_ARGS"
		}
		nd, err := nodeconf.EditFlagsVar(file, data, variable, edits[file])
		if err != nil {
			return err
		}
		fc, err := change(in.FS, file, nd, 0o644, "kubelet flags for "+p.Target+" on kubelet "+kv.String())
		if err != nil {
			return err
		}
		if fc.Changed() {
			p.Kubelet = append(p.Kubelet, fc)
		}
	}

	// KubeletConfiguration: log rotation and the cgroup driver, when they differ.
	if p.Target == Containerd && node.Input.KubeletConfig != nil {
		kc := node.Input.KubeletConfig
		var fields [][2]any
		if v, ok := out.Kubelet["containerLogMaxSize"].(string); ok && v != kc.ContainerLogMaxSize {
			fields = append(fields, [2]any{"containerLogMaxSize", v})
		}
		if v, ok := out.Kubelet["containerLogMaxFiles"]; ok && fmt.Sprint(v) != fmt.Sprint(kc.ContainerLogMaxFiles) {
			fields = append(fields, [2]any{"containerLogMaxFiles", v})
		}
		if v, ok := out.Kubelet["cgroupDriver"].(string); ok && v != kc.CgroupDriver {
			fields = append(fields, [2]any{"cgroupDriver", v})
		}
		if len(fields) > 0 {
			data, err := fs.ReadFile(in.FS, nodefiles.Rel(kc.File))
			if err != nil {
				return fmt.Errorf("read %s: %w", kc.File, err)
			}
			nd, err := nodeconf.SetYAMLFields(kc.File, data, fields)
			if err != nil {
				return err
			}
			fc, err := change(in.FS, kc.File, nd, 0o644, "log rotation and cgroup driver move from Docker to the kubelet")
			if err != nil {
				return err
			}
			p.Kubelet = append(p.Kubelet, fc)
			p.Notes = append(p.Notes, "kubeadm upgrade rewrites "+kc.File+" from the kubelet-config ConfigMap: carry "+fieldNames(fields)+" there too")
		}
	}
	return nil
}

func fieldNames(fields [][2]any) string {
	var s []string
	for _, f := range fields {
		s = append(s, fmt.Sprint(f[0]))
	}
	return strings.Join(s, ", ")
}
