#!/usr/bin/env bash
# Runs every test: go test over all packages against a lab of its own (a real
# etcd + kube-apiserver), which it starts and always stops. `make test` runs
# the linters (make lint) first.
set -euo pipefail
cd "$(dirname "$0")/.."
export UNSHIM_LAB="${UNSHIM_TEST_LAB:-/dev/shm/unshim-lab-test}"
bin/unshim lab down --dir "$UNSHIM_LAB" >/dev/null 2>&1 || true
trap 'bin/unshim lab down --dir "$UNSHIM_LAB" >/dev/null' EXIT
bin/unshim lab up --dir "$UNSHIM_LAB"
# Build everything the lab can run (controllers, kubelet, containerd 2.x, the nodes'
# Debian root; root only) into the cache first, so no test spends its time limit on it.
if [[ $(id -u) -eq 0 ]]; then bin/unshim lab prepare; fi
export UNSHIM_BIN="$PWD/bin/unshim"
# pkg/nodeswitch alone (two labs of real nodes, every fault of the switch) runs 25-40 min
# on a 2-core machine next to the other packages: its limit is 60 min.
go test -count=1 -timeout 60m ./... "$@"
