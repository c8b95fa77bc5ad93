#!/usr/bin/env bash
# Installs the Debian packages `make demo` needs when one is missing (as root, or through sudo).
# The control plane's own packages (prometheus, curl, openssl, …) come from .ci/install-deps.sh.
set -euo pipefail
packages=(postgresql postgresql-client redis-server pgbouncer python3 python3-sqlalchemy python3-psycopg2
  python3-redis python3-prometheus-client)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "demo/deps: Debian packages present"
  exit 0
fi
echo "demo/deps: apt-get install ${missing[*]}"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
$SUDO apt-get update -qq
# The postgresql and redis-server packages would start system services; policy-rc.d keeps them
# stopped (the demo runs its own instances on free ports).
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
$SUDO chmod +x /usr/sbin/policy-rc.d
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
