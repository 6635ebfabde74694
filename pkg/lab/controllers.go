package lab

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/unshim/unshim/pkg/log"
)

// startControllers starts kube-controller-manager and kube-scheduler against
// the lab's apiserver, each with a client certificate of its own, so that
// Deployments get ReplicaSets and Pods, Pods get nodes, PDBs get their
// status and namespaces their default ServiceAccount, as in a real cluster.
func (l *Lab) startControllers(ctx context.Context, o Options, p *pki) error {
	cm, err := EnsureKubeBinary(ctx, o.Logger, "kube-controller-manager", o.KubeVersion)
	if err != nil {
		return err
	}
	sched, err := EnsureKubeBinary(ctx, o.Logger, "kube-scheduler", o.KubeVersion)
	if err != nil {
		return err
	}
	if err := p.issue("controller-manager", "system:kube-controller-manager", nil, false, nil, nil); err != nil {
		return err
	}
	if err := p.issue("scheduler", "system:kube-scheduler", nil, false, nil, nil); err != nil {
		return err
	}
	cmConfig := filepath.Join(l.Dir, "controller-manager.kubeconfig")
	if err := l.writeKubeconfigFor(p, cmConfig, "controller-manager", ""); err != nil {
		return err
	}
	schedConfig := filepath.Join(l.Dir, "scheduler.kubeconfig")
	if err := l.writeKubeconfigFor(p, schedConfig, "scheduler", ""); err != nil {
		return err
	}
	o.Logger.V(0).Infof("starting kube-controller-manager and kube-scheduler %s", o.KubeVersion)
	if err := l.start("kube-controller-manager", cm,
		"--kubeconfig="+cmConfig,
		"--authentication-kubeconfig="+cmConfig, "--authorization-kubeconfig="+cmConfig,
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--service-account-private-key-file="+p.path("sa.key"),
		"--root-ca-file="+p.path("ca.crt"),
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--controllers=*",
	); err != nil {
		return err
	}
	if err := l.start("kube-scheduler", sched,
		"--kubeconfig="+schedConfig,
		"--authentication-kubeconfig="+schedConfig, "--authorization-kubeconfig="+schedConfig,
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--leader-elect=false",
	); err != nil {
		return err
	}
	l.Controllers = true
	return nil
}

// errControllers wraps a failure to start the controllers.
func errControllers(err error) error { return fmt.Errorf("start controllers: %w", err) }

// Prepare builds into the cache everything a lab can run: the control plane
// and controllers of kubeVersion (DefaultKubeVersion when empty), containerd
// 2.x, and what nodes are made from.
func Prepare(ctx context.Context, logger log.Logger, kubeVersion string) error {
	if logger == nil {
		logger = log.NoopLogger()
	}
	if kubeVersion == "" {
		kubeVersion = DefaultKubeVersion
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if _, err := EnsureKubeBinary(ctx, logger, c, kubeVersion); err != nil {
			return err
		}
	}
	if _, err := EnsureContainerd(ctx, logger, DefaultContainerdVersion); err != nil {
		return err
	}
	return PrepareNodes(ctx, logger)
}
