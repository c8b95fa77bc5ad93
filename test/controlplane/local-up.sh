#!/usr/bin/env bash
# Starts a real local control plane on 127.0.0.1 with free ports, state in .local/ (git-ignored):
#   etcd, kube-apiserver (RBAC on, static admin token) and Prometheus (Debian package,
#   scrape_interval 1s, file_sd targets from .local/prometheus/targets/*.json).
# Writes .local/kubeconfig and .local/env (KUBECONFIG=..., PROMETHEUS_URL=...), waits until
# /readyz is ok and Prometheus is ready. Idempotent: a running, healthy plane is left as it is;
# a partly running one is stopped and started afresh. Stop it with local-down.sh. Each
# component's argv is kept in .local/cmd/<name>.args for restart.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}
pids=$state/pids
logs=$state/logs

log() { echo "local-up: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"

healthy() {
  [[ -f $state/env ]] || return 1
  # shellcheck disable=SC1091
  source "$state/env"
  for name in etcd kube-apiserver prometheus; do
    [[ -f $pids/$name.pid ]] && kill -0 "$(cat "$pids/$name.pid")" 2>/dev/null || return 1
  done
  curl -fsk --max-time 2 -H "Authorization: Bearer $(cat "$state/admin-token")" "$KUBE_APISERVER_URL/readyz" >/dev/null &&
    curl -fs --max-time 2 "$PROMETHEUS_URL/-/ready" >/dev/null
}

if healthy; then
  log "already up ($KUBE_APISERVER_URL, $PROMETHEUS_URL)"
  exit 0
fi
if compgen -G "$pids/*.pid" >/dev/null; then
  log "a previous plane is partly running; stopping it first"
  bash "$here/local-down.sh"
fi

for tool in curl openssl python3 prometheus; do
  command -v "$tool" >/dev/null || { log "'$tool' is missing: run 'make install' (Debian: curl openssl python3 prometheus)"; exit 1; }
done

mapfile -t bins < <(bash "$here/build.sh" all)
etcd_bin=${bins[0]}
apiserver_bin=${bins[1]}

free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()' "$1"
}
read -r etcd_client_port etcd_peer_port apiserver_port prometheus_port < <(free_ports 4)

rm -rf "$state/etcd" "$state/apiserver" "$state/prometheus/data"
mkdir -p "$pids" "$logs" "$state/cmd" "$state/apiserver/certs" "$state/prometheus/targets"

start() { # name, command...
  local name=$1; shift
  # The exact argv, NUL-separated, so restart.sh can start the component again the same way.
  printf '%s\0' "$@" >"$state/cmd/$name.args"
  setsid "$@" >"$logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$pids/$name.pid"
  log "started $name (pid $!, log $logs/$name.log)"
}


start etcd "$etcd_bin" --name local --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_client_port" --advertise-client-urls "http://127.0.0.1:$etcd_client_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "local=http://127.0.0.1:$etcd_peer_port" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -fs "http://127.0.0.1:$etcd_client_port/health"

openssl genrsa -out "$state/apiserver/sa.key" 2048 2>/dev/null
openssl rsa -in "$state/apiserver/sa.key" -pubout -out "$state/apiserver/sa.pub" 2>/dev/null
admin_token=$(openssl rand -hex 24)
echo -n "$admin_token" >"$state/admin-token"
echo "$admin_token,poolpilot-admin,poolpilot-admin,system:masters" >"$state/apiserver/tokens.csv"

start kube-apiserver "$apiserver_bin" \
  --etcd-servers "http://127.0.0.1:$etcd_client_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
  --cert-dir "$state/apiserver/certs" \
  --token-auth-file "$state/apiserver/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$state/apiserver/sa.pub" \
  --service-account-signing-key-file "$state/apiserver/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --endpoint-reconciler-type none \
  --disable-admission-plugins ServiceAccount
apiserver_url="https://127.0.0.1:$apiserver_port"
wait_for kube-apiserver 90 curl -fsk -H "Authorization: Bearer $admin_token" "$apiserver_url/readyz"

cat >"$state/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $apiserver_url
    # The serving certificate is self-signed by kube-apiserver into .local/apiserver/certs.
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $admin_token
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KUBECONFIG

cat >"$state/prometheus/prometheus.yml" <<PROMCONFIG
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: local
    file_sd_configs:
      - files: ['$state/prometheus/targets/*.json']
        refresh_interval: 1s
PROMCONFIG
start prometheus prometheus --config.file "$state/prometheus/prometheus.yml" \
  --storage.tsdb.path "$state/prometheus/data" --web.listen-address "127.0.0.1:$prometheus_port" \
  --storage.tsdb.retention.time 1d
prometheus_url="http://127.0.0.1:$prometheus_port"
wait_for prometheus 60 curl -fs "$prometheus_url/-/ready"

cat >"$state/env" <<ENV
KUBECONFIG=$state/kubeconfig
KUBE_APISERVER_URL=$apiserver_url
PROMETHEUS_URL=$prometheus_url
PROMETHEUS_TARGETS_DIR=$state/prometheus/targets
ENV
log "up: kube-apiserver $apiserver_url, prometheus $prometheus_url; source $state/env"
