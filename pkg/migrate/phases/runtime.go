package phases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodepkg"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/report"
	"github.com/unshim/unshim/pkg/transport"
)

// NewPlanBackupPhase backs up every file the plan writes; rollback restores
// them all, byte for byte, and removes the ones that did not exist.
func NewPlanBackupPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "backup",
		Short: "Back up every file the switch changes",
		Run: run(func(ctx context.Context, d Data) error {
			if d.DryRun() {
				return nil
			}
			var need int64
			for _, f := range d.Plan().Files() {
				need += int64(len(f.Old))
			}
			if err := journal.EnsureFree(ctx, d.Transport(), path.Join(journal.DefaultDir, "backup"), need); err != nil {
				return fmt.Errorf("back up the node's files: %w", err)
			}
			for _, p := range d.Plan().Paths() {
				if err := d.Store().BackupFile(ctx, d.Journal(), p); err != nil {
					return err
				}
			}
			return nil
		}),
		// Nothing to undo: the backups are kept, and each file written later
		// is restored by the phase that wrote it.
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			var lines []string
			for _, p := range d.Plan().Paths() {
				lines = append(lines, "back up "+p+" to "+path.Join(journal.DefaultDir, "backup", d.Node(), strings.TrimPrefix(p, "/")))
			}
			return lines, nil
		}),
	}
}

// saveJournal keeps the journal's values on the node (not in a dry run).
func saveJournal(ctx context.Context, d migrate.Data) error {
	if d.DryRun() {
		return nil
	}
	return d.Store().Save(ctx, d.Journal())
}

// imageArchive is where saved images wait for containerd.
func imageArchive(node string) string {
	return path.Join(journal.DefaultDir, "images", node+".tar")
}

// neededImages lists the images of the pods that stay bound to the node
// through the drain (DaemonSet, static and kept pods: staysThroughDrain)
// and the sandbox image that Docker holds without a repo digest: containerd
// could not pull them back. It runs before the cordon, while the node still
// serves, and lists the node's pods afresh: a pod that came since the
// preflight must not lose its image.
func neededImages(ctx context.Context, d Data) ([]string, error) {
	pods, err := podsOnNode(ctx, d)
	if err != nil {
		return nil, err
	}
	force := d.Settings().Force
	refs := nodeImages(d, pods, func(p *corev1.Pod) bool { return !staysThroughDrain(p, force) })
	var out []string
	for _, ref := range refs {
		raw, err := d.Transport().Run(ctx, "docker", "image", "inspect", "--format", "{{json .RepoDigests}}", "--", ref)
		if err != nil {
			continue // not in Docker: containerd pulls it like Docker would have
		}
		var digests []string
		if json.Unmarshal([]byte(strings.TrimSpace(string(raw))), &digests) == nil && len(digests) == 0 {
			out = append(out, ref)
		}
	}
	return out, nil
}

// staysThroughDrain says whether the drain leaves pod on the node, as the
// drain phase's filters decide (drainHelper): DaemonSet pods and static
// (mirror) pods stay, and pods without a controller unless force. Worked
// out from the pod alone: the drain library's own GetPodsForDeletion GETs
// every DaemonSet pod's DaemonSet, a request for each on every call. (A
// DaemonSet pod whose DaemonSet is gone is deleted by the drain, and counts
// here as staying: its image is saved for nothing, never lost.)
func staysThroughDrain(p *corev1.Pod, force bool) bool {
	if p.Annotations[corev1.MirrorPodAnnotationKey] != "" {
		return true
	}
	ctl := metav1.GetControllerOf(p)
	if ctl != nil && ctl.Kind == "DaemonSet" {
		return true
	}
	return ctl == nil && !force
}

// nodeImages are the sandbox image and the images of pods that have not
// finished (but those skip names), each once, in that order.
func nodeImages(d Data, pods []corev1.Pod, skip func(*corev1.Pod) bool) []string {
	seen := map[string]bool{}
	var refs []string
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	add(d.Plan().SandboxImage)
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || (skip != nil && skip(p)) {
			continue
		}
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			add(c.Image)
		}
	}
	return refs
}

