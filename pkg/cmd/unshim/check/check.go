// Package check is the `unshim check` command: the impact check on a live
// cluster or on manifests.
package check

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/live"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/cmd"
	"github.com/unshim/unshim/pkg/log"
	"github.com/unshim/unshim/pkg/manifest"
	"github.com/unshim/unshim/pkg/report"
)

// Options are the flags and state of `unshim check`.
type Options struct {
	genericiooptions.IOStreams
	Output         string
	FailOn         string
	Filenames      []string
	AllNamespaces  bool
	DockerSockets  []string
	Catalogs       []string
	PageSize       int64
	SkipConfigMaps bool

	kube   *cmd.KubeFlags
	logger log.Logger
	format report.Format
	failOn cmd.FailOn
	rules  []check.Rule
	source check.Source
	scope  string
}

// NewCommand returns `unshim check`.
func NewCommand(logger log.Logger, streams genericiooptions.IOStreams, kube *cmd.KubeFlags) *cobra.Command {
	o := &Options{IOStreams: streams, kube: kube, logger: logger, Output: string(report.Table), FailOn: "high", PageSize: 500}
	c := &cobra.Command{
		Use:   "check",
		Short: "Find what depends on Docker, in a cluster or in manifests",
		Long: `Finds workloads that break when their node stops running Docker: hostPath
mounts of the Docker socket or of what holds it, Docker's data root and
configuration; DOCKER_HOST; Docker-in-Docker; privileged containers that run
docker, restart it or edit /etc/docker/daemon.json; agents known to have used
Docker unless configured for the CRI; log collectors that read Docker's JSON
logs and node monitors that watch dockerd (ConfigMaps and Secrets included).

With -f, every document is checked or reported as skipped with its file, line
and why: old API groups (extensions/v1beta1, apps/v1beta1, ...) are read as
their current types, and custom resources (Tekton, Argo, ...) are searched for
the containers in them.

On a live cluster, custom resources that may run containers (Tekton, Argo
Workflows, and any kind whose CRD schema has container-shaped entries or
leaves its spec open) are searched the same way; objects of them with no
container, and kinds that cannot be listed, are reported as skipped.

Findings roll up to the top-level owner (Pod -> ReplicaSet -> Deployment,
Job -> CronJob, DaemonSet, StatefulSet, ReplicationController, bare Pod).
A live cluster is read with paged LISTs only.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it;
2 the check itself failed (unreachable cluster, unreadable file, bad YAML).`,
		Example: `  unshim check -A
  unshim check -n ci -o json
  unshim check -f deploy/ -o sarif > unshim.sarif
  helm template my-release ./chart | unshim check -f -
  unshim check -A --docker-socket /var/run/custom/docker.sock --fail-on medium`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Output, "output", "o", o.Output, "output format: table|json|yaml|sarif")
	f.StringVar(&o.FailOn, "fail-on", o.FailOn, cmd.FailOnUsage)
	f.StringSliceVarP(&o.Filenames, "filename", "f", nil, "check manifests instead of the cluster: a file, a directory, or - for stdin (repeatable)")
	f.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "check every namespace, not only the current one")
	f.StringSliceVar(&o.DockerSockets, "docker-socket", nil, "further Docker socket paths used on the nodes (repeatable)")
	f.StringSliceVar(&o.Catalogs, "catalog", nil, "extra catalog of agents, log and monitor configurations and known mounts, same format as the built-in one (repeatable)")
	f.Int64Var(&o.PageSize, "chunk-size", o.PageSize, "objects per LIST page")
	f.BoolVar(&o.SkipConfigMaps, "skip-configmaps", false, "do not read ConfigMaps (log-collector configuration)")
	return c
}

// Complete parses the flags and picks the source: manifests or the cluster.
func (o *Options) Complete() error {
	var err error
	if o.format, err = report.ParseFormat(o.Output, report.Table, report.JSON, report.YAML, report.SARIF); err != nil {
		return err
	}
	if o.failOn, err = cmd.ParseFailOn(o.FailOn); err != nil {
		return err
	}
	cat, err := rules.LoadCatalog(o.Catalogs...)
	if err != nil {
		return err
	}
	if o.rules, err = rules.All(rules.Options{ExtraSockets: o.DockerSockets, Catalog: cat}); err != nil {
		return err
	}
	if len(o.Filenames) > 0 {
		o.source = &manifest.Source{Paths: o.Filenames, Stdin: o.In}
		return nil
	}
	client, err := cmd.Clientset(o.kube)
	if err != nil {
		return err
	}
	ns := ""
	if !o.AllNamespaces {
		if ns, err = o.kube.Namespace(); err != nil {
			return err
		}
		o.scope = ns
	}
	dyn, err := cmd.Dynamic(o.kube)
	if err != nil {
		return err
	}
	o.source = &live.Source{Client: client, Dynamic: dyn, Namespace: ns, PageSize: o.PageSize, SkipConfigMaps: o.SkipConfigMaps}
	return nil
}

// Validate checks flag combinations.
func (o *Options) Validate() error {
	if len(o.Filenames) > 0 && o.AllNamespaces {
		return fmt.Errorf("-A applies to a live cluster, not to manifests given with -f")
	}
	if o.PageSize <= 0 {
		return fmt.Errorf("--chunk-size must be positive, got %d", o.PageSize)
	}
	return nil
}

// manifestGCPercent is the GOGC the check runs manifests with (unless GOGC
// is set). Manifests are streamed, so what is live stays small (findings so
// far, a few files in flight); letting the heap grow by half of it between
// collections instead of all of it keeps the peak near the start-up floor
// however many files are read, at little cost as the decoder allocates little.
const manifestGCPercent = 50

// Run checks, writes the findings and turns them into the exit code.
func (o *Options) Run(ctx context.Context) error {
	if len(o.Filenames) > 0 && os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(manifestGCPercent))
	}
	res, err := check.Run(ctx, o.source, o.rules)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	metas := make([]check.RuleMeta, len(o.rules))
	for i, r := range o.rules {
		metas[i] = r.Meta()
	}
	if err := report.Findings(o.Out, res, metas, o.format); err != nil {
		return fmt.Errorf("write findings: %w", err)
	}
	if o.scope != "" {
		o.logger.V(0).Infof("checked namespace %q only; use -A to check every namespace", o.scope)
	}
	return o.failOn.Exit(res.Findings)
}
