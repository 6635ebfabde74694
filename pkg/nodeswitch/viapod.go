package nodeswitch

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/unshim/unshim/pkg/kubelist"
	"github.com/unshim/unshim/pkg/migrate/phases"
	"github.com/unshim/unshim/pkg/podagent"
)

// AgentServiceAccount is the ServiceAccount (deploy/rbac/unshim-agent.yaml)
// whose short-lived token the agent on the node uses.
const AgentServiceAccount = "unshim-agent"

// agentKubeconfig and agentSettings are where the agent's kubeconfig and the
// switch's settings land on the node.
const (
	agentKubeconfig = "/var/lib/unshim/agent/kubeconfig"
	agentSettings   = "/var/lib/unshim/agent/settings.json"
)

// PodOptions are a switch run from the cluster: a privileged agent pod on
// the node hands `unshim node migrate` to a transient systemd unit of the
// node, which survives Docker stopping; this side follows its progress in
// the node's annotations.
type PodOptions struct {
	Options
	// Image holds the unshim binary at /unshim; it must be on the node (in
	// Docker) or pullable.
	Image string
	// Namespace runs the agent pod and holds AgentServiceAccount.
	Namespace string
	// TokenTTL bounds the agent's token (and so how long the run may take).
	TokenTTL time.Duration
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Out receives the agent's log and the progress lines.
	Out io.Writer
}

// RunViaPod switches the node from an agent pod on it and waits for the
// result the agent records on the node.
func RunViaPod(ctx context.Context, o PodOptions) error {
	settings, err := RunSettings{Settings: o.Settings, NoRollback: o.NoRollback, ContainerdVersion: o.ContainerdVersion, SkipPhases: o.SkipPhases}.Encode()
	if err != nil {
		return err
	}
	// The settings travel as data, not rebuilt as flags.
	argv := []string{"unshim", "--kubeconfig", agentKubeconfig, "node", "migrate", o.Node, "--via", "local", "--settings", agentSettings}
	return viaPod(ctx, o, "unshim-migrate", argv, settings, func(r string) (bool, error) {
		if r == "succeeded" {
			fmt.Fprintf(o.Out, "node %s now runs on %s\n", o.Node, o.Settings.Target)
			return true, nil
		}
		return true, fmt.Errorf("the switch of %s on the node: %s", o.Node, r)
	})
}

// RollbackViaPod undoes the node's switch (unshim node rollback, from its
// journal) from an agent pod on it, as RunViaPod switches it, and waits for
// the result the agent records on the node.
func RollbackViaPod(ctx context.Context, o PodOptions) error {
	argv := []string{"unshim", "--kubeconfig", agentKubeconfig, "node", "rollback", o.Node, "--via", "local"}
	return viaPod(ctx, o, "unshim-rollback", argv, nil, func(r string) (bool, error) {
		if r == RolledBackOnDemand {
			fmt.Fprintf(o.Out, "node %s is back on Docker\n", o.Node)
			return true, nil
		}
		return true, fmt.Errorf("the rollback of %s on the node: %s", o.Node, r)
	})
}