// imagesSize is what Docker says the images take, an upper bound of the
// archive `docker save` writes of them.
func imagesSize(ctx context.Context, d Data, refs []string) (int64, error) {
	var total int64
	for _, ref := range refs {
		out, err := d.Transport().Run(ctx, "docker", "image", "inspect", "--format", "{{.Size}}", "--", ref)
		if err != nil {
			return 0, fmt.Errorf("size of image %s: %w", ref, err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("size of image %s: docker said %q", ref, out)
		}
		total += n
	}
	return total, nil
}

// NewSaveImagesPhase saves, while Docker still runs, the images that only
// Docker has and that the node's remaining pods or the sandbox need.
func NewSaveImagesPhase() migrate.Phase {
	return migrate.Phase{
		RunIf: toContainerd,
		Name:  "save-images",
		Short: "Save the images only Docker has (docker save)",
		Run: run(func(ctx context.Context, d Data) error {
			refs, err := neededImages(ctx, d)
			if err != nil {
				return err
			}
			j := d.Journal()
			j.Values[keySavedImages] = strings.Join(refs, " ")
			if len(refs) == 0 {
				return saveJournal(ctx, d)
			}
			archive := imageArchive(d.Node())
			need, err := imagesSize(ctx, d, refs)
			if err != nil {
				return err
			}
			if !d.DryRun() {
				if err := journal.EnsureFree(ctx, d.Transport(), path.Dir(archive), need); err != nil {
					return fmt.Errorf("save the images only Docker has: %w", err)
				}
			}
			d.Logger().V(0).Infof("[save-images] docker save %s", strings.Join(refs, " "))
			if _, err := migrate.Exec(ctx, d, append([]string{"docker", "save", "-o", archive, "--"}, refs...), []string{"rm", "-f", "--", archive}); err != nil {
				return err
			}
			j.Values[keyImageArchive] = archive
			return saveJournal(ctx, d)
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			refs, err := neededImages(ctx, d)
			if err != nil {
				return nil, err
			}
			if len(refs) == 0 {
				return []string{"no image that only Docker has is needed"}, nil
			}
			return []string{"docker save -o " + imageArchive(d.Node()) + " " + strings.Join(refs, " ")}, nil
		}),
	}
}

// NewImportImagesPhase imports the saved images into containerd's k8s.io
// namespace, where the CRI looks for them, and checks each is there.
func NewImportImagesPhase() migrate.Phase {
	return migrate.Phase{
		RunIf: toContainerd,
		Name:  "import-images",
		Short: "Import the saved images into containerd (k8s.io namespace)",
		Run: run(func(ctx context.Context, d Data) error {
			archive := d.Journal().Values[keyImageArchive]
			if archive == "" {
				return nil
			}
			// Not undone: images in containerd's store harm nothing.
			if _, err := migrate.Exec(ctx, d, []string{"ctr", "-n", "k8s.io", "images", "import", archive}); err != nil || d.DryRun() {
				return err
			}
			out, err := d.Transport().Run(ctx, "ctr", "-n", "k8s.io", "images", "ls", "-q")
			if err != nil {
				return err
			}
			have := map[string]bool{}
			for _, l := range strings.Fields(string(out)) {
				have[l] = true
			}
			for _, ref := range strings.Fields(d.Journal().Values[keySavedImages]) {
				if !have[normalizeRef(ref)] {
					return fmt.Errorf("image %s (%s) not in containerd after import", ref, normalizeRef(ref))
				}
			}
			return nil
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			return []string{"ctr -n k8s.io images import " + imageArchive(d.Node())}, nil
		}),
	}
}

// normalizeRef spells a Docker image reference the way containerd does
// (docker.io/library/busybox:latest).
func normalizeRef(ref string) string {
	name, tag := ref, ""
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		name, tag = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i:]
	} else {
		tag = ":latest"
	}
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	return name + tag
}

// containerdBinaries are where packages put containerd.
var containerdBinaries = []string{"/usr/bin/containerd", "/usr/local/bin/containerd"}

// containerdBinary is where the node has containerd ("" when it has none).
func containerdBinary(ctx context.Context, t transport.Transport) string {
	for _, b := range containerdBinaries {
		if _, err := t.Run(ctx, "test", "-x", b); err == nil {
			return b
		}
	}
	return ""
}

func hasContainerd(ctx context.Context, t transport.Transport) bool {
	return containerdBinary(ctx, t) != ""
}

