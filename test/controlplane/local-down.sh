#!/usr/bin/env bash
# Stops exactly the processes local-up.sh started (by the pids it recorded), waits for them to
# exit (SIGTERM, then SIGKILL after 10 s) and removes the pid files. Leaves the logs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}
log() { echo "local-down: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"

shopt -s nullglob
# Clients of the API server first, etcd last: a kube-apiserver whose etcd is gone hangs in its
# shutdown until it is killed.
ordered=()
for pidfile in "$state"/pids/*.pid; do
  case $(basename "$pidfile" .pid) in etcd | kube-apiserver) ;; *) ordered+=("$pidfile") ;; esac
done
for name in kube-apiserver etcd; do
  [[ -f $state/pids/$name.pid ]] && ordered+=("$state/pids/$name.pid")
done
for pidfile in "${ordered[@]}"; do
  name=$(basename "$pidfile" .pid)
  pid=$(cat "$pidfile")
  stop_process "$name" "$pid"
  rm -f "$pidfile"
done
rm -f "$state/env"
