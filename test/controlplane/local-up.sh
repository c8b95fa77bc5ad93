#!/usr/bin/env bash
# Starts a real local control plane on 127.0.0.1 with free ports, state in .local/ (git-ignored):
#   etcd, kube-apiserver (RBAC on, static admin token) and Prometheus (Debian package,
#   scrape_interval 1s, file_sd targets from .local/prometheus/targets/*.json; with NODE=1 also
#   the node's Pods by kubernetes_sd).
# Writes .local/kubeconfig and .local/env (KUBECONFIG=..., PROMETHEUS_URL=...), waits until
# /readyz is ok and Prometheus is ready. Idempotent: a running, healthy plane is left as it is;
# a partly running one is stopped and started afresh. Stop it with local-down.sh. Each
# component's argv is kept in .local/cmd/<name>.args for restart.sh.
#
#   CONTROLLERS=1  also run kube-controller-manager and kube-scheduler (built and cached like
#                  kube-apiserver): real ReplicaSets, rollouts, namespace deletion, garbage
#                  collection, ServiceAccounts. Opt-in: the bare plane's tests drive Deployment
#                  status by hand, which a real deployment controller would overwrite.
#   NODE=1         also a node (implies CONTROLLERS=1): containerd and runc from Debian, a
#                  kubelet built from the module, a CNI bridge for pods on this machine only.
#                  node.sh says how, and which settings differ from a normal node and why.
#                  One node per machine (a bridge, sysctls and /var/log/pods are machine-wide).
#
# POOLPILOT_LOCAL moves the state directory, so a test can run a plane of its own beside the
# shared one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}
pids=$state/pids
logs=$state/logs