// installCommand picks the node's package manager.
func installCommand(ctx context.Context, d Data) ([]string, error) {
	if c := d.Settings().InstallCommand; len(c) > 0 {
		return c, nil
	}
	m, err := nodepkg.Detect(ctx, d.Transport())
	if errors.Is(err, nodepkg.ErrNoManager) {
		return nil, fmt.Errorf("containerd is missing and %w: install containerd first", err)
	}
	if err != nil {
		return nil, err
	}
	return m.Install("containerd"), nil
}

// NewInstallContainerdPhase installs containerd when the node lacks it.
// Docker's packages ship it, so on most Docker nodes this does nothing.
func NewInstallContainerdPhase() migrate.Phase {
	return migrate.Phase{
		RunIf: toContainerd,
		Name:  "install-containerd",
		Short: "Install containerd if it is missing",
		Run: run(func(ctx context.Context, d Data) error {
			if hasContainerd(ctx, d.Transport()) {
				return nil
			}
			argv, err := installCommand(ctx, d)
			if err != nil {
				return err
			}
			d.Journal().Values[keyContainerd] = "true"
			if err := saveJournal(ctx, d); err != nil {
				return err
			}
			// Not undone: containerd stays installed (Docker's packages depend on it).
			_, err = migrate.Exec(ctx, d, argv)
			return err
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			if hasContainerd(ctx, d.Transport()) {
				return []string{"containerd is installed: nothing to do"}, nil
			}
			argv, err := installCommand(ctx, d)
			if err != nil {
				return []string{err.Error()}, nil
			}
			return []string{strings.Join(argv, " ")}, nil
		}),
	}
}

func writeFiles(ctx context.Context, d Data, files []nodeplan.FileChange) error {
	for _, f := range files {
		if !f.Changed() {
			continue
		}
		if err := migrate.WriteFile(ctx, d, f.Path, f.New, f.Perm); err != nil {
			return err
		}
		d.Logger().V(1).Infof("wrote %s", f.Path)
	}
	return nil
}

// writtenDropIn says whether phase wrote (and has not yet undone) a systemd
// drop-in, according to the journal.
func writtenDropIn(d migrate.Data, phase string) bool {
	for _, s := range d.Journal().Steps {
		if s.Phase == phase && s.Kind == journal.StepWrite && !s.Undone && strings.Contains(s.Path, ".service.d/") {
			return true
		}
	}
	return false
}

// undoWrites restores the files phase wrote, from the journal, and reloads
// systemd when one of them was a drop-in.
func undoWrites(ctx context.Context, d migrate.Data, phase string) error {
	reload := writtenDropIn(d, phase)
	if err := migrate.Undo(ctx, d, phase); err != nil {
		return err
	}
	if reload {
		_, err := d.Transport().Run(ctx, "systemctl", "daemon-reload")
		return err
	}
	return nil
}

func planFiles(files []nodeplan.FileChange) ([]string, error) {
	var lines []string
	for _, f := range files {
		if !f.Changed() {
			lines = append(lines, f.Path+": unchanged")
			continue
		}
		var b strings.Builder
		a := f.Path
		if !f.Existed {
			a = "/dev/null"
		}
		if err := report.UnifiedDiff(&b, a, f.Path, f.Old, f.New); err != nil {
			return nil, err
		}
		lines = append(lines, "write "+f.Path+" ("+f.Why+")")
		lines = append(lines, strings.Split(strings.TrimRight(b.String(), "\n"), "\n")...)
	}
	return lines, nil
}

func hasDropIn(files []nodeplan.FileChange) bool {
	for _, f := range files {
		if strings.Contains(f.Path, ".service.d/") {
			return true
		}
	}
	return false
}

// NewWriteConfigPhase writes containerd's configuration from the plan.
func NewWriteConfigPhase() migrate.Phase {
	return migrate.Phase{
		RunIf: toContainerd,
		Name:  "write-config",
		Short: "Write containerd's configuration (converted from Docker's)",
		Run: run(func(ctx context.Context, d Data) error {
			files := d.Plan().Containerd
			if err := writeFiles(ctx, d, files); err != nil {
				return err
			}
			if hasDropIn(files) {
				// Undone by undoWrites, once the drop-ins are back.
				_, err := migrate.Exec(ctx, d, []string{"systemctl", "daemon-reload"})
				return err
			}
			return nil
		}),
		Rollback: func(ctx context.Context, d migrate.Data) error {
			return undoWrites(ctx, d, d.Journal().Current())
		},
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) { return planFiles(d.Plan().Containerd) }),
	}
}

