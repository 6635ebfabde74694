package phases

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodeplan"
)

// Data is what the switch's phases need beyond migrate.Data. The command
// builds it once; phases only read it.
type Data interface {
	migrate.Data
	Client() kubernetes.Interface
	// RESTConfig reaches the same cluster, for exec.
	RESTConfig() *rest.Config
	// Plan is the switch worked out from the node's files before any change.
	Plan() *nodeplan.Plan
	// FilesRoot is a local directory where the node's configuration files
	// can be read: its root through the transport, or a copy of them.
	FilesRoot() string
	Settings() *Settings
	Logger() log.Logger
	// Reads keeps the node and its pods as the run first read them.
	Reads() *Reads
}

// Settings are the operator's choices for one switch. They are one
// serialisable value: the agent pod hands them to the node as a file.
type Settings struct {
	Target string `json:"target"`
	// KubeletVersion is the node's, read from its Node by the switch.
	KubeletVersion *version.Version `json:"-"`
	// Allow lists preflight rule IDs not to treat as blockers.
	Allow []string `json:"allow,omitempty"`
	// Force evicts pods without a controller too; by default they stay on
	// the node and restart on the new runtime, as after a reboot.
	Force bool `json:"force,omitempty"`
	// DeleteEmptyDirData lets drain evict pods with emptyDir volumes.
	DeleteEmptyDirData bool          `json:"deleteEmptyDirData,omitempty"`
	DrainTimeout       time.Duration `json:"drainTimeout"`
	VerifyTimeout      time.Duration `json:"verifyTimeout"`
	// InstallCommand installs containerd when it is missing (argv); nil
	// picks apt-get, dnf or yum, whichever the node has.
	InstallCommand []string `json:"installCommand,omitempty"`
	// CRIDockerdPackage is cri-dockerd's .deb, .rpm or binary, a file where
	// the switch runs (with --via pod: on the node); empty uses the
	// cri-dockerd the node has.
	CRIDockerdPackage string `json:"criDockerdPackage,omitempty"`
	// Progress receives detail lines (drain evictions); may be nil.
	Progress io.Writer `json:"-"`
}

func data(d migrate.Data) (Data, error) {
	pd, ok := d.(Data)
	if !ok {
		return nil, fmt.Errorf("phase run with %T, which is not phases.Data", d)
	}
	return pd, nil
}

// run wraps a phase function that needs Data.
func run(f func(ctx context.Context, d Data) error) func(context.Context, migrate.Data) error {
	return func(ctx context.Context, md migrate.Data) error {
		d, err := data(md)
		if err != nil {
			return err
		}
		return f(ctx, d)
	}
}

// plan wraps a plan function that needs Data.
func plan(f func(ctx context.Context, d Data) ([]string, error)) func(context.Context, migrate.Data) ([]string, error) {
	return func(ctx context.Context, md migrate.Data) ([]string, error) {
		d, err := data(md)
		if err != nil {
			return nil, err
		}
		return f(ctx, d)
	}
}

// Journal value keys shared by phases.
const (
	keyWasSchedulable = "node.schedulable"
	keyOldAnnotation  = "node.cri-socket"
	keyHadAnnotation  = "node.cri-socket.present"
	keySavedImages    = "images.saved"
	keyImageArchive   = "images.archive"
	keyContainerd     = "containerd.installed-by-unshim"
)

// toContainerd is the RunIf of the phases only a switch to containerd runs:
// with cri-dockerd, Docker keeps running and keeps its images.
func toContainerd(d migrate.Data) bool {
	pd, err := data(d)
	return err == nil && pd.Settings().Target == nodeplan.Containerd
}

// All returns the switch's phases in order, one list for every target:
// each phase's RunIf leaves out those a target does not run.
func All() []migrate.Phase {
	return []migrate.Phase{
		NewPreflightPhase(),
		NewRehearsePhase(),
		// Backups and the image archive are made before the cordon: they
		// change nothing, and the node keeps serving while they are made.
		NewPlanBackupPhase(),
		NewSaveImagesPhase(),
		NewCordonPhase(),
		NewDrainPhase(),
		NewStopKubeletPhase(),
		NewInstallCRIDockerdPhase(),
		NewStopCRIDockerdPhase(),
		NewStopDockerPhase(),
		NewInstallContainerdPhase(),
		NewWriteConfigPhase(),
		NewStartContainerdPhase(),
		NewImportImagesPhase(),
		NewReconfigureKubeletPhase(),
		NewKubeadmRecordPhase(),
		NewStartKubeletPhase(),
		NewVerifyPhase(),
		NewUncordonPhase(),
	}
}

// Names lists the phases of All that a switch to target runs.
func Names(target string) []string {
	d := targetOnly{s: Settings{Target: target}}
	var out []string
	for _, p := range All() {
		if p.Applies(d) {
			out = append(out, p.Name)
		}
	}
	return out
}

// targetOnly answers a RunIf for a target, before any run exists; RunIf
// reads only the settings.
type targetOnly struct {
	Data
	s Settings
}

func (t targetOnly) Settings() *Settings { return &t.s }
