#!/usr/bin/env bash
# Stops everything the demo started, by the pids recorded in .local/demo/pids/ (PostgreSQL with
# pg_ctl stop -m fast first; others SIGTERM, then SIGKILL after 10 s), and removes the demo's
# Prometheus file_sd targets; on a real node it deletes the demo's Deployments. Safe to run again;
# leaves logs, the report and the control plane.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
state=${POOLPILOT_DEMO_STATE:-$root/.local/demo}
log() { echo "demo/down: $*" >&2; }

stop_pid() { # name pid
  local name=$1 pid=$2
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  log "stopped $name (pid $pid)"
}

shopt -s nullglob
# The load generator, the operator and the node agent first (the agent stops its pods), then pods
# the agent left behind, then the backends.
for pidfile in "$state"/pids/load-*.pid; do   # one load generator per app (DEMO_APPS=2)
  stop_pid "$(basename "$pidfile" .pid)" "$(cat "$pidfile")"
  rm -f "$pidfile"
done
for name in load operator node-agent; do
  [[ -f $state/pids/$name.pid ]] && stop_pid "$name" "$(cat "$state/pids/$name.pid")"
  rm -f "$state/pids/$name.pid"
done
# On a real node (NODE=1) the kubelet runs the pods: deleting the Deployments stops them.
if [[ -z ${POOLPILOT_DEMO_STATE:-} && -f $root/.local/env ]] && grep -q '^CONTAINERD_ADDRESS=' "$root/.local/env"; then
  kubeconfig=$(sed -n 's/^KUBECONFIG=//p' "$root/.local/env")
  kubectl --kubeconfig "$kubeconfig" -n demo delete deployments --all --ignore-not-found --timeout=30s >/dev/null 2>&1 &&
    log "deleted the demo's Deployments on the node"
fi
for pidfile in "$state"/pids/pod-*.pid; do
  stop_pid "$(basename "$pidfile" .pid)" "$(cat "$pidfile")"
  rm -f "$pidfile"
done
if [[ -f $state/pids/postgres.pid ]] && kill -0 "$(cat "$state/pids/postgres.pid")" 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$state/pg" stop -m fast -w >/dev/null 2>&1 || true
  else
    /usr/lib/postgresql/15/bin/pg_ctl -D "$state/pg" stop -m fast -w >/dev/null 2>&1 || true
  fi
fi
for pidfile in "$state"/pids/*.pid; do
  stop_pid "$(basename "$pidfile" .pid)" "$(cat "$pidfile")"
  rm -f "$pidfile"
done
if [[ -z ${POOLPILOT_DEMO_STATE:-} && -f $root/.local/env ]]; then   # the demo's own targets only
  targets=$(sed -n 's/^PROMETHEUS_TARGETS_DIR=//p' "$root/.local/env")
  [[ -n $targets ]] && rm -f "$targets"/demo-agent-demo-*.json
fi
rm -f "$state/env"
exit 0
