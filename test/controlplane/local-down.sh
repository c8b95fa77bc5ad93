#!/usr/bin/env bash
# Stops exactly the processes local-up.sh started (by the pids it recorded), waits for them to
# exit (SIGTERM, then SIGKILL after 10 s) and removes the pid files. Leaves the logs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}

shopt -s nullglob
for pidfile in "$state"/pids/*.pid; do
  name=$(basename "$pidfile" .pid)
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "local-down: $name (pid $pid) ignored SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "local-down: stopped $name (pid $pid)" >&2
  fi
  rm -f "$pidfile"
done
rm -f "$state/env"
