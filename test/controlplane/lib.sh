# Shared by local-up.sh, local-down.sh and restart.sh (sourced). Expects $state (the plane's state
# dir) and a log function.

# stop_process NAME PID [SIGNAL]: sends SIGNAL (default TERM), SIGKILL after 10 s; waits for exit.
stop_process() {
  local name=$1 pid=$2 signal=${3:-TERM}
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIG$signal; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  log "stopped $name (pid $pid)"
}

# wait_for NAME SECONDS PROBE...: until PROBE succeeds; fails with the log's tail if the process
# recorded in $state/pids/NAME.pid exits or SECONDS pass.
wait_for() {
  local name=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds)) logfile=$state/logs/$name.log
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$state/pids/$name.pid")" 2>/dev/null; then
      log "$name exited; last lines of $logfile:"; tail -n 20 "$logfile" >&2; exit 1
    fi
    if ((SECONDS > deadline)); then
      log "$name not ready after ${seconds}s; last lines of $logfile:"; tail -n 20 "$logfile" >&2; exit 1
    fi
    sleep 0.2
  done
  log "$name is ready"
}

# unmount_under DIR: unmounts whatever is still mounted below DIR (a node's volumes and
# snapshots that a killed kubelet or containerd left), deepest first, so DIR can be removed.
unmount_under() {
  local dir
  dir=$(realpath -m "$1")
  awk -v prefix="$dir/" 'index($2, prefix) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mountpoint; do
    umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" || true
  done
}
