#!/usr/bin/env bash
# A cluster rollout on the built-in lab: three real Docker nodes with the
# controllers, a Deployment of two replicas under a PodDisruptionBudget
# (minAvailable 1) and a DaemonSet, and a RuntimeMigration (a canary, then one node at a
# time) driven to its end by `unshim rollout run`; then the report, as
# Markdown on stdout and as an HTML page. The lab stays up afterwards.
# Needs root (the nodes are systemd-nspawn machines).
set -euo pipefail
cd "$(dirname "$0")/.."
lab="${UNSHIM_LAB:-/dev/shm/unshim-lab-rollout-demo}"
out="${DEMO_OUT:-$PWD/bin/demo-rollout}"
mkdir -p "$out"
bin/unshim lab up --nodes 3 --controllers --dir "$lab"
export KUBECONFIG="$(bin/unshim lab status -o kubeconfig --dir "$lab")"
pids=$(go run ./hack/demo-rollout -lab "$lab" -rollout-file "$out/rollout.yaml")
echo; echo "\$ cat rollout.yaml"; cat "$out/rollout.yaml"
echo; echo "\$ unshim rollout plan -f rollout.yaml"
bin/unshim rollout plan -f "$out/rollout.yaml"
echo; echo "\$ unshim rollout create -f rollout.yaml"
bin/unshim rollout create -f "$out/rollout.yaml"
echo; echo "\$ unshim rollout run demo --via nsenter $pids"
# shellcheck disable=SC2086 # the flags are words
bin/unshim rollout run demo --via nsenter $pids
echo; echo "\$ unshim rollout status demo"
bin/unshim rollout status demo
echo; echo "\$ unshim rollout report demo"
bin/unshim rollout report demo | tee "$out/report.md"
bin/unshim rollout report demo -o html --output-file "$out/report.html"
echo
echo "The report: $out/report.html (and $out/report.md)."
echo "Switch the nodes back with: bin/unshim rollout undo demo --via nsenter $pids"
echo "The lab is still running: KUBECONFIG=$KUBECONFIG; stop it with: bin/unshim lab down --dir $lab"
