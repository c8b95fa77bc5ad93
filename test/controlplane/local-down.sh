#!/usr/bin/env bash
# Stops exactly the processes local-up.sh started (by the pids it recorded), waits for them to
# exit (SIGTERM, then SIGKILL after 10 s) and removes the pid files. Leaves the logs.
#   local-down.sh        the plane in $POOLPILOT_LOCAL (default .local)
#   local-down.sh --all  that one and every plane a test started in a directory of its own under
#                        it (.local/<name>/, see test/integration/support/own-plane.ts)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}

if [[ ${1:-} == --all ]]; then
  shopt -s nullglob
  for pids in "$state"/*/pids; do
    POOLPILOT_LOCAL=$(dirname "$pids") bash "${BASH_SOURCE[0]}"
  done
  exec bash "${BASH_SOURCE[0]}"
fi
log() { echo "local-down: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"

shopt -s nullglob
node=false
if [[ -f $state/pids/kubelet.pid || -f $state/pids/containerd.pid || -f $state/node/sysctls.saved ]]; then
  node=true
  # shellcheck source=node.sh
  source "$here/node.sh"
  drain_node
fi
# The node's clients and the node first; then the rest; the API server and etcd last: a
# kube-apiserver whose etcd is gone hangs in its shutdown until it is killed.
first=(kube-controller-manager kube-scheduler kubelet containerd)
last=(kube-apiserver etcd)
ordered=()
for name in "${first[@]}"; do
  if [[ -f $state/pids/$name.pid ]]; then ordered+=("$state/pids/$name.pid"); fi
done
for pidfile in "$state"/pids/*.pid; do
  name=$(basename "$pidfile" .pid)
  if [[ " ${first[*]} ${last[*]} " != *" $name "* ]]; then ordered+=("$pidfile"); fi
done
for name in "${last[@]}"; do
  if [[ -f $state/pids/$name.pid ]]; then ordered+=("$state/pids/$name.pid"); fi
done
for pidfile in "${ordered[@]}"; do
  name=$(basename "$pidfile" .pid)
  pid=$(cat "$pidfile")
  stop_process "$name" "$pid"
  rm -f "$pidfile"
done
if [[ $node == true ]]; then node_cleanup; fi
rm -f "$state/env"
