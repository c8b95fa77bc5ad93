#!/usr/bin/env bash
# Installs what a bare machine of this project's kind lacks: Debian packages for the local
# control plane and the integration tests, and the npm dependencies (Node 24 comes from the
# `node` npm package; the machine's own Node only runs npm). Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages: curl/openssl/python3 for the control-plane scripts, prometheus (+ promtool),
# pgbouncer and postgresql-client for the PgBouncer reload test, lua5.4 for the Argo CD health check test, apache2-utils (htpasswd) for the Prometheus basic-auth test.
# postgresql, redis-server and the python3-* packages run the demo's workload (its tests too).
debian_packages=(curl openssl python3 ca-certificates prometheus pgbouncer postgresql-client lua5.4 apache2-utils
  postgresql redis-server python3-sqlalchemy python3-psycopg2 python3-redis python3-prometheus-client)
bash .ci/apt-install.sh install-deps "${debian_packages[@]}"

command -v go >/dev/null || { echo "install-deps: Go >= 1.23 is required to build etcd and kube-apiserver; this machine kind ships it at /usr/local/go" >&2; exit 1; }

echo "install-deps: npm ci"
npm ci --no-fund --no-audit
echo "install-deps: node for tests is $(node_modules/.bin/node --version)"

echo "install-deps: building the control plane (cached under ${POOLPILOT_CACHE:-~/.cache/poolpilot})"
bash test/controlplane/build.sh all
