# The local node (local-up.sh NODE=1), sourced by local-up.sh and local-down.sh: containerd and
# runc from Debian, a kubelet built from k8s.io/kubernetes, a CNI bridge for pods on this machine.
# Expects $state, $here, $root, log, start, wait_for and (local-up) write_kubeconfig,
# $kubelet_token, $kubelet_port, $kubelet_healthz_port, $admin_token, $apiserver_url.
#
# What differs from a normal node, and why:
#   - containerd runs with root, state and socket under $state/node/containerd (not
#     /var/lib/containerd, /run/containerd): it is the project's own instance, not a service.
#   - The sandbox ("pause") image is built here (test/controlplane/build/pause, image/build.sh
#     pause) and imported, since nothing can be pulled; kubelet's image GC is off (high threshold
#     100 %) so that no imported image is removed: it could not be pulled back.
#   - cgroupfs driver (kubelet cgroupDriver, runc SystemdCgroup = false): no systemd here. The
#     machine has cgroup v1, which kubelet 1.32 still runs on (failCgroupV1: false).
#   - failSwapOn: false, in case the machine has swap; eviction thresholds low (the disk is
#     shared with other work, which must not evict the test's pods).
#   - CNI: one bridge, poolpilot0, 10.213.0.0/24 by host-local, gateway on the bridge, no
#     masquerade: pods reach this machine and each other, nothing beyond it.
#   - Pod logs in $state/node/pod-logs (podLogsDir), not /var/log/pods; the kubelet still
#     links them from /var/log/containers (not configurable); local-down.sh removes those links.
#   - The kubelet serves on the bridge's address (its node IP; healthz on 127.0.0.1) on free
#     ports, not 10250/10248. It authenticates the API server (for `kubectl logs` and `exec`)
#     by a client certificate from a CA made here for that alone (kubeadm makes one CA for all).
#   - No kube-proxy and no cluster DNS: Service ClusterIPs do not route; pods use the machine's
#     /etc/resolv.conf. So that pods reach the API server and Prometheus, on this plane both
#     listen on the bridge's address, 10.213.0.1 (the bridge is made before they start), not on
#     127.0.0.1; in-cluster clients are told that address in KUBERNETES_SERVICE_HOST/PORT (env
#     of their own, which wins over the kubelet's for the `kubernetes` Service).
#   - makeIPTablesUtilChains: false, and local-down.sh removes the chains the kubelet still makes
#     (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT): the machine's firewall is not the node's.
#   - restrict_oom_score_adj: the sandbox may not lower oom_score_adj below its own (0), which
#     a normal node does for pod sandboxes (-998) and Guaranteed pods (-997).
#   - kubelet sets the kernel tunables it wants (vm.overcommit_memory=1, kernel.panic=10,
#     kernel.panic_on_oops=1, …); this machine is shared, so the values before are saved in
#     $state/node/sysctls.saved and put back by local-down.sh.
#   - NODE_SYNC_FREQUENCY sets the kubelet's syncFrequency (default its own, 1m), which is also
#     how late a ConfigMap change reaches a running Pod's volume: `make demo NODE=1` starts its
#     node with 5s, time-compressed like the demo's other windows (demo/run.sh).

node_name=poolpilot-node
node_bridge=poolpilot0
node_subnet=10.213.0.0/24
node_gateway=10.213.0.1
# Where the machine-wide node is claimed: one node per machine.
node_owner_file=/run/poolpilot-node.owner
kubelet_tunables=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

