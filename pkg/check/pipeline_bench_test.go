package check_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unshim/unshim/pkg/check"
	"github.com/unshim/unshim/pkg/check/rules"
	"github.com/unshim/unshim/pkg/manifest"
)

// BenchmarkManifestPipeline runs the manifest reader and the rules
// in-process over 1,000 files made from the corpus as bench/manifests_test.go
// makes them (names made unique per copy), for profiling the reader and the
// rules without the binary's start-up:
//
//	go test -run '^$' -bench ManifestPipeline -cpuprofile cpu.out ./pkg/check/
func BenchmarkManifestPipeline(b *testing.B) {
	src, err := filepath.Glob("testdata/corpus/*.yaml")
	if err != nil || len(src) == 0 {
		b.Fatalf("corpus: %v (%d files)", err, len(src))
	}
	sort.Strings(src)
	dir := b.TempDir()
	for i := 0; i < 1000; i++ {
		data, err := os.ReadFile(src[i%len(src)])
		if err != nil {
			b.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "\n  name: ", fmt.Sprintf("\n  name: c%04d-", i))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%04d-%s", i, filepath.Base(src[i%len(src)]))), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	rs, err := rules.All(rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := check.Run(context.Background(), &manifest.Source{Paths: []string{dir}}, rs); err != nil {
			b.Fatal(err)
		}
	}
}
