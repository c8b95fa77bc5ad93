#!/usr/bin/env bash
# Restarts one component of the local control plane in place, for fault tests:
#   restart.sh <etcd|kube-apiserver|prometheus> [--kill] [--down-seconds N]
# Stops the process local-up.sh recorded in $state/pids/<name>.pid (SIGTERM, SIGKILL after 10 s;
# with --kill at once with SIGKILL), keeps it down for N seconds (default 0), starts it again
# with the argv local-up.sh recorded in $state/cmd/<name>.args (same ports, data dir, certs and
# kubeconfig), and waits until it is ready again. The log is appended to.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}

log() { echo "restart: $*" >&2; }
usage() { log "usage: restart.sh <etcd|kube-apiserver|prometheus> [--kill] [--down-seconds N]"; exit 2; }

name=${1:-}
case $name in etcd | kube-apiserver | prometheus) ;; *) usage ;; esac
shift
signal=TERM
down=0
while (($# > 0)); do
  case $1 in
    --kill) signal=KILL ;;
    --down-seconds) down=${2:-}; shift ;;
    *) usage ;;
  esac
  shift
done

pidfile=$state/pids/$name.pid
argsfile=$state/cmd/$name.args
[[ -f $pidfile && -f $state/env ]] || { log "no local control plane in $state: run test/controlplane/local-up.sh"; exit 1; }
[[ -f $argsfile ]] || { log "$argsfile is missing (plane started by an older local-up.sh): run local-down.sh, then local-up.sh"; exit 1; }
mapfile -d '' -t argv <"$argsfile"
((${#argv[@]} > 0)) || { log "$argsfile is empty"; exit 1; }

pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIG$signal; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  log "stopped $name (pid $pid, SIG$signal)"
fi
sleep "$down"

logfile=$state/logs/$name.log
echo "--- restart.sh: starting again at $(date -u +%FT%TZ) ---" >>"$logfile"
setsid "${argv[@]}" >>"$logfile" 2>&1 </dev/null &
echo $! >"$pidfile"
log "started $name (pid $!)"

# shellcheck disable=SC1091
source "$state/env"
probe() {
  case $name in
    etcd)
      local url
      url=$(printf '%s\n' "${argv[@]}" | grep -A1 -x -- '--advertise-client-urls' | tail -n 1)
      curl -fs --max-time 2 "$url/health" ;;
    kube-apiserver) curl -fsk --max-time 2 -H "Authorization: Bearer $(cat "$state/admin-token")" "$KUBE_APISERVER_URL/readyz" ;;
    prometheus) curl -fs --max-time 2 "$PROMETHEUS_URL/-/ready" ;;
  esac
}
deadline=$((SECONDS + 90))
until probe >/dev/null 2>&1; do
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "$name exited; last lines of $logfile:"; tail -n 20 "$logfile" >&2; exit 1
  fi
  if ((SECONDS > deadline)); then
    log "$name not ready after 90s; last lines of $logfile:"; tail -n 20 "$logfile" >&2; exit 1
  fi
  sleep 0.2
done
log "$name is ready"
