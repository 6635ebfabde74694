package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// manifestCorpus writes n manifest files into dir, cycling through the
// hand-made corpus of real-chart patterns (agents, log shippers, CI with
// Docker-in-Docker, look-alikes, old API groups, custom resources), each
// copy with its object names made unique. It returns the total size.
func manifestCorpus(b *testing.B, dir string, n int) int64 {
	b.Helper()
	src, err := filepath.Glob("../pkg/check/testdata/corpus/*.yaml")
	if err != nil || len(src) == 0 {
		b.Fatalf("corpus: %v (%d files)", err, len(src))
	}
	sort.Strings(src)
	var total int64
	for i := 0; i < n; i++ {
		data, err := os.ReadFile(src[i%len(src)])
		if err != nil {
			b.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "\n  name: ", fmt.Sprintf("\n  name: c%04d-", i))
		f := filepath.Join(dir, fmt.Sprintf("m%04d-%s", i, filepath.Base(src[i%len(src)])))
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(text))
	}
	return total
}

// BenchmarkManifests runs `unshim check -f` on 10 and on 1,000 manifest
// files (the first 10 are the same files), and a plain text search of the
// 1,000 for docker.sock (what `kubectl dds` does), five times each, in one
// run. It reports median wall time, peak RSS and the ratios the check is
// held to: 1,000 files within 5x the wall time and 1.1x the peak memory of
// 10 files.
func BenchmarkManifests(b *testing.B) {
	dir := b.TempDir()
	unshim := build(b, dir, "./cmd/unshim")
	search := build(b, dir, "./bench/textsearch")
	small, large := filepath.Join(dir, "m10"), filepath.Join(dir, "m1000")
	for _, d := range []string{small, large} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	manifestCorpus(b, small, 10)
	size := manifestCorpus(b, large, 1000)
	args := func(d string) []string { return []string{"check", "-f", d, "-o", "json", "--fail-on", "none"} }
	for i := 0; i < b.N; i++ {
		var s10, s1000, grep []measurement
		for r := 0; r < 5; r++ {
			s10 = append(s10, measure(b, unshim, args(small)...))
			s1000 = append(s1000, measure(b, unshim, args(large)...))
			grep = append(grep, measure(b, search, large))
		}
		a, z, g := median(s10), median(s1000), median(grep)
		wallRatio := z.wall.Seconds() / a.wall.Seconds()
		rssRatio := maxRSS(s1000) / maxRSS(s10)
		grepRatio := z.wall.Seconds() / g.wall.Seconds()
		b.ReportMetric(a.wall.Seconds(), "check10-s")
		b.ReportMetric(z.wall.Seconds(), "check1000-s")
		b.ReportMetric(g.wall.Seconds(), "textsearch1000-s")
		b.ReportMetric(wallRatio, "wall-1000/10")
		b.ReportMetric(rssRatio, "peakRSS-1000/10")
		b.ReportMetric(grepRatio, "check/textsearch")
		cpuRatio := medianCPU(s1000).Seconds() / medianCPU(s10).Seconds()
		b.ReportMetric(cpuRatio, "cpu-1000/10")
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("\nunshim check -f vs a plain text search (median of 5, same run; 1,000 files = %.1f MB; load average %s):\n",
			float64(size)/1e6, strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
		fmt.Printf("  check -f 10 files     %6.3fs  CPU %6.3fs  peak RSS %5.1f MiB\n", a.wall.Seconds(), medianCPU(s10).Seconds(), maxRSS(s10))
		fmt.Printf("  check -f 1,000 files  %6.3fs  CPU %6.3fs  peak RSS %5.1f MiB  (%.1fx the wall time of 10 files, goal <= 5; %.1fx the CPU time; %.2fx the memory, goal <= 1.10)\n",
			z.wall.Seconds(), medianCPU(s1000).Seconds(), maxRSS(s1000), wallRatio, cpuRatio, rssRatio)
		fmt.Printf("  text search 1,000     %6.3fs  peak RSS %5.1f MiB  (check is %.1fx its wall time; %s files contain docker.sock)\n",
			g.wall.Seconds(), maxRSS(grep), grepRatio, strings.TrimSpace(g.stdout))
	}
}

func medianCPU(ms []measurement) time.Duration {
	cs := make([]time.Duration, len(ms))
	for i, m := range ms {
		cs[i] = m.cpu
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i] < cs[j] })
	return cs[len(cs)/2]
}
