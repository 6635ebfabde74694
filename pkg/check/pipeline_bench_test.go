package check_test

import (
	"context"
	"os"
	"testing"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/manifest"
)

// BenchmarkManifestPipeline runs the reader and the rules in-process over
// the directory in UNSHIM_BENCH_DIR, for profiling (-cpuprofile).
func BenchmarkManifestPipeline(b *testing.B) {
	dir := os.Getenv("UNSHIM_BENCH_DIR")
	if dir == "" {
		b.Skip("UNSHIM_BENCH_DIR not set")
	}
	rs, err := rules.All(rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := check.Run(context.Background(), &manifest.Source{Paths: []string{dir}}, rs); err != nil {
			b.Fatal(err)
		}
	}
}