node_preflight() {
  for tool in containerd containerd-shim-runc-v2 runc ctr ip buildah mmdebstrap; do
    command -v "$tool" >/dev/null || { log "'$tool' is missing: run 'make install' (Debian: containerd runc containernetworking-plugins buildah mmdebstrap)"; exit 1; }
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || { log "the CNI plugins are missing: run 'make install' (Debian: containernetworking-plugins)"; exit 1; }
  [[ $(id -u) == 0 ]] || { log "a node needs root (containerd, runc, network namespaces)"; exit 1; }
  if [[ -f $node_owner_file ]]; then
    local owner
    owner=$(<"$node_owner_file")
    if [[ $owner != "$state" && -f $owner/pids/kubelet.pid ]] && kill -0 "$(cat "$owner/pids/kubelet.pid")" 2>/dev/null; then
      log "a node already runs on this machine for $owner: stop it first (POOLPILOT_LOCAL=$owner test/controlplane/local-down.sh)"
      exit 1
    fi
  fi
}

# The bridge with its gateway address, before anything listens on that address; the CNI bridge
# plugin takes it over as it is.
node_network_up() {
  if ! ip link show "$node_bridge" >/dev/null 2>&1; then ip link add "$node_bridge" type bridge; fi
  if ! ip -4 addr show dev "$node_bridge" | grep -q "inet $node_gateway/"; then
    ip addr add "$node_gateway/${node_subnet#*/}" dev "$node_bridge"
  fi
  ip link set "$node_bridge" up
}

# A CA for the kubelet's client authentication and the API server's client certificate from it
# (CN kube-apiserver-kubelet-client, O system:masters, as kubeadm names it): `kubectl logs` and
# `exec` go through the API server to the kubelet, which accepts that certificate and asks the
# API server whether the user may (webhook authorization).
make_kubelet_client_certificate() {
  local pki=$state/node/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=poolpilot-kubelet-client-ca \
    -keyout "$pki/kubelet-client-ca.key" -out "$pki/kubelet-client-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$pki/apiserver-kubelet-client.key" -out "$pki/apiserver-kubelet-client.csr" 2>/dev/null
  printf 'extendedKeyUsage = clientAuth\n' >"$pki/client.ext"
  openssl x509 -req -in "$pki/apiserver-kubelet-client.csr" -CA "$pki/kubelet-client-ca.crt" \
    -CAkey "$pki/kubelet-client-ca.key" -CAcreateserial -days 2 -extfile "$pki/client.ext" \
    -out "$pki/apiserver-kubelet-client.crt" 2>/dev/null
}

containerd_address() { echo "$state/node/containerd/containerd.sock"; }
node_ctr() { ctr --address "$(containerd_address)" --namespace k8s.io "$@"; }

start_node() {
  local kubelet_bin pause_image pause_archive
  kubelet_bin=$(bash "$here/build.sh" component kubelet)
  { read -r pause_image; read -r pause_archive; } < <(bash "$root/image/build.sh" archive pause)
  echo "$state" >"$node_owner_file"
  mkdir -p "$state/node/containerd" "$state/node/cni/net.d" "$state/node/cni/ipam" "$state/node/kubelet"

  cat >"$state/node/containerd/config.toml" <<TOML
version = 2
root = "$state/node/containerd/root"
state = "$state/node/containerd/state"
# Snapshotters this machine has no use for; their probes only add noise to the log.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$(containerd_address)"
[ttrpc]
  address = "$(containerd_address).ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This sandbox may not lower a process's oom_score_adj (runc: "failed to update
  # /proc/self/oom_score_adj: Permission denied" for the pod sandbox's -998): cap it at
  # containerd's own, as for rootless containerd.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "${NODE_SNAPSHOTTER:-overlayfs}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/node/cni/net.d"
TOML
  start containerd containerd --config "$state/node/containerd/config.toml"
  wait_for containerd 30 ctr --address "$(containerd_address)" version
  node_ctr images import --snapshotter "${NODE_SNAPSHOTTER:-overlayfs}" "$pause_archive" >/dev/null
  log "imported $pause_image into containerd"

  cat >"$state/node/cni/net.d/10-poolpilot.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "poolpilot",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$node_bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$node_subnet", "gateway": "$node_gateway" }]],
        "dataDir": "$state/node/cni/ipam"
      }
    }
  ]
}
JSON

  : >"$state/node/sysctls.saved"
  for tunable in "${kubelet_tunables[@]}"; do
    echo "$tunable=$(sysctl -n "$tunable")" >>"$state/node/sysctls.saved"
  done

  write_kubeconfig "$state/node/kubelet.kubeconfig" "system:node:$node_name" "$kubelet_token"
  cat >"$state/node/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_gateway
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/node/pki/kubelet-client-ca.crt}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$(containerd_address)
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
resolvConf: /etc/resolv.conf
makeIPTablesUtilChains: false
podLogsDir: $state/node/pod-logs
registerNode: true
syncFrequency: ${NODE_SYNC_FREQUENCY:-1m}
YAML
  start kubelet "$kubelet_bin" \
    --config "$state/node/kubelet/config.yaml" \
    --kubeconfig "$state/node/kubelet.kubeconfig" \
    --root-dir "$state/node/kubelet/root" \
    --cert-dir "$state/node/kubelet/pki" \
    --hostname-override "$node_name" \
    --node-ip "$node_gateway"
  wait_for kubelet 60 curl -fs "http://127.0.0.1:$kubelet_healthz_port/healthz"
  wait_for kubelet 120 node_ready
}

