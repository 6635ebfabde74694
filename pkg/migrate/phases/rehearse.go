package phases

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	toml "github.com/pelletier/go-toml/v2"

	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/nodeconf"
	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/registryprobe"
)

// The rehearsal's private containerd: its own root, state, socket and unit,
// beside Docker's containerd, disturbing nothing.
const (
	rehearseDir  = "/var/lib/unshim/rehearse"
	rehearseRun  = "/run/unshim-rehearse"
	rehearseSock = rehearseRun + "/containerd.sock"
	rehearseUnit = "unshim-rehearse.service"
	// rehearseNS is the containerd namespace the rehearsal fetches into.
	rehearseNS = "unshim-rehearse"
	// RehearsedKey is the journal value listing the image references
	// Docker and the rehearsal both resolved, one per line: verify resolves
	// them again through the switched containerd.
	RehearsedKey = "rehearse.refs"
)

// RegistryFailure is an image reference Docker resolves that containerd,
// with the converted settings, does not.
type RegistryFailure struct {
	Ref      string
	Registry string
	// Hosts are the hosts containerd tried, in order.
	Hosts []string
	Err   string
}

// RegistryError stops a switch whose converted registry settings would
// break image pulls: it names each reference, its registry, and the Docker
// settings unshim could not carry over that may concern them.
type RegistryError struct {
	// Where is "the rehearsal" or "the switched containerd".
	Where    string
	Failures []RegistryFailure
	Unmapped []nodeconf.Unmapped
}

func (e *RegistryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d image reference(s) that Docker resolves do not resolve through %s:", len(e.Failures), e.Where)
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\n  %s: registry %s (hosts tried: %s): %s", f.Ref, f.Registry, strings.Join(f.Hosts, ", "), f.Err)
	}
	if len(e.Unmapped) > 0 {
		b.WriteString("\n  registry settings of Docker's that were not carried over:")
		for _, u := range e.Unmapped {
			fmt.Fprintf(&b, "\n    %s=%s: %s", u.Key, u.Value, u.Reason)
		}
	}
	return b.String()
}

// NewRehearsePhase rehearses the switch before anything on the node
// changes: a private containerd (the node's own binary) starts with the
// converted configuration on a root, state directory, socket and unit of
// its own; its CRI must load; and every image the node's pods and the
// sandbox use that Docker resolves today must resolve through it too (a
// manifest fetch through containerd's resolver with the converted certs.d,
// not a pull). A reference that Docker resolves and the rehearsal cannot
// stops the switch, naming the registry and the setting.
func NewRehearsePhase() migrate.Phase {
	return migrate.Phase{
		RunIf:    toContainerd,
		Name:     "rehearse",
		Short:    "Rehearse on a private containerd: the converted config loads, its CRI comes up, Docker's images resolve through it",
		Run:      run(rehearse),
		Rollback: run(cleanRehearsal),
		Plan: plan(func(ctx context.Context, d Data) ([]string, error) {
			refs, err := podImageRefs(ctx, d)
			if err != nil {
				return nil, err
			}
			lines := []string{"start a private containerd with the converted configuration under " + rehearseDir + " (socket " + rehearseSock + "); check its CRI loads",
				"resolve through it each image below that Docker resolves now (a manifest fetch, not a pull); verify resolves them again after the switch:"}
			routes, err := registryprobe.RoutesForFiles(ctx, planFilesAsConf(d.Plan()), refs)
			if err != nil {
				return append(lines, "  (registries unknown: "+err.Error()+")"), nil
			}
			for _, r := range routes {
				lines = append(lines, "  "+r.Name+" via "+strings.Join(hostURLs(r.Hosts), ", "))
			}
			return lines, nil
		}),
	}
}

