// Package convert is the `unshim convert` command: a node's Docker setup in,
// the containerd setup that replaces it out.
package convert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodefiles"
	"github.com/unshim/unshim/pkg/report"
	"github.com/unshim/unshim/pkg/transport"
)

// Options are the flags and state of `unshim convert`.
type Options struct {
	genericiooptions.IOStreams
	Root              string
	ContainerdVersion string
	KubeletVersion    string
	KernelVersion     string
	OutDir            string
	Diff              bool
	Write             bool
	Output            string

	logger log.Logger
	now    func() time.Time
}

// Result is the machine-readable answer of `unshim convert -o json`.
type Result struct {
	// Files are the node paths written (--out, --write), changed (--diff) or generated.
	Files []string `json:"files"`
	// Backups are the node paths of the copies of the previous contents
	// --write kept (a file that did not exist has none).
	Backups []string `json:"backups,omitempty"`
	// BackupRecord is the node path of the record of --write's backups:
	// every file it changed, with its copy's checksum and mode, or that it
	// did not exist.
	BackupRecord string `json:"backupRecord,omitempty"`
	// Kubelet maps KubeletConfiguration fields to their new values.
	Kubelet      map[string]any              `json:"kubelet"`
	KubeletFlags nodeconf.KubeletFlagChanges `json:"kubeletFlags"`
	Unmapped     []nodeconf.Unmapped         `json:"unmapped"`
	// ContainerdVersion and Schema say which config.toml was generated.
	ContainerdVersion string `json:"containerdVersion"`
	Schema            int    `json:"schema"`
	SandboxImage      string `json:"sandboxImage"`
	SystemdCgroup     bool   `json:"systemdCgroup"`
}

