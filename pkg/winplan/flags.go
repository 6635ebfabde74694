package winplan

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/nodeconf"
)

// dropFlags returns the kubelet flags that must not survive the switch to
// containerd, with the reason for each: the runtime flags (set again below),
// the dockershim-only flags, and every flag the kubelet version no longer
// accepts (nodeconf's table).
func dropFlags(kubelet *version.Version) map[string]string {
	drop := map[string]string{
		"container-runtime":          "replaced: the runtime is set again for containerd",
		"container-runtime-endpoint": "replaced: containerd's named pipe",
	}
	for _, f := range nodeconf.RemovedKubeletFlags() {
		if nodeconf.DockershimFlags[f.Name] || kubelet.AtLeast(f.Removed) {
			if _, ok := drop[f.Name]; !ok {
				drop[f.Name] = f.Reason
			}
		}
	}
	for name := range nodeconf.DockershimFlags {
		if _, ok := drop[name]; !ok {
			drop[name] = "dockershim-only flag"
		}
	}
	return drop
}

// runtimeFlags are the flags that point the kubelet at containerd:
// --container-runtime=remote only where the kubelet still accepts it (< 1.27).
func runtimeFlags(kubelet *version.Version) []string {
	var fs []string
	if kubelet.LessThan(version.MustParseGeneric("1.27")) {
		fs = append(fs, "--container-runtime=remote")
	}
	return append(fs, "--container-runtime-endpoint="+Endpoint)
}

// kubeletArgs rewrites the current KUBELET_KUBEADM_ARGS for containerd: flags
// in dropFlags go, --pod-infra-container-image (where the kubelet still takes
// it) is set to the sandbox image so the kubelet's image GC and containerd
// agree, everything else is kept in order, and runtimeFlags are appended.
// notes says what changed.
func kubeletArgs(kubelet *version.Version, sandbox string, cur []nodeconf.KubeletFlag) (args, notes []string, err error) {
	drop := dropFlags(kubelet)
	for _, f := range cur {
		if f.Var != "" && f.Var != "KUBELET_KUBEADM_ARGS" {
			return nil, nil, fmt.Errorf("kubelet flag --%s comes from %s: only KUBELET_KUBEADM_ARGS is rewritten", f.Name, f.Var)
		}
		if err := checkText("kubelet flag name", f.Name); err != nil {
			return nil, nil, err
		}
		if err := checkText("value of --"+f.Name, f.Value); err != nil {
			return nil, nil, err
		}
		if strings.ContainsAny(f.Name+f.Value, " \t\"'") {
			return nil, nil, fmt.Errorf("kubelet flag --%s=%s: blanks or quotes cannot be written to kubeadm-flags.env", f.Name, f.Value)
		}
		if why, ok := drop[f.Name]; ok {
			notes = append(notes, fmt.Sprintf("drop %s: %s", flagText(f), why))
			continue
		}
		if f.Name == "pod-infra-container-image" && f.Value != sandbox {
			notes = append(notes, fmt.Sprintf("set --pod-infra-container-image=%s (was %s): same image as containerd's sandbox", sandbox, f.Value))
			f.Value, f.HasValue = sandbox, true
		}
		args = append(args, flagText(f))
	}
	rt := runtimeFlags(kubelet)
	for _, a := range rt {
		notes = append(notes, "add "+a)
	}
	return append(args, rt...), notes, nil
}

func flagText(f nodeconf.KubeletFlag) string {
	if !f.HasValue {
		return "--" + f.Name
	}
	return "--" + f.Name + "=" + f.Value
}