func rehearse(ctx context.Context, d Data) error {
	bin := containerdBinary(ctx, d.Transport())
	if bin == "" && !d.DryRun() {
		d.Logger().V(0).Infof("[rehearse] containerd is not installed yet: nothing to rehearse with; verify checks the registries after the switch")
		return nil
	}
	files, env, err := rehearsalFiles(d.Plan())
	if err != nil {
		return err
	}
	refs, err := podImageRefs(ctx, d)
	if err != nil {
		return err
	}
	var resolvable []string
	if !d.DryRun() {
		resolvable = dockerResolvable(ctx, d, refs)
		// A leftover of a run killed inside this phase.
		_ = cleanRehearsal(ctx, d)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := migrate.WriteFile(ctx, d, p, files[p], 0o600); err != nil {
			return err
		}
	}
	argv := []string{"systemd-run", "--unit=" + rehearseUnit, "--collect", "--quiet"}
	for _, e := range env {
		argv = append(argv, "--setenv="+e)
	}
	if bin == "" {
		bin = containerdBinaries[0]
	}
	argv = append(argv, "--", bin, "--config", rehearseDir+containerdConfig)
	if _, err := migrate.Exec(ctx, d, []string{"mkdir", "-p", rehearseRun}); err != nil {
		return err
	}
	if _, err := migrate.Exec(ctx, d, argv); err != nil {
		return fmt.Errorf("start the rehearsal's containerd: %w", err)
	}
	checkErr := error(nil)
	if !d.DryRun() {
		checkErr = rehearsalChecks(ctx, d, env, resolvable)
	}
	// Stopped and removed, whatever the checks said. A stop systemd reports
	// as failed is no failure when the daemon is gone.
	if _, err := migrate.Exec(ctx, d, []string{"systemctl", "stop", rehearseUnit}); err != nil && !d.DryRun() {
		if cerr := cleanRehearsal(ctx, d); cerr != nil && checkErr == nil {
			checkErr = fmt.Errorf("stop the rehearsal's containerd: %w (%v)", cerr, err)
		}
	}
	if _, err := migrate.Exec(ctx, d, []string{"rm", "-rf", "--", rehearseDir, rehearseRun}); err != nil && checkErr == nil {
		checkErr = err
	}
	return checkErr
}

func rehearsalChecks(ctx context.Context, d Data, env, refs []string) error {
	t := d.Transport()
	// Up, and its CRI loaded.
	var out []byte
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err = t.Run(ctx, "ctr", "--address", rehearseSock, "plugins", "ls")
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		log, _ := t.Run(ctx, "journalctl", "--no-pager", "-n", "20", "-u", rehearseUnit)
		return fmt.Errorf("the converted configuration did not start a containerd: %w\n%s", err, log)
	}
	if !criLoaded(out) {
		return fmt.Errorf("the converted configuration starts containerd but not its CRI plugin:\n%s", out)
	}
	d.Logger().V(0).Infof("[rehearse] the converted configuration starts containerd and its CRI; resolving %d image(s) Docker resolves", len(refs))
	fails := resolveAll(ctx, d, "rehearse", refs, func(ctx context.Context, ref string) error {
		argv := []string{"ctr", "--address", rehearseSock, "--namespace", rehearseNS, "--timeout", "60s",
			"content", "fetch", "--metadata-only", "--hosts-dir", rehearseDir + nodeconf.CertsDir, normalizeRef(ref)} // ctr wants the registry named
		if len(env) > 0 { // the proxies of containerd's unit: ctr resolves client-side
			argv = append(append([]string{"env"}, env...), argv...)
		}
		_, err := t.Run(ctx, argv...)
		return err
	})
	var ok []string
	for _, r := range refs {
		if _, failed := fails[r]; !failed {
			ok = append(ok, r)
		}
	}
	d.Journal().Values[RehearsedKey] = strings.Join(ok, "\n")
	if len(fails) > 0 {
		return registryError(ctx, d, "the rehearsal's containerd (converted settings)", fails)
	}
	return nil
}

// resolveAll resolves refs with up to 4 at a time and returns the failures.
func resolveAll(ctx context.Context, d Data, phase string, refs []string, resolve func(context.Context, string) error) map[string]error {
	fails := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := resolve(ctx, ref); err != nil {
				mu.Lock()
				fails[ref] = err
				mu.Unlock()
			} else {
				d.Logger().V(1).Infof("[%s] %s resolves", phase, ref)
			}
		}()
	}
	wg.Wait()
	return fails
}