// NewCommand returns `unshim convert`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, logger: logger, Root: "/", Output: "text", now: time.Now}
	c := &cobra.Command{
		Use:   "convert [--root DIR] [--containerd-version V] [--out DIR | --diff | --write] [-o text|json]",
		Short: "Turn a node's Docker setup into the containerd setup that replaces it",
		Long: `Reads the node's Docker setup (daemon.json, dockerd flags in docker.service, its
drop-ins and /etc/default|sysconfig/docker, /etc/docker/certs.d) and its kubelet
flags (kubeadm-flags.env, /etc/default/kubelet) and KubeletConfiguration, and
produces the containerd setup:

  /etc/containerd/config.toml                      version 2 (containerd 1.6/1.7) or 3 (2.x)
  /etc/containerd/certs.d/HOST/hosts.toml          mirrors, insecure registries, CAs, client certs
  /etc/systemd/system/containerd.service.d/*.conf  proxies, ulimits
  the kubelet settings to change                   cgroupDriver, containerLogMaxSize/Files, endpoint

A setup the node's dockerd runs is never refused: EnvironmentFile lines systemd
skips, RHEL's docker flags, keys older dockerds accepted and settings that cannot
work under containerd are listed as not carried over, each with the reason.
Insecure registries are written for the target: HTTPS without verification, then
plain HTTP (as Docker tries them). The node's kernel (/proc/sys/kernel/osrelease
or --kernel-version) gates unprivileged ports and ping.
Without --out, --diff or --write the files are printed.
--write backs up every file it changes first, as a switch does: a copy under
/var/lib/unshim/convert/backup/convert-TIMESTAMP/, recorded with its checksum
and mode (or that the file did not exist) in
/var/lib/unshim/convert/journal/convert-TIMESTAMP.json.

Exit codes: 0 the setup was produced (unmapped settings included); 2 bad input
(the file and key are named, nothing is written).`,
		Example: `  unshim convert
  unshim convert --root /mnt/node --containerd-version 2.2.0 --out /tmp/node-containerd
  unshim convert --diff
  unshim convert --write -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
			}
			return o.Run(c.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&o.Root, "root", o.Root, "the node's file system to read (and --write to)")
	f.StringVar(&o.ContainerdVersion, "containerd-version", "", "target containerd version (default: what the node's `containerd --version` says)")
	f.StringVar(&o.KubeletVersion, "kubelet-version", "", "the node's kubelet version (default: what the node's `kubelet --version` says, if it runs)")
	f.StringVar(&o.KernelVersion, "kernel-version", "", "the node's kernel release, as in the Node's status.nodeInfo.kernelVersion (default: the node's /proc/sys/kernel/osrelease)")
	f.StringVar(&o.OutDir, "out", "", "write the files under DIR at their node paths")
	f.BoolVar(&o.Diff, "diff", false, "print a unified diff against the files on the node")
	f.BoolVar(&o.Write, "write", false, "write the files to the node, backing up each file replaced")
	f.StringVarP(&o.Output, "output", "o", o.Output, "output format: text|json")
	return c
}

// Validate checks flag combinations.
func (o *Options) Validate() error {
	n := 0
	for _, set := range []bool{o.OutDir != "", o.Diff, o.Write} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("--out, --diff and --write exclude each other")
	}
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: want text or json", o.Output)
	}
	if o.Root == "" {
		return errors.New("--root must not be empty")
	}
	return nil
}

// Run reads the node, converts and writes, diffs or prints the result.
func (o *Options) Run(ctx context.Context) error {
	gen, err := Generate(ctx, o.logger, Versions{Root: o.Root, Containerd: o.ContainerdVersion, Kubelet: o.KubeletVersion, Kernel: o.KernelVersion})
	if err != nil {
		return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
	}
	out := gen.Output
	res := &Result{Kubelet: out.Kubelet, KubeletFlags: out.KubeletFlags, Unmapped: out.Unmapped, Files: []string{},
		ContainerdVersion: gen.ContainerdVersion.String(), Schema: out.Schema, SandboxImage: out.SandboxImage, SystemdCgroup: out.SystemdCgroup}
	var body bytes.Buffer
	switch {
	case o.OutDir != "":
		done, err := nodefiles.WriteFiles(ctx, &transport.Local{Root: o.OutDir}, out.Files, nodefiles.RunName(o.now()), false)
		for _, w := range done {
			res.Files = append(res.Files, filepath.Join(o.OutDir, w.Path))
		}
		if err != nil {
			return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
		}
	case o.Write:
		t := &transport.Local{Root: o.Root}
		run := nodefiles.RunName(o.now())
		done, err := nodefiles.WriteFiles(ctx, t, out.Files, run, true)
		for _, w := range done {
			if w.Unchanged {
				continue
			}
			res.Files = append(res.Files, w.Path)
			if w.Backup != "" {
				res.Backups = append(res.Backups, w.Backup)
				o.logger.V(0).Infof("backed up %s as %s", w.Path, w.Backup)
			}
		}
		if len(res.Files) > 0 {
			res.BackupRecord = nodefiles.BackupStore(t).Path(run)
		}
		if err != nil {
			return &cmd.ExitError{Code: cmd.ExitFailure, Err: err}
		}
		if len(res.Files) > 0 && strings.Contains(strings.Join(res.Files, " "), "containerd.service.d") {
			o.logger.V(0).Infof("run `systemctl daemon-reload` before restarting containerd")
		}
	case o.Diff:
		for _, f := range out.Files {
			old, err := os.ReadFile(nodefiles.Path(o.Root, f.Path))
			if err != nil && !os.IsNotExist(err) {
				return &cmd.ExitError{Code: cmd.ExitFailure, Err: fmt.Errorf("read %s: %w", f.Path, err)}
			}
			if bytes.Equal(old, f.Data) {
				continue
			}
			res.Files = append(res.Files, f.Path)
			aName := f.Path
			if old == nil {
				aName = "/dev/null"
			}
			if err := report.UnifiedDiff(&body, aName, f.Path, old, f.Data); err != nil {
				return err
			}
		}
	default:
		for _, f := range out.Files {
			res.Files = append(res.Files, f.Path)
			if strings.HasSuffix(f.Path, ".key") || strings.HasSuffix(f.Path, ".crt") || strings.HasSuffix(f.Path, ".cert") {
				fmt.Fprintf(&body, "==> %s <== (copied from %s, %d bytes)\n\n", f.Path, nodefiles.DockerCertsD, len(f.Data))
				continue
			}
			fmt.Fprintf(&body, "==> %s <==\n%s\n", f.Path, f.Data)
		}
	}
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if _, err := o.Out.Write(body.Bytes()); err != nil {
		return err
	}
	return writeText(o.Out, res, o.OutDir != "" || o.Write)
}

// Generated is a conversion and the versions it was made for.
type Generated struct {
	Node              *nodefiles.Node
	Output            *nodeconf.Output
	ContainerdVersion *version.Version
}

// Versions says which node to read and the versions given on the command
// line ("" for: ask the node).
type Versions struct {
	Root       string
	Containerd string
	Kubelet    string
	Kernel     string
}

// Generate reads the node under v.Root and converts its setup. Versions not
// given are asked of the node's binaries (containerd, kubelet) and files
// (/proc/sys/kernel/osrelease).
func Generate(ctx context.Context, logger log.Logger, v Versions) (*Generated, error) {
	root, containerdVersion, kubeletVersion := v.Root, v.Containerd, v.Kubelet
	node, err := nodefiles.Load(root)
	if err != nil {
		return nil, err
	}
	if v.Kernel != "" {
		kv, err := nodeconf.ParseKernelVersion(v.Kernel)
		if err != nil {
			return nil, fmt.Errorf("--kernel-version: %w", err)
		}
		node.Input.KernelVersion = kv
	} else if node.Input.KernelVersion == nil {
		logger.V(0).Infof("kernel version unknown (no %s under %s): give --kernel-version", nodefiles.KernelRelease, root)
	}
	var cv *version.Version
	if containerdVersion != "" {
		if cv, err = version.ParseGeneric(containerdVersion); err != nil {
			return nil, fmt.Errorf("--containerd-version: %w", err)
		}
	} else if cv, err = node.ContainerdVersion(ctx); err != nil {
		return nil, err
	}
	node.Input.ContainerdVersion = cv
	if kubeletVersion != "" {
		kv, err := version.ParseGeneric(kubeletVersion)
		if err != nil {
			return nil, fmt.Errorf("--kubelet-version: %w", err)
		}
		node.Input.KubeletVersion = kv
	} else if kv, err := node.KubeletVersion(ctx); err == nil {
		node.Input.KubeletVersion = kv
	} else {
		logger.V(1).Infof("kubelet version unknown: %v", err)
	}
	out, err := nodeconf.Convert(node.Input)
	if err != nil {
		return nil, err
	}
	return &Generated{Node: node, Output: out, ContainerdVersion: cv}, nil
}

func writeText(w io.Writer, res *Result, wrote bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "containerd %s: config.toml version %d, sandbox image %s, SystemdCgroup = %t\n", res.ContainerdVersion, res.Schema, res.SandboxImage, res.SystemdCgroup)
	if wrote {
		fmt.Fprintf(tw, "\nWrote:\n")
		for _, f := range res.Files {
			fmt.Fprintf(tw, "  %s\n", f)
		}
		for _, b := range res.Backups {
			fmt.Fprintf(tw, "  backup: %s\n", b)
		}
		if res.BackupRecord != "" {
			fmt.Fprintf(tw, "  record of the backups: %s\n", res.BackupRecord)
		}
	}
	fmt.Fprintf(tw, "\nKubelet settings to change (KubeletConfiguration):\n")
	keys := make([]string, 0, len(res.Kubelet))
	for k := range res.Kubelet {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s:\t%v\n", k, res.Kubelet[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range res.KubeletFlags.Set {
		fmt.Fprintf(tw, "  set flag %s=%s\t%s\n", s.Flag, s.Value, s.Reason)
	}
	for _, r := range res.KubeletFlags.Remove {
		fmt.Fprintf(tw, "  remove flag %s (%s)\t%s\n", r.Flag, r.File, r.Reason)
	}
	if len(res.Unmapped) > 0 {
		fmt.Fprintf(tw, "\nNot carried over:\n  KEY\tVALUE\tSOURCE\tREASON\n")
		for _, u := range res.Unmapped {
			v := u.Value
			if len(v) > 40 {
				v = v[:37] + "..."
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Key, orDash(v), orDash(u.Source), u.Reason)
		}
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
