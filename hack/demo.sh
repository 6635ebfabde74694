#!/usr/bin/env bash
# The main job on the built-in lab: start it, seed it with nodes and workloads,
# then take the inventory and run the impact check. The lab stays up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bin/unshim lab up
export KUBECONFIG="$(bin/unshim lab status -o kubeconfig)"
bin/unshim lab seed --pods 300 --docker-percent 8
echo; echo "\$ unshim nodes -o wide"
bin/unshim nodes -o wide
echo; echo "\$ unshim check -A"
rc=0; bin/unshim check -A || rc=$?
echo; echo "(unshim check exited $rc: 1 means findings at or above --fail-on=high)"
echo; echo "\$ unshim check -f examples/   # manifests, as helm template renders them"
rc=0; bin/unshim check -f examples/ || rc=$?
echo "The lab is still running: KUBECONFIG=$KUBECONFIG; stop it with: bin/unshim lab down"
