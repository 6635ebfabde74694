package cmd

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeFlags are kubectl's connection flags (--kubeconfig, --context, -n,
// --as, --request-timeout, ...), bound with client-go's clientcmd, the same
// code kubectl's flags end in.
//
// cli-runtime's genericclioptions.ConfigFlags would bind the same flags, but
// that package also carries the resource builder and with it kustomize, which
// imports Go's plugin package: the binary doubles in size, exports every
// symbol, and its mapped text alone pushed `unshim check`'s peak RSS to
// ~95 MB. clientcmd gives the identical flags at a third of that.
type KubeFlags struct {
	kubeconfig string
	overrides  clientcmd.ConfigOverrides
}

// NewKubeFlags returns unbound connection flags.
func NewKubeFlags() *KubeFlags { return &KubeFlags{} }

// AddFlags binds the flags to fs.
func (k *KubeFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, clientcmd.RecommendedConfigPathFlag, "", "Path to the kubeconfig file to use for CLI requests.")
	clientcmd.BindOverrideFlags(&k.overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
}

// ClientConfig returns the kubeconfig as the flags and $KUBECONFIG select it.
func (k *KubeFlags) ClientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &k.overrides)
}

// ToRESTConfig returns the client configuration.
func (k *KubeFlags) ToRESTConfig() (*rest.Config, error) {
	cfg, err := k.ClientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

// Namespace returns the namespace of -n, else of the current context, else "default".
func (k *KubeFlags) Namespace() (string, error) {
	ns, _, err := k.ClientConfig().Namespace()
	if err != nil {
		return "", fmt.Errorf("load kubeconfig: %w", err)
	}
	return ns, nil
}
