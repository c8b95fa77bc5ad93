#!/usr/bin/env bash
# Installs what `make test`, `make demo` and the local control plane need and a bare machine of
# this project's kind lacks. Each step acts only when its output is missing or stale:
#   1. Debian packages: apt-install.sh installs the missing ones (as root, or through sudo)
#   2. npm dependencies: `npm ci` when node_modules lacks a package package-lock.json pins
#      (Node 24 comes from the `node` npm package; the machine's own Node only runs npm)
#   3. the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#      pause), built from their Go modules by
#      test/controlplane/build.sh, cached under ~/.cache/poolpilot by the hash of their pins
# After all three it writes .local/install.sha256, the hash of every input (this script, the
# package lists, package-lock.json, the control plane's go.mod/go.sum). A run whose inputs hash
# the same and whose outputs are all present prints one line and does nothing else: make runs
# this before every target that needs the machine set up.
#
#   install-deps.sh [all]  all three steps (make install, .ci/run)
#   install-deps.sh npm    step 2 only, silent when nothing is to do (make build, typecheck, lint)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { echo "install: $*" >&2; }

# Debian packages: curl/openssl/python3 for the control-plane scripts, prometheus (+ promtool),
# pgbouncer and postgresql-client for the PgBouncer reload test, lua5.4 for the Argo CD health
# check test, apache2-utils (htpasswd) for the Prometheus basic-auth test. postgresql,
# redis-server and the python3-* packages run the demo's workload (its tests too);
# prometheus-postgres-exporter exports pg_settings_max_connections for a ConnectionBudget's
# maxConnectionsQuery; prometheus-pgbouncer-exporter exports PgBouncer's pools (pgbouncer_active_clients,
# pgbouncer_pool_size, ...) for a policy's pgbouncer section (run through
# test/support/debian-pgbouncer-exporter.py, see there why). apt-install.sh keeps the services
# these packages ship stopped.
# buildah and mmdebstrap build the operator image (`make image`, image/build.sh); containerd,
# runc and containernetworking-plugins run the local node (local-up.sh NODE=1).
debian_packages=(curl openssl python3 ca-certificates prometheus pgbouncer postgresql-client lua5.4 apache2-utils
  postgresql redis-server python3-sqlalchemy python3-psycopg2 python3-redis python3-prometheus-client
  prometheus-postgres-exporter prometheus-pgbouncer-exporter buildah mmdebstrap
  containerd runc containernetworking-plugins)
stamp=.local/install.sha256
# The bare plane's two, the controllers a test starts on a plane of its own (local-up.sh
# CONTROLLERS=1) and the node's kubelet and pause (NODE=1). The kube binaries share most packages
# with kube-apiserver: about 2 minutes more than it alone. Not here: the node plane's Prometheus
# (build/prometheus/), which nothing `make test` runs needs; local-up.sh NODE=1 builds it once
# (about 4 minutes cold) and caches it the same way.
control_plane=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet pause)

# Prints why node_modules needs `npm ci`, or nothing when it is current.
npm_tree_difference() {
  if [[ ! -e node_modules ]]; then
    echo "no node_modules yet"
  elif [[ ! -x node_modules/.bin/node ]]; then
    echo "node_modules/.bin/node is missing"
  else
    node .ci/node-modules-current.js || true
  fi
}

npm_tree_current() {
  [[ -z $(npm_tree_difference) ]]
}

install_npm_dependencies() {
  local difference
  difference=$(npm_tree_difference)
  if [[ -z $difference ]]; then
    [[ ${1:-} == quiet ]] || log "npm dependencies match package-lock.json"
    return
  fi
  # npm ci empties the directory a symlinked node_modules points to, under every tree sharing it.
  if [[ -L node_modules ]]; then
    log "node_modules is a symlink to $(readlink node_modules) and needs npm ci ($difference): run 'npm ci' where it points, or remove the link"
    exit 1
  fi
  log "npm ci ($difference)"
  npm ci --no-fund --no-audit
  log "node for poolpilot and its tests is $(node_modules/.bin/node --version)"
}

if [[ ${1:-all} == npm ]]; then
  install_npm_dependencies quiet
  exit 0
fi
[[ ${1:-all} == all ]] || { echo "usage: $0 [all | npm]" >&2; exit 2; }

inputs_hash() {
  cat .ci/install-deps.sh .ci/apt-install.sh .ci/node-modules-current.js package-lock.json \
    test/controlplane/build.sh test/controlplane/build/*/go.mod test/controlplane/build/*/go.sum |
    sha256sum | cut -d' ' -f1
}

outputs_present() {
  local installed
  installed=$(dpkg-query -W -f='${Status}\n' "${debian_packages[@]}" 2>/dev/null | grep -c 'install ok installed') || return 1
  ((installed == ${#debian_packages[@]})) &&
    command -v kubectl >/dev/null &&
    npm_tree_current &&
    for component in "${control_plane[@]}"; do
      [[ -x $(bash test/controlplane/build.sh path "$component") ]] || return 1
    done
}

key=$(inputs_hash)
if [[ -f $stamp && $(<"$stamp") == "$key" ]] && outputs_present; then
  log "up to date (Debian packages, npm dependencies, control plane; inputs hash ${key:0:12})"
  exit 0
fi

started=$SECONDS
log "[1/3] Debian packages"
bash .ci/apt-install.sh install "${debian_packages[@]}"

log "[2/3] npm dependencies"
install_npm_dependencies

log "[3/3] control plane: ${control_plane[*]} (cached under ${POOLPILOT_CACHE:-~/.cache/poolpilot})"
# This machine kind ships Go at /usr/local/go without putting it on every PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
bash test/controlplane/build.sh component "${control_plane[@]}" >/dev/null

# kubectl is not a Debian package; this machine kind ships it. The tests and the demo apply
# manifests with it.
command -v kubectl >/dev/null || { log "kubectl is not on PATH: install kubectl 1.31-1.33 (the tests and the demo use it)"; exit 1; }

mkdir -p "$(dirname "$stamp")"
echo "$key" >"$stamp"
log "done in $((SECONDS - started))s (inputs hash ${key:0:12} in $stamp)"