log() { echo "local-up: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"

node=${NODE:-0}
controllers=${CONTROLLERS:-0}
[[ $node == 1 ]] && controllers=1
components=(etcd kube-apiserver prometheus)
[[ $controllers == 1 ]] && components+=(kube-controller-manager kube-scheduler)
[[ $node == 1 ]] && components+=(containerd kubelet)

healthy() {
  # A plane started before components were recorded is the bare one.
  local running="etcd kube-apiserver prometheus"
  [[ -f $state/components ]] && running=$(<"$state/components")
  [[ -f $state/env && $running == "${components[*]}" ]] || return 1
  # shellcheck disable=SC1091
  source "$state/env"
  for name in "${components[@]}"; do
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
  log "a previous plane is partly running or runs other components than '${components[*]}'; stopping it first"
  bash "$here/local-down.sh"
fi

for tool in curl openssl python3 prometheus; do
  command -v "$tool" >/dev/null || { log "'$tool' is missing: run 'make install' (Debian: curl openssl python3 prometheus)"; exit 1; }
done

# Where the API server and Prometheus listen: loopback, or with a node the bridge's address,
# which its pods reach too (node.sh).
listen_ip=127.0.0.1
if [[ $node == 1 ]]; then
  # shellcheck source=node.sh
  source "$here/node.sh"
  node_preflight
  listen_ip=$node_gateway
fi

mapfile -t bins < <(bash "$here/build.sh" all)
etcd_bin=${bins[0]}
apiserver_bin=${bins[1]}
# The node's Pods are found by Kubernetes service discovery, which Debian's Prometheus lacks: with
# a node, Prometheus 2.55 built from its module (build/prometheus/go.mod says why that version).
prometheus_bin=prometheus
[[ $node == 1 ]] && prometheus_bin=$(bash "$here/build.sh" component prometheus)
if [[ $controllers == 1 ]]; then
  mapfile -t bins < <(bash "$here/build.sh" component kube-controller-manager kube-scheduler)
  controller_manager_bin=${bins[0]}
  scheduler_bin=${bins[1]}
fi

free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()' "$1"
}
read -r etcd_client_port etcd_peer_port apiserver_port prometheus_port controller_manager_port scheduler_port \
  kubelet_port kubelet_healthz_port < <(free_ports 8)

unmount_under "$state"
rm -rf "$state/etcd" "$state/apiserver" "$state/prometheus/data" "$state/controllers" "$state/node" "$state/components"
mkdir -p "$pids" "$logs" "$state/cmd" "$state/apiserver/certs" "$state/prometheus/targets"

start() { # name, command...
  local name=$1; shift
  # The exact argv, NUL-separated, so restart.sh can start the component again the same way.
  printf '%s\0' "$@" >"$state/cmd/$name.args"
  setsid "$@" >"$logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$pids/$name.pid"
  log "started $name (pid $!, log $logs/$name.log)"
}


if [[ $node == 1 ]]; then node_network_up; fi
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
# The controllers sign in as the users the API server's bootstrap RBAC already binds
# (system:kube-controller-manager, system:kube-scheduler), with static tokens like the admin's:
# a normal cluster gives them client certificates, which would need a CA here for nothing more.
controller_manager_token=$(openssl rand -hex 24)
scheduler_token=$(openssl rand -hex 24)
echo "$controller_manager_token,system:kube-controller-manager,system:kube-controller-manager" >>"$state/apiserver/tokens.csv"
echo "$scheduler_token,system:kube-scheduler,system:kube-scheduler" >>"$state/apiserver/tokens.csv"
# Without a controller-manager nothing creates the `default` ServiceAccount a Pod is admitted
# with, so the bare plane turns the ServiceAccount admission plugin off; with one it stays on, as
# in a normal cluster (Pods get their token volume).
service_account_admission=(--disable-admission-plugins ServiceAccount)
[[ $controllers == 1 ]] && service_account_admission=()
# A node signs in as system:node:<name> in group system:nodes, which the Node authorizer and the
# NodeRestriction admission plugin confine to its own Node and Pods, as in a normal cluster.
authorization_mode=RBAC
node_admission=()
if [[ $node == 1 ]]; then
  kubelet_token=$(openssl rand -hex 24)
  echo "$kubelet_token,system:node:$node_name,system:node:$node_name,system:nodes" >>"$state/apiserver/tokens.csv"
  authorization_mode=Node,RBAC
  node_admission=(--enable-admission-plugins NodeRestriction)
  # For `kubectl logs` / `exec`: the API server's client certificate towards the kubelet.
  make_kubelet_client_certificate
  node_admission+=(--kubelet-client-certificate "$state/node/pki/apiserver-kubelet-client.crt"
    --kubelet-client-key "$state/node/pki/apiserver-kubelet-client.key"
    # The node's name resolves nowhere; its InternalIP is the bridge's address (as kubeadm sets).
    --kubelet-preferred-address-types InternalIP,ExternalIP,Hostname)
fi

start kube-apiserver "$apiserver_bin" \
  --etcd-servers "http://127.0.0.1:$etcd_client_port" \
  --bind-address "$listen_ip" --advertise-address "$listen_ip" --secure-port "$apiserver_port" \
  --cert-dir "$state/apiserver/certs" \
  --token-auth-file "$state/apiserver/tokens.csv" \
  --authorization-mode "$authorization_mode" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$state/apiserver/sa.pub" \
  --service-account-signing-key-file "$state/apiserver/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --endpoint-reconciler-type none \
  "${service_account_admission[@]}" "${node_admission[@]}"
apiserver_url="https://$listen_ip:$apiserver_port"
wait_for kube-apiserver 90 curl -fsk -H "Authorization: Bearer $admin_token" "$apiserver_url/readyz"

write_kubeconfig() { # path, user, token
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $apiserver_url
    # The serving certificate is self-signed by kube-apiserver into .local/apiserver/certs.
    insecure-skip-tls-verify: true
users:
- name: $2
  user:
    token: $3
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
KUBECONFIG
}
write_kubeconfig "$state/kubeconfig" admin "$admin_token"

if [[ $controllers == 1 ]]; then
  mkdir -p "$state/controllers"
  # The CA that signed kube-apiserver's self-signed serving certificate: the last certificate in
  # the bundle it wrote. The controller-manager publishes it to every namespace as the
  # kube-root-ca.crt ConfigMap, which each Pod's token volume mounts.
  awk '/BEGIN CERTIFICATE/ { cert = "" } { cert = cert $0 "\n" } END { printf "%s", cert }' \
    "$state/apiserver/certs/apiserver.crt" >"$state/apiserver/ca.crt"
  write_kubeconfig "$state/controllers/controller-manager.kubeconfig" system:kube-controller-manager "$controller_manager_token"
  write_kubeconfig "$state/controllers/scheduler.kubeconfig" system:kube-scheduler "$scheduler_token"
  # One instance of each: no leader election (it would only delay the start). Their HTTPS
  # ports (for /healthz) are free ports on loopback, not 10257/10259, so planes can run side by
  # side. --use-service-account-credentials: each controller acts as its own ServiceAccount in
  # kube-system with its own bootstrap ClusterRole, as kubeadm runs it, so RBAC gaps show here
  # as they would there. --service-account-private-key-file: the key kube-apiserver signs tokens
  # with, for the token controller. --root-ca-file: see above.
  start kube-controller-manager "$controller_manager_bin" \
    --kubeconfig "$state/controllers/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controllers/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/controllers/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$controller_manager_port" \
    --cert-dir "$state/controllers/controller-manager-certs" \
    --leader-elect=false \
    --use-service-account-credentials \
    --service-account-private-key-file "$state/apiserver/sa.key" \
    --root-ca-file "$state/apiserver/ca.crt"
  start kube-scheduler "$scheduler_bin" \
    --kubeconfig "$state/controllers/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/controllers/scheduler.kubeconfig" \
    --authorization-kubeconfig "$state/controllers/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$scheduler_port" \
    --cert-dir "$state/controllers/scheduler-certs" \
    --leader-elect=false
  wait_for kube-controller-manager 60 curl -fsk "https://127.0.0.1:$controller_manager_port/healthz"
  wait_for kube-scheduler 60 curl -fsk "https://127.0.0.1:$scheduler_port/healthz"
fi

[[ $node == 1 ]] && start_node

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
# With a node, Prometheus also finds Pods as a cluster's Prometheus does: kubernetes_sd against the
# API server, Pods annotated prometheus.io/scrape "true" while Ready, on prometheus.io/port, with
# the labels namespace, pod and deployment (the owning ReplicaSet's name without its hash), the
# labels file_sd targets carry.
if [[ $node == 1 ]]; then
  cat >>"$state/prometheus/prometheus.yml" <<PROMCONFIG
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $state/kubeconfig
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], regex: "true", action: keep}
      - {source_labels: [__meta_kubernetes_pod_ready], regex: "true", action: keep}
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: '(.+);([0-9]+)'
        replacement: '\$1:\$2'
        target_label: __address__
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
      - source_labels: [__meta_kubernetes_pod_controller_kind, __meta_kubernetes_pod_controller_name]
        regex: 'ReplicaSet;(.+)-[a-z0-9]+'
        target_label: deployment
PROMCONFIG
fi
start prometheus "$prometheus_bin" --config.file "$state/prometheus/prometheus.yml" \
  --storage.tsdb.path "$state/prometheus/data" --web.listen-address "$listen_ip:$prometheus_port" \
  --storage.tsdb.retention.time 1d
prometheus_url="http://$listen_ip:$prometheus_port"
wait_for prometheus 60 curl -fs "$prometheus_url/-/ready"

cat >"$state/env" <<ENV
KUBECONFIG=$state/kubeconfig
KUBE_APISERVER_URL=$apiserver_url
PROMETHEUS_URL=$prometheus_url
PROMETHEUS_TARGETS_DIR=$state/prometheus/targets
ENV
[[ $node == 1 ]] && printf 'CONTAINERD_ADDRESS=%s\nNODE_ADDRESS=%s\n' "$state/node/containerd/containerd.sock" "$node_gateway" >>"$state/env"
echo "${components[*]}" >"$state/components"
log "up: kube-apiserver $apiserver_url, prometheus $prometheus_url; source $state/env"
