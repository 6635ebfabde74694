package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unshim/unshim/pkg/lab"
)

// TestLabLifecycle starts a second lab through the CLI, uses it, and tears
// it down, checking that no process of it is left behind.
func TestLabLifecycle(t *testing.T) {
	cache, err := lab.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	_, etcdErr := exec.LookPath("etcd")
	_, binErr := os.Stat(filepath.Join(cache, "bin", "kube-apiserver-"+lab.DefaultKubeVersion))
	if etcdErr != nil || binErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab prerequisites missing in CI: etcd: %v, kube-apiserver: %v", etcdErr, binErr)
		}
		t.Skipf("lab prerequisites missing: etcd: %v, kube-apiserver: %v", etcdErr, binErr)
	}
	dir := filepath.Join(t.TempDir(), "lab")

	r := run(t, "", "lab", "status", "--dir", dir)
	if r.code != 2 {
		t.Errorf("status of no lab: exit %d, want 2", r.code)
	}
	start := time.Now()
	r = run(t, "", "lab", "up", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("lab up: exit %d: %s", r.code, r.errOut)
	}
	t.Logf("lab up (binaries cached) took %s", time.Since(start))
	l, err := lab.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })
	if len(l.Processes) != 2 {
		t.Fatalf("processes %+v, want etcd and kube-apiserver", l.Processes)
	}
	if !strings.HasPrefix(l.APIServerURL, "https://127.0.0.1:") || !strings.HasPrefix(l.EtcdURL, "http://127.0.0.1:") {
		t.Errorf("lab listens beyond loopback: %s %s", l.APIServerURL, l.EtcdURL)
	}

	r = run(t, "", "lab", "status", "--dir", dir, "-o", "json")
	var st struct {
		Running    bool   `json:"running"`
		Kubeconfig string `json:"kubeconfig"`
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil || r.code != 0 || !st.Running || st.Kubeconfig != l.Kubeconfig {
		t.Fatalf("status: exit %d, %+v, %v", r.code, st, err)
	}
	// The kubeconfig it wrote works, with TLS verified against the lab's CA.
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Discovery().ServerVersion()
	if err != nil || v.GitVersion != lab.DefaultKubeVersion {
		t.Fatalf("server version %v, %v; want %s", v, err, lab.DefaultKubeVersion)
	}
	if _, err := c.CoreV1().ServiceAccounts("default").List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	// A second up finds the running lab and starts nothing new.
	r = run(t, "", "lab", "up", "--dir", dir)
	again, _ := lab.Load(dir)
	if r.code != 0 || again == nil || again.Processes[0].PID != l.Processes[0].PID {
		t.Errorf("second up: exit %d, %+v", r.code, again)
	}

	r = run(t, "", "lab", "down", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("lab down: exit %d: %s", r.code, r.errOut)
	}
	for _, p := range l.Processes {
		if _, err := os.Stat(filepath.Join("/proc", itoa(p.PID))); err == nil {
			if stat, _ := os.ReadFile(filepath.Join("/proc", itoa(p.PID), "cmdline")); strings.Contains(string(stat), p.Name) {
				t.Errorf("%s (pid %d) still running after lab down", p.Name, p.PID)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab directory left behind: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
