package lab

import (
	"encoding/json"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// DockershimSocket is the CRI socket kubeadm records for a Docker node.
const DockershimSocket = "/var/run/dockershim.sock"

// Paths of the kubeadm-style files on a lab node.
const (
	KubeletUnitPath      = "/lib/systemd/system/kubelet.service"
	KubeletDropInPath    = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
	KubeadmFlagsPath     = "/var/lib/kubelet/kubeadm-flags.env"
	KubeletConfigPath    = "/var/lib/kubelet/config.yaml"
	KubeletKubeconfig    = "/etc/kubernetes/kubelet.conf"
	KubeletDefaultsPath  = "/etc/default/kubelet"
	NodeCACertPath       = "/etc/kubernetes/pki/ca.crt"
	DockerDaemonJSONPath = "/etc/docker/daemon.json"
	CNIConfigPath        = "/etc/cni/net.d/10-unshim-lab.conflist"
	// RuntimeWrapperPath is the runtime wrapper on nodes that lack CAP_SYS_RESOURCE.
	RuntimeWrapperPath = "/usr/local/bin/unshim-lab-runc"
	// RuntimeWrapperName is the wrapper's name in daemon.json's runtimes.
	RuntimeWrapperName = "unshim-lab-runc"
)

// nodeConfig is what a lab node's files are made from.
type nodeConfig struct {
	Name        string
	NodeIP      string
	KubeletPort int
	HealthzPort int
	PodCIDR     string
	// RuntimeWrapper registers RuntimeWrapperPath as Docker's default runtime.
	RuntimeWrapper bool
	// Shape is ShapeDockershim or ShapeCRIDockerd.
	Shape string
	// KubeletVersion is the node's kubelet, "v1.MINOR.PATCH".
	KubeletVersion string
}

// kubeletUnit is the kubelet.service of Kubernetes' deb packages.
const kubeletUnit = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/home/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

// kubeletDropIn is kubeadm's 10-kubeadm.conf of the v1.23 packages.
const kubeletDropIn = `# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

// kubeadmFlags is the node's kubeadm-flags.env:
//   - dockershim: kubeadm 1.23's for a Docker node (flags sorted as kubeadm
//     writes them), with the runtime named explicitly;
//   - cri-dockerd on kubelet 1.23: that file after the Kubernetes docs'
//     "Migrate Docker Engine nodes from dockershim to cri-dockerd" (the
//     endpoint added, --container-runtime=remote), as `unshim migrate node
//     --to cri-dockerd` writes it;
//   - cri-dockerd on kubelet 1.24+: what kubeadm of that release writes (no
//     --container-runtime, gone from 1.27; no dockershim networking flags).
func (c nodeConfig) kubeadmFlags() []byte {
	var flags string
	switch {
	case c.Shape != ShapeCRIDockerd:
		flags = "--container-runtime=docker --network-plugin=cni --pod-infra-container-image=" + PauseImage
	case kubeletMinor(c.KubeletVersion) < 24:
		flags = "--container-runtime=remote --network-plugin=cni --pod-infra-container-image=" + PauseImage + " --container-runtime-endpoint=" + CRIDockerdEndpoint
	default:
		flags = "--container-runtime-endpoint=" + CRIDockerdEndpoint + " --pod-infra-container-image=" + PauseImage
	}
	return []byte(fmt.Sprintf("KUBELET_KUBEADM_ARGS=\"%s\"\n", flags))
}

// criSocket is the node's kubeadm.alpha.kubernetes.io/cri-socket annotation.
func (c nodeConfig) criSocket() string {
	if c.Shape == ShapeCRIDockerd {
		return CRIDockerdEndpoint
	}
	return DockershimSocket
}

// kubeletDefaults holds what only the lab needs: its name and address, as
// KUBELET_EXTRA_ARGS (where kubeadm's users put node-specific flags).
func (c nodeConfig) kubeletDefaults() []byte {
	return []byte(fmt.Sprintf("KUBELET_EXTRA_ARGS=\"--hostname-override=%s --node-ip=%s\"\n", c.Name, c.NodeIP))
}

// kubeletConfig is the node's KubeletConfiguration. The lab's nodes share the
// host's network, so each has its own ports; their cgroup v2 has no
// controllers, so there are no QoS cgroups and nothing to enforce.
func (c nodeConfig) kubeletConfig() ([]byte, error) {
	cfg := map[string]any{
		"apiVersion":         "kubelet.config.k8s.io/v1beta1",
		"kind":               "KubeletConfiguration",
		"address":            c.NodeIP,
		"port":               c.KubeletPort,
		"readOnlyPort":       0,
		"healthzBindAddress": "127.0.0.1",
		"healthzPort":        c.HealthzPort,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": false},
			"x509":      map[string]any{"clientCAFile": NodeCACertPath},
		},
		"authorization":               map[string]any{"mode": "AlwaysAllow"},
		"cgroupDriver":                "systemd",
		"cgroupsPerQOS":               false,
		"enforceNodeAllocatable":      []string{},
		"failSwapOn":                  false,
		"clusterDomain":               "cluster.local",
		"clusterDNS":                  []string{"10.96.0.10"},
		"rotateCertificates":          false,
		"serializeImagePulls":         false,
		"staticPodPath":               "/etc/kubernetes/manifests",
		"imageGCHighThresholdPercent": 100,
		"evictionHard": map[string]string{
			"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%",
		},
		"volumeStatsAggPeriod": "0s",
	}
	return yaml.Marshal(cfg)
}

// daemonJSON is Docker's configuration on the node: systemd cgroups as on
// cgroup v2, and no bridge or iptables rules, since every lab node shares the
// host's network (pods get theirs from CNI). Where CAP_SYS_RESOURCE is
// missing, the runtime wrapper is the default runtime.
func (c nodeConfig) daemonJSON() ([]byte, error) {
	cfg := map[string]any{
		"exec-opts":  []string{"native.cgroupdriver=systemd"},
		"bridge":     "none",
		"iptables":   false,
		"log-driver": "json-file",
		"log-opts":   map[string]string{"max-size": "10m", "max-file": "3"},
	}
	if c.RuntimeWrapper {
		cfg["default-runtime"] = RuntimeWrapperName
		cfg["runtimes"] = map[string]any{RuntimeWrapperName: map[string]string{"path": RuntimeWrapperPath}}
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// cniConfig gives pods an address from the node's own range through
// point-to-point links: nothing is shared between nodes on the host network.
func (c nodeConfig) cniConfig() ([]byte, error) {
	cfg := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "unshim-lab",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": c.PodCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
		},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// kubeletKubeconfig is the kubelet's kubeconfig, its client certificate inline,
// as kubeadm writes /etc/kubernetes/kubelet.conf.
func kubeletKubeconfig(server string, ca, crt, key []byte) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["unshim-lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["system:node"] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["system:node@unshim-lab"] = &clientcmdapi.Context{Cluster: "unshim-lab", AuthInfo: "system:node"}
	cfg.CurrentContext = "system:node@unshim-lab"
	return clientcmd.Write(*cfg)
}
