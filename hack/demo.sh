#!/usr/bin/env bash
# The main job on the built-in lab: start it with two real Docker nodes
# (lab-node-1 on dockershim, lab-node-2 on the lab's cri-dockerd with the
# newest kubelet the lab builds), seed it with workloads, take the inventory, run the impact
# check, then switch the real node to containerd and show the inventory again.
# The lab stays up afterwards. Needs root (the node is a systemd-nspawn machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bin/unshim lab up --nodes 1
bin/unshim lab up --nodes 2 --node-shape cri-dockerd --kubelet-version v1.30.14
export KUBECONFIG="$(bin/unshim lab status -o kubeconfig)"
bin/unshim lab seed --pods 300 --docker-percent 8
echo; echo "\$ unshim nodes -o wide"
bin/unshim nodes -o wide
echo; echo "\$ unshim check -A"
rc=0; bin/unshim check -A || rc=$?
echo; echo "(unshim check exited $rc: 1 means findings at or above --fail-on=high)"
echo; echo "\$ unshim check -f examples/   # manifests, as helm template renders them"
rc=0; bin/unshim check -f examples/ || rc=$?

# The lab node's systemd, which unshim reaches with nsenter (on a real node:
# --via local on the node, --via ssh, or --via pod).
pid=$(bin/unshim lab status -o json | sed -n 's/.*"leaderPID": \([0-9]*\).*/\1/p' | head -n 1)
echo; echo "\$ unshim migrate node lab-node-1 --dry-run"
bin/unshim migrate node lab-node-1 --via nsenter --target-pid "$pid" --dry-run
echo; echo "\$ unshim migrate node lab-node-1 --to containerd"
bin/unshim migrate node lab-node-1 --via nsenter --target-pid "$pid" --to containerd
echo; echo "\$ unshim nodes lab-node-1 -o wide   # after"
bin/unshim nodes lab-node-1 -o wide
echo; echo "\$ unshim nodes lab-node-2 -o wide   # the cri-dockerd node, beside it"
bin/unshim nodes lab-node-2 -o wide
echo "The lab is still running: KUBECONFIG=$KUBECONFIG; stop it with: bin/unshim lab down"