node_ready() {
  kubectl --kubeconfig "$state/kubeconfig" get node "$node_name" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# Before the node's processes stop: the controllers are stopped (nothing makes new Pods), every
# Pod is deleted through the API, and the kubelet tears each one down as it would on a real node
# (containers stopped, CNI DEL, volumes unmounted); waits until containerd runs no task, 60 s at
# most. Then what is left is killed through containerd.
drain_node() {
  local name
  for name in kube-controller-manager kube-scheduler; do
    if [[ -f $state/pids/$name.pid ]]; then
      stop_process "$name" "$(cat "$state/pids/$name.pid")"
      rm -f "$state/pids/$name.pid"
    fi
  done
  if [[ -f $state/kubeconfig ]] && kill -0 "$(cat "$state/pids/kubelet.pid" 2>/dev/null)" 2>/dev/null; then
    kubectl --kubeconfig "$state/kubeconfig" delete pods --all-namespaces --all --grace-period=0 --force --wait=false \
      >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 60))
    while [[ -n $(node_ctr tasks list --quiet 2>/dev/null) ]] && ((SECONDS < deadline)); do sleep 0.5; done
  fi
  local task
  for task in $(node_ctr tasks list --quiet 2>/dev/null); do
    log "killing task $task, which the kubelet did not stop (its network namespace may be left in /var/run/netns)"
    node_ctr tasks kill --signal KILL "$task" >/dev/null 2>&1 || true
    node_ctr tasks delete --force "$task" >/dev/null 2>&1 || true
  done
}

# After the node's processes stopped: the kernel tunables the kubelet changed are put back, the
# bridge is removed, mounts left under the node's dirs are undone, the machine-wide claim dropped.
node_cleanup() {
  local line
  if [[ -f $state/node/sysctls.saved ]]; then
    while IFS= read -r line; do sysctl -q -w "$line" >/dev/null || log "could not put back $line"; done <"$state/node/sysctls.saved"
    rm -f "$state/node/sysctls.saved"
  fi
  if ip link show "$node_bridge" >/dev/null 2>&1; then ip link delete "$node_bridge"; fi
  local table chain tool
  for tool in iptables ip6tables; do
    for table in mangle nat filter; do
      for chain in KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  unmount_under "$state/node"
  # The kubelet's links to the pods' logs (it removes them with the pods, unless stopped first).
  find /var/log/containers -maxdepth 1 -lname "$state/node/pod-logs/*" -delete 2>/dev/null || true
  if [[ -f $node_owner_file && $(<"$node_owner_file") == "$state" ]]; then rm -f "$node_owner_file"; fi
}
