package phases

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/transport"
)

type runData struct {
	node string
	j    *journal.Journal
	st   *journal.Store
}

func (d *runData) Node() string                   { return d.node }
func (d *runData) Journal() *journal.Journal      { return d.j }
func (d *runData) Store() *journal.Store          { return d.st }
func (d *runData) Transport() transport.Transport { return d.st.T }
func (d *runData) DryRun() bool                   { return false }

var _ migrate.Data = (*runData)(nil)

const (
	flagsFile      = "/var/lib/kubelet/kubeadm-flags.env"
	containerdConf = "/etc/containerd/config.toml"
)

// TestFailedSwitchRollsBackToDocker runs the first phases of a switch on a
// real lab node (Docker, kubelet 1.23, systemd) and then fails, as when
// containerd does not start: the rollback must bring back the kubelet
// on Docker, with every changed file byte-identical.
func TestFailedSwitchRollsBackToDocker(t *testing.T) {
	labtest.RequireNodePrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := labtest.UpForTest(ctx, t, "phasetest", lab.Options{Nodes: 1})
	n := l.Nodes[0]
	tr := n.Transport()
	st := &journal.Store{T: tr}
	d := &runData{node: n.Name, j: journal.New(n.Name, "containerd"), st: st}

	origFlags, err := tr.ReadFile(ctx, flagsFile)
	if err != nil {
		t.Fatal(err)
	}
	_, confErr := tr.ReadFile(ctx, containerdConf)
	confExisted := confErr == nil

	rewrite := migrate.Phase{
		Name: "write-config", Short: "point the kubelet at containerd",
		Run: func(ctx context.Context, d migrate.Data) error {
			if err := migrate.WriteFile(ctx, d, flagsFile, []byte("KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n"), 0o600); err != nil {
				return err
			}
			return migrate.WriteFile(ctx, d, containerdConf, []byte("version = 2\n"), 0o600)
		},
		// No Rollback: the runner undoes the recorded writes.
	}
	var stoppedBeforeFailure bool
	fail := migrate.Phase{
		Name: "start-containerd", Short: "start containerd (made to fail)",
		Run: func(ctx context.Context, d migrate.Data) error {
			docker, _ := d.Transport().Run(ctx, "systemctl", "is-active", "docker.service")
			kubelet, _ := d.Transport().Run(ctx, "systemctl", "is-active", "kubelet.service")
			stoppedBeforeFailure = strings.TrimSpace(string(docker)) != "active" && strings.TrimSpace(string(kubelet)) != "active"
			return errors.New("containerd did not start")
		},
	}
	r := &migrate.Runner{Logger: log.NoopLogger(), Phases: []migrate.Phase{
		NewBackupPhase(flagsFile, containerdConf), NewStopKubeletPhase(), NewStopDockerPhase(), rewrite, fail,
	}}
	rolledBackAt := time.Now()
	err = r.Run(ctx, d)
	var pe *migrate.PhaseError
	if !errors.As(err, &pe) || pe.Phase != "start-containerd" || !pe.RolledBack {
		t.Fatalf("run: %v; want a rolled-back failure of start-containerd", err)
	}
	if !stoppedBeforeFailure {
		t.Fatal("docker and the kubelet were still active when the failing phase ran: the stop phases did nothing")
	}

	// Files byte for byte.
	if got, err := tr.ReadFile(ctx, flagsFile); err != nil || !bytes.Equal(got, origFlags) {
		t.Errorf("%s after rollback: %q, %v; want %q", flagsFile, got, err, origFlags)
	}
	if _, err := tr.ReadFile(ctx, containerdConf); (err == nil) != confExisted {
		t.Errorf("%s existed before: %v; after rollback: %v", containerdConf, confExisted, err)
	}
	// Services as they were.
	for _, u := range []string{"docker.service", "docker.socket", "kubelet.service"} {
		enabled, active, err := unitState(ctx, tr, u)
		if err != nil || active != "active" || (u != "kubelet.service" && enabled != "enabled") {
			t.Errorf("%s after rollback: enabled=%s active=%s %v", u, enabled, active, err)
		}
	}
	// The kubelet is back on Docker: it renews its node lease again and reports docker://.
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		lease, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, n.Name, metav1.GetOptions{})
		node, nerr := c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err == nil && nerr == nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(rolledBackAt) &&
			strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "docker://") && ready(node.Status.Conditions) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubelet not back on Docker after rollback: lease %v (%v), node %v", lease, err, nerr)
		}
		time.Sleep(time.Second)
	}
	j, err := st.Load(ctx, n.Name)
	if err != nil || j == nil || !j.RolledBack {
		t.Errorf("journal on the node: %+v, %v", j, err)
	}
}

func ready(conds []corev1.NodeCondition) bool {
	for _, c := range conds {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
