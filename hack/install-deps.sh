#!/usr/bin/env bash
# Installs the Debian packages listed in hack/apt-packages.txt that are missing.
# Idempotent: a machine that has them all is left alone and nothing is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < hack/apt-packages.txt
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Debian's etcd-server (and similar) try to start their service; there is no systemd here: ignore that.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