// viaPod runs argv on the node in transient unit unit, from an agent pod,
// and follows the node's annotations until it records a result, which done
// judges.
func viaPod(ctx context.Context, o PodOptions, unit string, argv []string, settings []byte, done func(result string) (bool, error)) error {
	if o.Namespace == "" {
		o.Namespace = podagent.DefaultNamespace
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = time.Hour
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	c := o.Client
	node, err := c.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("node %s: %w", o.Node, err)
	}
	// The last run's result and phase are not this one's.
	if err := phases.AnnotateAll(ctx, c, o.Node, map[string]*string{ResultAnnotation: nil, PhaseAnnotation: nil}); err != nil {
		return err
	}
	kubeconfig, err := agentKubeconfigFor(ctx, o)
	if err != nil {
		return err
	}
	data := map[string][]byte{"kubeconfig": kubeconfig}
	copies := [][2]string{{"kubeconfig", agentKubeconfig}}
	if settings != nil {
		data["settings.json"] = settings
		copies = append(copies, [2]string{"settings.json", agentSettings})
	}
	secret := podagent.PodName(o.Node) // one per node, like the pod
	secrets := c.CoreV1().Secrets(o.Namespace)
	_ = secrets.Delete(ctx, secret, metav1.DeleteOptions{})
	if _, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secret, Labels: map[string]string{podagent.NameLabel: podagent.NameLabelValue}},
		Data:       data,
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("agent kubeconfig secret: %w", err)
	}
	// The token only leaves the cluster as the file on the node; the Secret
	// goes once the agent has copied it.
	defer func() {
		if err := secrets.Delete(context.WithoutCancel(ctx), secret, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			fmt.Fprintf(o.Out, "warning: delete secret %s/%s: %v\n", o.Namespace, secret, err)
		}
	}()
	fmt.Fprintf(o.Out, "starting the agent on %s (%s)\n", o.Node, node.Status.NodeInfo.ContainerRuntimeVersion)
	err = podagent.Run(ctx, c, podagent.Options{
		Node: o.Node, Namespace: o.Namespace, Image: o.Image, Unit: unit, Argv: argv,
		Secret: secret, Copies: copies,
	}, o.Out)
	if err != nil {
		return fmt.Errorf("agent on %s: %w", o.Node, err)
	}
	return follow(ctx, o, unit, done)
}

// follow prints the node's phase annotation as it changes, until the agent
// records a result (list, then watch, re-listing when the watch ends).
func follow(ctx context.Context, o PodOptions, unit string, judge func(result string) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	nodes := o.Client.CoreV1().Nodes()
	sel := fields.OneTermEqualSelector("metadata.name", o.Node).String()
	lw := kubelist.FieldListWatch(sel, nodes.List, nodes.Watch)
	last := ""
	var result error
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if !ok {
			return false, nil
		}
		done, err := report(o, n, &last, judge)
		result = err
		return done, nil
	})
	if wait.Interrupted(err) {
		return fmt.Errorf("node %s: no result from the agent after %s (last phase %q); see journalctl -u %s on the node", o.Node, o.Timeout, last, unit)
	}
	if err != nil {
		return fmt.Errorf("follow node %s: %w", o.Node, err)
	}
	return result
}

func report(o PodOptions, n *corev1.Node, last *string, judge func(result string) (bool, error)) (bool, error) {
	if p := n.Annotations[PhaseAnnotation]; p != "" && p != *last {
		fmt.Fprintf(o.Out, "[%s] %s\n", o.Node, p)
		*last = p
	}
	r := n.Annotations[ResultAnnotation]
	if r == "" {
		return false, nil
	}
	return judge(r)
}

// agentKubeconfigFor makes a kubeconfig for the agent: this side's server
// and CA, and a token of AgentServiceAccount that expires after TokenTTL.
func agentKubeconfigFor(ctx context.Context, o PodOptions) ([]byte, error) {
	secs := int64(o.TokenTTL / time.Second)
	tr, err := o.Client.CoreV1().ServiceAccounts(o.Namespace).CreateToken(ctx, AgentServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for %s/%s (apply deploy/rbac/unshim-agent.yaml): %w", o.Namespace, AgentServiceAccount, err)
	}
	rc := o.RESTConfig
	if rc == nil {
		return nil, fmt.Errorf("no REST config to give the agent the API server's address")
	}
	ca, err := caData(rc)
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: ca, TLSServerName: rc.TLSClientConfig.ServerName}
	cfg.AuthInfos["unshim-agent"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["unshim-agent"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "unshim-agent", Namespace: o.Namespace}
	cfg.CurrentContext = "unshim-agent"
	return clientcmd.Write(*cfg)
}

func caData(rc *rest.Config) ([]byte, error) {
	if len(rc.TLSClientConfig.CAData) > 0 {
		return rc.TLSClientConfig.CAData, nil
	}
	if rc.TLSClientConfig.CAFile != "" {
		data, err := os.ReadFile(rc.TLSClientConfig.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		return data, nil
	}
	if rc.TLSClientConfig.Insecure {
		return nil, fmt.Errorf("the connection skips TLS verification: the agent will not")
	}
	return nil, nil // the system's roots
}
