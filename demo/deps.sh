#!/usr/bin/env bash
# Installs the Debian packages `make demo` needs when one is missing (as root, or through sudo).
# The control plane's own packages (prometheus, curl, openssl, …) come from .ci/install-deps.sh.
set -euo pipefail
packages=(postgresql postgresql-client redis-server pgbouncer python3 python3-sqlalchemy python3-psycopg2
  python3-redis python3-prometheus-client)
bash "$(dirname "${BASH_SOURCE[0]}")/../.ci/apt-install.sh" demo/deps "${packages[@]}"