// NewStartContainerdPhase enables and restarts containerd with its new
// configuration and waits until its CRI says the runtime and the network
// are ready. Rollback puts containerd's files back and restarts it as it
// was (Docker needs it), or stops it if it did not run.
func NewStartContainerdPhase() migrate.Phase {
	return migrate.Phase{
		RunIf: toContainerd,
		Name:  "start-containerd",
		Short: "Start containerd and check its CRI",
		Run: run(func(ctx context.Context, d Data) error {
			const unit = "containerd.service"
			if err := recordUnits(ctx, d, unit); err != nil {
				return err
			}
			j := d.Journal()
			var undoEnable [][]string
			if j.Values["unit."+unit+".enabled"] == "disabled" {
				undoEnable = append(undoEnable, []string{"systemctl", "disable", unit})
			}
			if _, err := migrate.Exec(ctx, d, []string{"systemctl", "enable", unit}, undoEnable...); err != nil {
				return err
			}
			// Undone after containerd's own files are back (see Rollback):
			// Docker needs containerd as it ran before.
			undoRestart := []string{"systemctl", "restart", unit}
			if j.Values["unit."+unit+".active"] != "active" {
				undoRestart = []string{"systemctl", "stop", unit}
			}
			if _, err := migrate.Exec(ctx, d, []string{"systemctl", "restart", unit}, undoRestart); err != nil || d.DryRun() {
				return err
			}
			return waitCRI(ctx, d, 2*time.Minute)
		}),
		Rollback: run(func(ctx context.Context, d Data) error {
			// The kubelet is stopped: remove the pods it ran on containerd, so
			// none keeps running (or holds its pod IP) beside Docker's.
			if err := removeCRIPods(ctx, d); err != nil {
				d.Logger().Warnf("[start-containerd] remove the pods the kubelet ran on containerd: %v", err)
			}
			// containerd's files back first, so that undoing the restart
			// starts it as it ran for Docker.
			if err := undoWrites(ctx, d, "write-config"); err != nil {
				return err
			}
			return migrate.Undo(ctx, d, "start-containerd")
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			return []string{"systemctl enable containerd.service", "systemctl restart containerd.service",
				"wait for the CRI at " + nodeplan.ContainerdEndpoint + ": RuntimeReady and NetworkReady"}, nil
		}),
	}
}

// rootSockets is the transport's way to the node's root-owned unix sockets
// (containerd's, Docker's), or nil: a transport without one, or SSH as a
// login user other than root, who cannot open them.
func rootSockets(d Data) transport.Dialer {
	dialer, ok := d.Transport().(transport.Dialer)
	if !ok {
		return nil
	}
	if s, ok := dialer.(*transport.SSH); ok && s.Sudo() {
		return nil
	}
	return dialer
}

// criConn connects to the node's containerd CRI through the transport, or
// returns nil when the transport cannot reach the node's sockets.
func criConn(d Data) (*grpc.ClientConn, error) { return criConnAt(d, nodeplan.ContainerdEndpoint) }

// criConnAt connects to the CRI at endpoint (unix://PATH) on the node, or
// returns nil when the transport cannot reach the node's root sockets.
func criConnAt(d Data, endpoint string) (*grpc.ClientConn, error) {
	dialer := rootSockets(d)
	if dialer == nil {
		return nil, nil
	}
	sock := strings.TrimPrefix(endpoint, "unix://")
	return grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dialer.DialUnix(ctx, sock) }))
}

// criStatus asks the node's containerd CRI for its conditions; without a
// way to the node's socket it asks `ctr` whether the CRI plugin loaded.
func criStatus(ctx context.Context, d Data) (map[string]bool, error) {
	conn, err := criConn(d)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		out, err := d.Transport().Run(ctx, "ctr", "plugins", "ls")
		if err != nil {
			return nil, err
		}
		if criLoaded(out) {
			return map[string]bool{runtimeapi.RuntimeReady: true, runtimeapi.NetworkReady: true}, nil
		}
		return nil, errors.New("containerd's CRI plugin did not load (ctr plugins ls)")
	}
	defer conn.Close()
	conds, err := criConditions(ctx, conn, nodeplan.ContainerdEndpoint)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range conds {
		out[c.Type] = c.Status
	}
	return out, nil
}