func registryError(ctx context.Context, d Data, where string, fails map[string]error) error {
	e := &RegistryError{Where: where}
	var refs []string
	for r := range fails {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	routes, _ := registryprobe.RoutesForFiles(ctx, planFilesAsConf(d.Plan()), refs)
	byRef := map[string]registryprobe.Route{}
	for _, r := range routes {
		byRef[r.Ref] = r
	}
	for _, r := range refs {
		f := RegistryFailure{Ref: r, Registry: byRef[r].Namespace, Hosts: hostURLs(byRef[r].Hosts), Err: lastLine(fails[r].Error())}
		if f.Registry == "" {
			f.Registry = strings.SplitN(normalizeRef(r), "/", 2)[0]
		}
		e.Failures = append(e.Failures, f)
	}
	for _, u := range d.Plan().Unmapped {
		if strings.Contains(u.Key, "registr") {
			e.Unmapped = append(e.Unmapped, u)
		}
	}
	return e
}

// cleanRehearsal stops the private containerd and removes its directories;
// what is already gone is no error.
func cleanRehearsal(ctx context.Context, d Data) error {
	if d.DryRun() {
		return nil
	}
	t := d.Transport()
	// Stopped and unloaded whatever state it is in: a transient unit whose
	// stop failed (systemd could not kill its cgroup, as seen on lab nodes)
	// is not collected, and the next systemd-run of the name would fail.
	_, stopErr := t.Run(ctx, "systemctl", "stop", rehearseUnit)
	_, _ = t.Run(ctx, "systemctl", "reset-failed", rehearseUnit)
	if out, err := t.Run(ctx, "systemctl", "is-active", rehearseUnit); err == nil || strings.TrimSpace(string(out)) == "activating" {
		return fmt.Errorf("stop %s: %w", rehearseUnit, stopErr)
	}
	_, err := t.Run(ctx, "rm", "-rf", "--", rehearseDir, rehearseRun)
	return err
}

// podImageRefs are the images of the node's pods (not finished, as the run
// first listed them) and the sandbox image, as given, each once.
func podImageRefs(ctx context.Context, d Data) ([]string, error) {
	pods, err := podsBefore(ctx, d)
	if err != nil {
		return nil, err
	}
	refs := nodeImages(d, pods, nil)
	sort.Strings(refs)
	return refs, nil
}

// dockerResolvable are the refs Docker resolves now (through its Engine
// API's distribution endpoint, which uses dockerd's own mirrors, insecure
// registries and certs.d). Without a way to Docker's socket it is none:
// then nothing can be told to be the switch's fault, and nothing is checked.
func dockerResolvable(ctx context.Context, d Data, refs []string) []string {
	dialer := rootSockets(d)
	if dialer == nil {
		d.Logger().V(0).Infof("[rehearse] no way to Docker's socket through this transport: registries are not rehearsed")
		return nil
	}
	// /run/docker.sock first: /var/run is a symlink to /run whose absolute
	// target a transport reaching the node's root from outside would
	// resolve on its own machine.
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := dialer.DialUnix(ctx, "/run/docker.sock")
		if err != nil {
			if c2, err2 := dialer.DialUnix(ctx, "/var/run/docker.sock"); err2 == nil {
				return c2, nil
			}
		}
		return conn, err
	}
	c, err := client.NewClientWithOpts(client.WithHost("unix:///run/docker.sock"), client.WithAPIVersionNegotiation(), client.WithDialContext(dial))
	if err != nil {
		d.Logger().V(0).Infof("[rehearse] Docker's API: %v: registries are not rehearsed", err)
		return nil
	}
	defer c.Close()
	fails := resolveAll(ctx, d, "rehearse", refs, func(ctx context.Context, ref string) error {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := c.DistributionInspect(rctx, ref, "")
		return err
	})
	var out, not []string
	first := ""
	for _, r := range refs {
		if err, failed := fails[r]; failed {
			not = append(not, r)
			if first == "" {
				first = r + ": " + lastLine(err.Error())
			}
			continue
		}
		out = append(out, r)
	}
	if len(not) > 0 {
		d.Logger().V(0).Infof("[rehearse] Docker does not resolve %d image(s) now either, so they are not checked: %s (%s)", len(not), strings.Join(not, ", "), first)
	}
	return out
}

