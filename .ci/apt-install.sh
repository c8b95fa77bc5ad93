#!/usr/bin/env bash
# Installs the named Debian packages that are missing (as root, or through sudo). Services the
# packages would start (prometheus, postgresql, redis-server, pgbouncer, the exporters) stay
# stopped: the project runs its own instances on free loopback ports. Usage: apt-install.sh LABEL PKG...
set -euo pipefail
label=$1; shift
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "$label: Debian packages present"
  exit 0
fi
echo "$label: apt-get install ${missing[*]}"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
$SUDO apt-get update -qq
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
$SUDO chmod +x /usr/sbin/policy-rc.d
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