// criConditions asks the CRI at the other end of conn (endpoint names it in
// errors) for its status conditions.
func criConditions(ctx context.Context, conn *grpc.ClientConn, endpoint string) ([]*runtimeapi.RuntimeCondition, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := runtimeapi.NewRuntimeServiceClient(conn).Status(cctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI status at %s: %w", endpoint, err)
	}
	return st.GetStatus().GetConditions(), nil
}

// containerdCRIReady says whether containerd's CRI reports RuntimeReady and
// NetworkReady.
func containerdCRIReady(ctx context.Context, d Data) error {
	conds, err := criStatus(ctx, d)
	if err != nil {
		return err
	}
	if !conds[runtimeapi.RuntimeReady] || !conds[runtimeapi.NetworkReady] {
		return fmt.Errorf("CRI conditions %v", conds)
	}
	return nil
}

// removeCRIPods stops and removes every pod sandbox containerd's CRI knows
// (their containers go with them, and CNI releases their addresses). Without
// the node's socket at hand it kills the k8s.io namespace's tasks with ctr.
func removeCRIPods(ctx context.Context, d Data) error {
	conn, err := criConn(d)
	if err != nil {
		return err
	}
	if conn == nil {
		out, err := d.Transport().Run(ctx, "ctr", "-n", "k8s.io", "tasks", "ls", "-q")
		if err != nil {
			return err
		}
		var errs []error
		for _, id := range strings.Fields(string(out)) {
			if _, err := d.Transport().Run(ctx, "ctr", "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	list, err := rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range list.GetItems() {
		if _, err := rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(list.GetItems()) > 0 {
		d.Logger().V(0).Infof("[start-containerd] removed %d pods the kubelet ran on containerd", len(list.GetItems()))
	}
	return errors.Join(errs...)
}

// waitCRI polls containerd's CRI until it says the runtime and the network
// are ready, for at most timeout. A local call to the node's socket, not the
// API: asked often (every 200 ms), the kubelet starts the moment containerd
// is up.
func waitCRI(ctx context.Context, d Data, timeout time.Duration) error {
	return waitReady(ctx, "containerd", 200*time.Millisecond, timeout, func(ctx context.Context) error { return containerdCRIReady(ctx, d) })
}

// waitReady checks ready every interval until it passes or timeout; what
// names the runtime whose CRI is waited for.
func waitReady(ctx context.Context, what string, interval, timeout time.Duration, ready func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		last = ready(ctx)
		return last == nil, nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s's CRI not ready after %s: %w", what, timeout, last)
	}
	return err
}

// NewReconfigureKubeletPhase writes the kubelet's flags and configuration
// from the plan; rollback restores them.
func NewReconfigureKubeletPhase() migrate.Phase {
	return migrate.Phase{
		Name:  "reconfigure-kubelet",
		Short: "Point the kubelet at the new runtime, in the way its version wants",
		Run: run(func(ctx context.Context, d Data) error {
			return writeFiles(ctx, d, d.Plan().Kubelet)
		}),
		// Rollback: the files it wrote are restored from the journal.
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) { return planFiles(d.Plan().Kubelet) }),
	}
}

// NewStartKubeletPhase starts the kubelet on the new runtime; rollback stops
// it (stop-kubelet's rollback starts it again once the files are back).
func NewStartKubeletPhase() migrate.Phase {
	return migrate.Phase{
		Name:  StartKubeletPhase,
		Short: "Start the kubelet",
		Run: run(func(ctx context.Context, d Data) error {
			d.Journal().Values["kubelet.started"] = time.Now().UTC().Format(time.RFC3339)
			if err := saveJournal(ctx, d); err != nil {
				return err
			}
			// restart, not start: a kubelet that a reboot started meanwhile with its
			// old flags must read the new ones.
			_, err := migrate.Exec(ctx, d, []string{"systemctl", "restart", "kubelet.service"}, []string{"systemctl", "stop", "kubelet.service"})
			return err
		}),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			return []string{"systemctl restart kubelet.service"}, nil
		}),
	}
}