// rehearsalFiles are the converted containerd files laid out under
// rehearseDir, the config pointed at the private root, state, socket and
// certs.d, and the environment of containerd's unit drop-ins (proxies).
func rehearsalFiles(p *nodeplan.Plan) (map[string][]byte, []string, error) {
	files := map[string][]byte{}
	var env []string
	for _, f := range p.Containerd {
		switch {
		case f.Path == containerdConfig:
			cfg, err := rehearsalConfig(f.New, p.Schema)
			if err != nil {
				return nil, nil, err
			}
			files[rehearseDir+f.Path] = cfg
		case strings.HasPrefix(f.Path, "/etc/containerd/"):
			files[rehearseDir+f.Path] = f.New
		case strings.Contains(f.Path, "containerd.service.d/"):
			env = append(env, unitEnvironment(f.New)...)
		}
	}
	if _, ok := files[rehearseDir+containerdConfig]; !ok {
		return nil, nil, fmt.Errorf("the plan has no %s to rehearse", containerdConfig)
	}
	return files, env, nil
}

// rehearsalConfig rewrites a converted config.toml for the private
// containerd: root, state, gRPC and ttrpc sockets of its own, no debug or
// metrics listener, NRI off (2.x serves it on a fixed socket), and every
// path under /etc/containerd moved under rehearseDir (certs.d, the base
// runtime spec).
func rehearsalConfig(data []byte, schema int) ([]byte, error) {
	var cfg map[string]any
	if err := toml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("the converted %s: %w", containerdConfig, err)
	}
	cfg = relocate(cfg).(map[string]any)
	cfg["root"] = rehearseDir + "/root"
	cfg["state"] = rehearseRun + "/state"
	table(cfg, "grpc")["address"] = rehearseSock
	table(cfg, "ttrpc")["address"] = rehearseSock + ".ttrpc"
	table(cfg, "debug")["address"] = ""
	table(cfg, "metrics")["address"] = ""
	if schema >= 3 {
		table(table(cfg, "plugins"), "io.containerd.nri.v1.nri")["disable"] = true
	}
	return toml.Marshal(cfg)
}

func table(m map[string]any, key string) map[string]any {
	if t, ok := m[key].(map[string]any); ok {
		return t
	}
	t := map[string]any{}
	m[key] = t
	return t
}

func relocate(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = relocate(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = relocate(e)
		}
		return v
	case string:
		if strings.HasPrefix(v, "/etc/containerd/") {
			return rehearseDir + v
		}
		return v
	default:
		return v
	}
}

// unitEnvironment reads the Environment= assignments of a unit drop-in
// (KEY=VALUE words, double quotes allowed, as systemd splits them).
func unitEnvironment(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment=")
		if !ok {
			continue
		}
		var cur strings.Builder
		quoted, any := false, false
		flush := func() {
			if any && strings.Contains(cur.String(), "=") {
				out = append(out, cur.String())
			}
			cur.Reset()
			any = false
		}
		for _, r := range rest {
			switch {
			case r == '"':
				quoted = !quoted
				any = true
			case (r == ' ' || r == '\t') && !quoted:
				flush()
			default:
				cur.WriteRune(r)
				any = true
			}
		}
		flush()
	}
	return out
}

// planFilesAsConf are the plan's containerd files as convert's output.
func planFilesAsConf(p *nodeplan.Plan) []nodeconf.File {
	var out []nodeconf.File
	for _, f := range p.Containerd {
		out = append(out, nodeconf.File{Path: f.Path, Data: f.New})
	}
	return out
}

// hostURLs are the hosts' URLs, each once (a hosts.toml may name its server
// as a [host] too).
func hostURLs(hs []registryprobe.Host) []string {
	var out []string
	for _, h := range hs {
		if !slices.Contains(out, h.URL) {
			out = append(out, h.URL)
		}
	}
	return out
}

func criLoaded(pluginsLs []byte) bool {
	for _, l := range strings.Split(string(pluginsLs), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[0] == "io.containerd.grpc.v1" && f[1] == "cri" && f[len(f)-1] == "ok" {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

const containerdConfig = nodeconf.ConfigPath
