#!/usr/bin/env bash
# Restarts one component of the local control plane in place, for fault tests:
#   restart.sh <etcd|kube-apiserver|prometheus> [--kill] [--down-seconds N]
# Stops the process local-up.sh recorded in $state/pids/<name>.pid (SIGTERM, SIGKILL after 10 s;
# with --kill at once with SIGKILL), keeps it down for N seconds (default 0), starts it again
# with the argv local-up.sh recorded in $state/cmd/<name>.args (same ports, data dir, certs and
# kubeconfig), and waits until it is ready again. The log is appended to.
# For an outage of a test's own length, the two halves apart:
#   restart.sh <name> --stop [--kill]   stops it and leaves it down
#   restart.sh <name> --start           starts it again unless it runs, and waits until it is ready
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}

log() { echo "restart: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"
usage() { log "usage: restart.sh <etcd|kube-apiserver|prometheus> [--kill] [--down-seconds N | --stop | --start]"; exit 2; }

name=${1:-}
case $name in etcd | kube-apiserver | prometheus) ;; *) usage ;; esac
shift
signal=TERM
down=0
stop=true
start=true
while (($# > 0)); do
  case $1 in
    --kill) signal=KILL ;;
    --down-seconds) down=${2:-}; shift ;;
    --stop) start=false ;;
    --start) stop=false ;;
    *) usage ;;
  esac
  shift
done
[[ $stop == true || $start == true ]] || usage

pidfile=$state/pids/$name.pid
argsfile=$state/cmd/$name.args
[[ -f $pidfile && -f $state/env ]] || { log "no local control plane in $state: run test/controlplane/local-up.sh"; exit 1; }
[[ -f $argsfile ]] || { log "$argsfile is missing (plane started by an older local-up.sh): run local-down.sh, then local-up.sh"; exit 1; }
mapfile -d '' -t argv <"$argsfile"
((${#argv[@]} > 0)) || { log "$argsfile is empty"; exit 1; }

if [[ $stop == true ]]; then
  stop_process "$name" "$(cat "$pidfile")" "$signal"
  [[ $start == true ]] || exit 0
  sleep "$down"
elif kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "$name is running (pid $(cat "$pidfile"))"
  exit 0
fi

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
wait_for "$name" 90 probe
