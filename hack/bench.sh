#!/usr/bin/env bash
# Benchmarks on a lab of their own: `unshim check -A` against a bare paged
# LIST at 10k and 100k pods (UNSHIM_BENCH_SIZES to change), wall time and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
export UNSHIM_LAB="${UNSHIM_BENCH_LAB:-/dev/shm/unshim-lab-bench}"
bin/unshim lab down --dir "$UNSHIM_LAB" >/dev/null 2>&1 || true
trap 'bin/unshim lab down --dir "$UNSHIM_LAB" >/dev/null' EXIT
bin/unshim lab up --dir "$UNSHIM_LAB"
go test -run '^$' -bench . -benchtime 1x -timeout 90m ./bench/ "$@"
