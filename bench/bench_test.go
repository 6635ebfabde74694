// Package bench measures `unshim check -A` against a bare paged LIST of the
// same objects, on the lab's real apiserver filled by the seed generator.
// Run it with `make bench`.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unshim/unshim/pkg/lab/labtest"
	"github.com/unshim/unshim/pkg/lab/seed"
)

// measurement is one run of a program: wall time and peak RSS.
type measurement struct {
	wall   time.Duration
	rssMiB float64
	stdout string
}

func measure(b *testing.B, name string, args ...string) measurement {
	b.Helper()
	c := exec.Command(name, args...)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	start := time.Now()
	err := c.Run()
	wall := time.Since(start)
	// unshim check exits 1 when it finds Docker dependencies, as it should here.
	if err != nil && c.ProcessState.ExitCode() != 1 {
		b.Fatalf("%s %v: %v\n%s", name, args, err, errOut.String())
	}
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	return measurement{wall: wall, rssMiB: float64(ru.Maxrss) / 1024, stdout: out.String()}
}

func median(ms []measurement) measurement {
	sort.Slice(ms, func(i, j int) bool { return ms[i].wall < ms[j].wall })
	return ms[len(ms)/2]
}

func maxRSS(ms []measurement) float64 {
	m := 0.0
	for _, x := range ms {
		if x.rssMiB > m {
			m = x.rssMiB
		}
	}
	return m
}

func sizes(b *testing.B) []int {
	s := os.Getenv("UNSHIM_BENCH_SIZES")
	if s == "" {
		s = "10000,100000"
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("UNSHIM_BENCH_SIZES: %v", err)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func build(b *testing.B, dir, pkg string) string {
	b.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	c := exec.Command("go", "build", "-o", out, pkg)
	c.Dir = "../"
	if msg, err := c.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// BenchmarkCheck seeds the lab up to each size in UNSHIM_BENCH_SIZES (pods,
// cumulative) and runs `unshim check -A` and the bare paged LIST three times
// each, reporting median wall time and peak RSS.
func BenchmarkCheck(b *testing.B) {
	l := labtest.Require(b)
	client, err := l.Client()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	unshim := build(b, dir, "./cmd/unshim")
	barelist := build(b, dir, "./bench/barelist")
	seeded := 0
	var rows []string
	for _, n := range sizes(b) {
		if n > seeded {
			start := time.Now()
			st, err := seed.Run(context.Background(), client, seed.Options{Pods: n - seeded, Prefix: fmt.Sprintf("bench%d", n), Nodes: 100, Workers: 48})
			if err != nil {
				b.Fatal(err)
			}
			fmt.Printf("seeded %d pods (%d Docker-dependent) in %s\n", st.Pods, st.DockerPods, time.Since(start).Round(time.Second))
			seeded = n
		}
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			var checks, lists []measurement
			for i := 0; i < b.N; i++ {
				for r := 0; r < 3; r++ {
					lists = append(lists, measure(b, barelist, "--kubeconfig", l.Kubeconfig))
					checks = append(checks, measure(b, unshim, "--kubeconfig", l.Kubeconfig, "check", "-A", "-o", "json", "-q"))
				}
			}
			c, li := median(checks), median(lists)
			ratio := c.wall.Seconds() / li.wall.Seconds()
			b.ReportMetric(c.wall.Seconds(), "check-s")
			b.ReportMetric(li.wall.Seconds(), "list-s")
			b.ReportMetric(ratio, "check/list")
			b.ReportMetric(maxRSS(checks), "check-peak-RSS-MiB")
			b.ReportMetric(maxRSS(lists), "list-peak-RSS-MiB")
			rows = append(rows, fmt.Sprintf("%7d pods  check %6.2fs  bare LIST %6.2fs  ratio %.2f  check peak RSS %5.1f MiB  LIST peak RSS %5.1f MiB  objects listed %s",
				n, c.wall.Seconds(), li.wall.Seconds(), ratio, maxRSS(checks), maxRSS(lists), strings.TrimSpace(li.stdout)))
		})
	}
	fmt.Println("\nunshim check -A vs bare paged LIST (median of 3, same lab, same run):")
	for _, r := range rows {
		fmt.Println(r)
	}
}
