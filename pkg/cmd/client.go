package cmd

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// RESTConfig turns kubectl's connection flags into a client configuration.
// Lists go as protobuf, which the apiserver encodes and unshim decodes
// several times faster than JSON.
func RESTConfig(kube *KubeFlags) (*rest.Config, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cfg.UserAgent = "unshim"
	return cfg, nil
}

// Clientset returns a clientset built from kubectl's connection flags.
func Clientset(kube *KubeFlags) (kubernetes.Interface, error) {
	cfg, err := RESTConfig(kube)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return c, nil
}

// Dynamic returns a dynamic client built from kubectl's connection flags
// (JSON on the wire: custom resources have no protobuf encoding).
func Dynamic(kube *KubeFlags) (dynamic.Interface, error) {
	cfg, err := RESTConfig(kube)
	if err != nil {
		return nil, err
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	return c, nil
}

// Clients are the clients a command that reads and writes the cluster
// needs, built once from kubectl's connection flags.
type Clients struct {
	REST    *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
}

// NewClients builds Clients from kubectl's connection flags.
func NewClients(kube *KubeFlags) (*Clients, error) {
	return NewClientsWithLimit(kube, 0, 0)
}

// NewClientsWithLimit is NewClients with the client-side rate limit qps and
// burst instead of the CLI's 50 and 100 (0: those).
func NewClientsWithLimit(kube *KubeFlags, qps float32, burst int) (*Clients, error) {
	cfg, err := RESTConfig(kube)
	if err != nil {
		return nil, err
	}
	if qps > 0 {
		cfg.QPS, cfg.Burst = qps, burst
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	return &Clients{REST: cfg, Kube: kc, Dynamic: dyn}, nil
}
