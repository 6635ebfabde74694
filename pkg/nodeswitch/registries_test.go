package nodeswitch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/journal"
	"github.com/unshim/unshim/pkg/lab"
	"github.com/unshim/unshim/pkg/migrate"
	"github.com/unshim/unshim/pkg/migrate/phases"
)

// registryCases configure lab-node-1's Docker for the lab's three
// registries, as operators' daemon.json does (a plain-HTTP registry in
// insecure-registries, one on TLS with its own CA in certs.d, a Docker Hub
// mirror with its own CA), and run pods from each. Then:
//   - a registry Docker reaches through an insecure-registries CIDR (moby
//     matches a registry's IP against them; containerd looks registries up by
//     name only, so convert cannot carry a CIDR over) stops the switch at the
//     rehearsal, naming the registry and the setting, with nothing changed;
//   - the switch rehearses and verifies all three through containerd;
//   - a registry's CA broken after write-config fails verify, which rolls
//     back with every file as it was.
func (f *fixture) registryCases(ctx context.Context, t *testing.T) {
	regs, err := f.l.Registries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	for _, r := range []*lab.Registry{regs.Plain, regs.TLS, regs.Mirror} {
		repo := "reg/" + r.Kind
		if r == regs.Mirror {
			repo = "mirrored/app" // docker.io/mirrored/app, served by the mirror
		}
		if _, err := r.Push(ctx, repo, "1", "from the "+r.Kind+" registry"); err != nil {
			t.Fatal(err)
		}
		refs[r.Kind] = r.Host + "/" + repo + ":1"
	}
	refs[regs.Mirror.Kind] = "mirrored/app:1"

	// The plain registry, reached by a non-loopback address of this host
	// (the lab's nodes share its network): Docker treats it as insecure
	// only through the CIDR.
	ip := hostIPv4(t)
	fwd, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	go forward(fwd, regs.Plain.Host)
	cidrRef := fwd.Addr().String() + "/reg/plain:1"

	n := f.n1
	raw, err := n.Transport().ReadFile(ctx, "/etc/docker/daemon.json")
	if err != nil {
		t.Fatal(err)
	}
	var daemon map[string]any
	if err := json.Unmarshal(raw, &daemon); err != nil {
		t.Fatal(err)
	}
	daemon["insecure-registries"] = []string{regs.Plain.Host, ip + "/32"}
	daemon["registry-mirrors"] = []string{regs.Mirror.URL}
	cfg, _ := json.MarshalIndent(daemon, "", "  ")
	if err := n.Transport().WriteFile(ctx, "/etc/docker/daemon.json", cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*lab.Registry{regs.TLS, regs.Mirror} {
		ca, err := os.ReadFile(r.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Transport().WriteFile(ctx, "/etc/docker/certs.d/"+r.Host+"/ca.crt", ca, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Run(ctx, "systemctl", "reload", "docker.service"); err != nil { // dockerd reloads its registry settings on SIGHUP
		t.Fatal(err)
	}
	f.registryPod(ctx, t, "cidr", cidrRef)
	for kind, ref := range refs {
		f.registryPod(ctx, t, "reg-"+kind, ref)
	}
	before := snapshot(ctx, t, n)
	etc := treeSums(ctx, t, n, "/etc/containerd")

	t.Run("registry reachable only through a CIDR: stopped at the rehearsal, nothing changed", func(t *testing.T) {
		err := Run(ctx, f.options(t, n), "")
		var re *phases.RegistryError
		var pe *migrate.PhaseError
		if !errors.As(err, &re) || !errors.As(err, &pe) || pe.Phase != "rehearse" {
			t.Fatalf("switch with a registry only a CIDR makes insecure: %v; want a RegistryError in rehearse", err)
		}
		t.Logf("stopped: %v", err)
		if len(re.Failures) != 1 || re.Failures[0].Ref != cidrRef || re.Failures[0].Registry != fwd.Addr().String() {
			t.Errorf("failures %+v; want only %s", re.Failures, cidrRef)
		}
		named := false
		for _, u := range re.Unmapped {
			named = named || (u.Key == "insecure-registries" && u.Value == ip+"/32")
		}
		if !named {
			t.Errorf("the CIDR setting is not named: %+v", re.Unmapped)
		}
		// Never cordoned (the rehearsal comes before the cordon); Ready is
		// waited for below (the docker reload above may still be settling).
		node, err := f.c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Spec.Unschedulable || node.Annotations[PhaseAnnotation] == "cordon/running" || node.Annotations[PhaseAnnotation] == "cordon/done" {
			t.Errorf("the node was cordoned by a switch the rehearsal stopped (phase annotation %q)", node.Annotations[PhaseAnnotation])
		}
		if j, _ := (&journal.Store{T: n.Transport()}).Load(ctx, n.Name); j != nil && j.State("cordon") != "" {
			t.Errorf("the journal says cordon ran: %s", j.State("cordon"))
		}
		backOnDocker(ctx, t, f, n, before)
		if got := treeSums(ctx, t, n, "/etc/containerd"); got != etc {
			t.Errorf("/etc/containerd changed:\n%s\nwas:\n%s", got, etc)
		}
		if out, err := n.Run(ctx, "ls", "/var/lib/unshim/rehearse"); err == nil {
			t.Errorf("the rehearsal left its files: %s", out)
		}
		if out, _ := n.Run(ctx, "systemctl", "is-active", "unshim-rehearse.service"); strings.TrimSpace(string(out)) == "active" {
			t.Error("the rehearsal's containerd still runs")
		}
		f.released(ctx, t, n)
	})
	if err := f.c.CoreV1().Pods(ns).Delete(ctx, "cidr", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	f.waitPods(ctx, t, "the cidr pod gone", func(pods []corev1.Pod) bool { return count(pods, "cidr", "") == 0 })

	t.Run("switch with registries: rehearsed, then verified through containerd", func(t *testing.T) {
		if err := Run(ctx, f.options(t, n), ""); err != nil {
			t.Fatalf("switch: %v", err)
		}
		j, err := (&journal.Store{T: n.Transport()}).Load(ctx, n.Name)
		if err != nil || j == nil {
			t.Fatal(j, err)
		}
		rehearsed := j.Values[phases.RehearsedKey]
		for kind, ref := range refs {
			if !strings.Contains(rehearsed, ref) {
				t.Errorf("the %s registry's %s was not rehearsed (rehearsed: %q)", kind, ref, rehearsed)
			}
		}
		if rt, ok, _ := runtimeOf(ctx, t, f.c, n.Name); !strings.HasPrefix(rt, "containerd://") || !ok {
			t.Fatalf("after the switch: %s, ready+schedulable %t", rt, ok)
		}
		if err := Rollback(ctx, f.options(t, n)); err != nil {
			t.Fatal(err)
		}
		backOnDocker(ctx, t, f, n, before)
		if got := treeSums(ctx, t, n, "/etc/containerd"); got != etc {
			t.Errorf("/etc/containerd after the rollback:\n%s\nwas:\n%s", got, etc)
		}
	})

	t.Run("registry CA broken after write-config: verify fails, rolled back byte for byte", func(t *testing.T) {
		o := f.options(t, n)
		o.AfterPhase = func(name string) {
			if name != "write-config" {
				return
			}
			// The TLS registry's hosts.toml now trusts the mirror's CA.
			wrong, err := os.ReadFile(regs.Mirror.CAFile)
			if err == nil {
				err = n.Transport().WriteFile(ctx, "/etc/containerd/certs.d/"+regs.TLS.Host+"/ca.crt", wrong, 0o644)
			}
			if err != nil {
				t.Error(err)
			}
		}
		err := Run(ctx, o, "")
		var re *phases.RegistryError
		var pe *migrate.PhaseError
		if !errors.As(err, &re) || !errors.As(err, &pe) || pe.Phase != "verify" || !pe.RolledBack {
			t.Fatalf("switch with a broken registry CA: %v; want verify to fail on the registry and roll back", err)
		}
		if len(re.Failures) != 1 || re.Failures[0].Ref != refs[lab.RegistryTLS] {
			t.Errorf("failures %+v; want only %s", re.Failures, refs[lab.RegistryTLS])
		}
		backOnDocker(ctx, t, f, n, before)
		if got := treeSums(ctx, t, n, "/etc/containerd"); got != etc {
			t.Errorf("/etc/containerd after the rollback:\n%s\nwas:\n%s", got, etc)
		}
		f.released(ctx, t, n)
	})
}

// registryPod runs a bare pod of image on lab-node-1 (the images hold one
// file and no command: the pod never starts, but its image is the node's).
func (f *fixture) registryPod(ctx context.Context, t *testing.T, name, image string) {
	t.Helper()
	spec := podSpec(image)
	spec.NodeName = f.n1.Name
	if _, err := f.c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(name)}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// treeSums lists the files under dir with their sha256 ("" when there is no dir).
func treeSums(ctx context.Context, t *testing.T, n *lab.Node, dir string) string {
	t.Helper()
	out, err := n.Run(ctx, "find", dir, "-type", "f", "-exec", "sha256sum", "{}", "+")
	if err != nil {
		if _, statErr := n.Run(ctx, "test", "-e", dir); statErr != nil {
			return ""
		}
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// hostIPv4 is a non-loopback IPv4 address of this host, on an interface
// that is not one of the lab's or the container runtimes'.
func hostIPv4(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		if strings.HasPrefix(i.Name, "veth") || strings.HasPrefix(i.Name, "cni") || strings.HasPrefix(i.Name, "docker") || strings.HasPrefix(i.Name, "ve-") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	t.Fatal("this host has no non-loopback IPv4 address for the CIDR registry case")
	return ""
}

// forward relays every connection accepted on l to addr.
func forward(l net.Listener, addr string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer up.Close()
			go func() { _, _ = io.Copy(up, c) }()
			_, _ = io.Copy(c, up)
		}()
	}
}
