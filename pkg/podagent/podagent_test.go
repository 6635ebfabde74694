package podagent

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestPodSpec(t *testing.T) {
	o := Options{Node: "node-1", Image: "unshim:v1", Unit: "unshim-migrate", Argv: []string{"unshim", "node", "migrate"}}
	p := PodSpec(o)
	s := p.Spec
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"name", p.Name, "unshim-agent-node-1"},
		{"namespace", p.Namespace, DefaultNamespace},
		{"labels", p.Labels, map[string]string{NameLabel: NameLabelValue, NodeLabel: "node-1"}},
		{"node name", s.NodeName, "node-1"},
		{"hostPID", s.HostPID, true},
		{"restart policy", s.RestartPolicy, corev1.RestartPolicyNever},
		{"no token automount", s.AutomountServiceAccountToken != nil && !*s.AutomountServiceAccountToken, true},
		{"tolerates every taint", s.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
		{"one container", len(s.Containers), 1},
		{"image", s.Containers[0].Image, "unshim:v1"},
		{"pull policy", s.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent},
		{"privileged", s.Containers[0].SecurityContext != nil && s.Containers[0].SecurityContext.Privileged != nil && *s.Containers[0].SecurityContext.Privileged, true},
		{"command", s.Containers[0].Command, []string{"/unshim", "node", "handoff", "--unit", "unshim-migrate", "--copy-to", DefaultCopyTo, "--delay", "10s", "--", "unshim", "node", "migrate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}

	t.Run("host paths mounted at the same paths", func(t *testing.T) {
		mounts := map[string]string{}
		for _, m := range s.Containers[0].VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		want := map[string]corev1.HostPathType{"/run/systemd": corev1.HostPathDirectory, "/var/lib/unshim": corev1.HostPathDirectoryOrCreate}
		if len(s.Volumes) != len(want) {
			t.Fatalf("volumes %v; want %v", s.Volumes, want)
		}
		for _, v := range s.Volumes {
			hp := v.HostPath
			if hp == nil || hp.Type == nil {
				t.Fatalf("volume %s is no typed hostPath", v.Name)
			}
			if wt, ok := want[hp.Path]; !ok || *hp.Type != wt || mounts[v.Name] != hp.Path {
				t.Errorf("volume %s: hostPath %s (%s) mounted at %q", v.Name, hp.Path, *hp.Type, mounts[v.Name])
			}
		}
	})
}

func TestPodName(t *testing.T) {
	long := strings.Repeat("n", 70)
	tests := []struct {
		description string
		node        string
		want        string // empty: only check validity
	}{
		{"short", "worker-1", "unshim-agent-worker-1"},
		{"63+ characters", long, ""},
		{"long with a differing tail", long + "x", ""},
		{"dotted (a DNS subdomain)", "ip-10-0-0-1.ec2.internal", ""},
		{"upper case", "Worker-1", ""},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			got := PodName(tt.node)
			if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
				t.Fatalf("PodName(%q) = %q: %v", tt.node, got, errs)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("PodName(%q) = %q; want %q", tt.node, got, tt.want)
			}
			if !strings.HasPrefix(got, "unshim-agent-") {
				t.Errorf("PodName(%q) = %q; want the unshim-agent- prefix", tt.node, got)
			}
			if other, ok := seen[got]; ok {
				t.Errorf("nodes %q and %q share the name %q", tt.node, other, got)
			}
			seen[got] = tt.node
			if v := PodSpec(Options{Node: tt.node}).Labels[NodeLabel]; len(validation.IsValidLabelValue(v)) > 0 {
				t.Errorf("node label %q is no valid label value", v)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Options{Node: "n", Image: "i", Unit: "u", Argv: []string{"/bin/true"}}
	tests := []struct {
		description string
		change      func(*Options)
		wantErr     string
	}{
		{"complete", func(*Options) {}, ""},
		{"no node", func(o *Options) { o.Node = "" }, "node"},
		{"no command", func(o *Options) { o.Argv = nil }, "no command"},
		{"copy outside the shared directory", func(o *Options) { o.CopyTo = "/usr/local/bin/unshim" }, "not under /var/lib/unshim"},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			o := ok
			tt.change(&o)
			err := o.Validate()
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v; want %q", err, tt.wantErr)
			}
		})
	}
}
