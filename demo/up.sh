#!/usr/bin/env bash
# Starts the demo's backends on 127.0.0.1, each on a free port, state in .local/demo/:
#   PostgreSQL 15 (Debian `postgresql`, run as the `postgres` user (when root) from /usr/lib/postgresql/15/bin;
#   initdb into .local/demo/pg; max_connections = 100, superuser_reserved_connections = 3; role and
#   database `app`) and Redis (Debian `redis-server`). PgBouncer is not started here: the node agent
#   runs it as the `pgbouncer` Deployment; this script only picks its port.
# DEMO_NODE_ADDRESS (demo/run.sh with NODE=1): PostgreSQL and Redis also listen on that address,
# the local node's bridge, which its Pods reach, and PostgreSQL trusts the bridge's subnet.
# Writes .local/demo/env (ports and URLs) and pid files in .local/demo/pids/. If a step fails,
# everything started so far is stopped (demo/down.sh). Stop it all with demo/down.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
state=${POOLPILOT_DEMO_STATE:-$root/.local/demo}
pgbin=/usr/lib/postgresql/15/bin
listen=127.0.0.1 redis_protected=yes
# Redis's protected mode refuses every client off loopback while no password is set; the node's
# bridge carries only this machine's own Pods.
[[ -n ${DEMO_NODE_ADDRESS:-} ]] && listen="127.0.0.1 $DEMO_NODE_ADDRESS" redis_protected=no
log() { echo "demo/up: $*" >&2; }

for f in "$pgbin/initdb" "$pgbin/postgres" /usr/bin/redis-server /usr/sbin/pgbouncer /usr/bin/psql; do
  [[ -x $f ]] || { log "$f is missing: run 'make install' (Debian: postgresql redis-server pgbouncer postgresql-client)"; exit 1; }
done

if compgen -G "$state/pids/*.pid" >/dev/null; then
  log "a previous demo is still (partly) running; stopping it first"
  bash "$here/down.sh"
fi

ok=0
trap '((ok)) || { log "failed; stopping what was started"; bash "$here/down.sh"; }' EXIT
mkdir -p "$state/pids" "$state/logs"

read -r pg_port redis_port pgbouncer_port < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()')

# --- PostgreSQL -------------------------------------------------------------------------------
pgdata=$state/pg
pgsock=$state/pgsock
rm -rf "$pgdata" "$pgsock"
# PostgreSQL refuses to run as root: as root it runs as `postgres`, otherwise as the caller.
if [[ $(id -u) -eq 0 ]]; then
  as_pg() { runuser -u postgres -- "$@"; }
  install -d -o postgres -g postgres -m 700 "$pgdata"
  install -d -o postgres -g postgres -m 755 "$pgsock"
  chmod o+x "$state" "$(dirname "$state")" 2>/dev/null || true
else
  as_pg() { "$@"; }
  install -d -m 700 "$pgdata"
  install -d -m 755 "$pgsock"
fi
as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth-local=trust --auth-host=trust -E UTF8 --locale=C.UTF-8 >"$state/logs/initdb.log" 2>&1 ||
  { log "initdb failed:"; tail -n 20 "$state/logs/initdb.log" >&2; exit 1; }
cat >>"$pgdata/postgresql.conf" <<CONF
# demo/up.sh (loopback, and the local node's bridge with NODE=1; trust auth is for this throwaway cluster)
listen_addresses = '${listen// /,}'
port = $pg_port
unix_socket_directories = '$pgsock'
max_connections = 100
superuser_reserved_connections = 3
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
CONF
# samenet: the subnets this machine is on, the node's bridge among them.
[[ -n ${DEMO_NODE_ADDRESS:-} ]] && echo "host all all samenet trust" >>"$pgdata/pg_hba.conf"
pg_cmd=("$pgbin/postgres" -D "$pgdata")
[[ $(id -u) -eq 0 ]] && pg_cmd=(runuser -u postgres -- "${pg_cmd[@]}")
setsid "${pg_cmd[@]}" >"$state/logs/postgres.log" 2>&1 </dev/null &
echo $! >"$state/pids/postgres-runuser.pid"
for _ in $(seq 150); do
  [[ -f $pgdata/postmaster.pid ]] && /usr/bin/psql -X -w -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qAtc 'select 1' >/dev/null 2>&1 && break
  kill -0 "$(cat "$state/pids/postgres-runuser.pid")" 2>/dev/null || { log "postgres exited:"; tail -n 20 "$state/logs/postgres.log" >&2; exit 1; }
  sleep 0.2
done
head -n 1 "$pgdata/postmaster.pid" >"$state/pids/postgres.pid"
/usr/bin/psql -X -w -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE app OWNER app" >/dev/null
log "postgres is ready on ${listen// /, }:$pg_port (pid $(cat "$state/pids/postgres.pid"), max_connections 100, 3 reserved)"

# --- Redis ------------------------------------------------------------------------------------
mkdir -p "$state/redis"
# shellcheck disable=SC2086 # one word per address
setsid /usr/bin/redis-server --bind $listen --port "$redis_port" --save '' --appendonly no \
  --dir "$state/redis" --daemonize no --protected-mode "$redis_protected" >"$state/logs/redis.log" 2>&1 </dev/null &
echo $! >"$state/pids/redis.pid"
for _ in $(seq 100); do
  /usr/bin/redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
  kill -0 "$(cat "$state/pids/redis.pid")" 2>/dev/null || { log "redis exited:"; tail -n 20 "$state/logs/redis.log" >&2; exit 1; }
  sleep 0.1
done
log "redis is ready on ${listen// /, }:$redis_port (pid $(cat "$state/pids/redis.pid"))"

cat >"$state/env" <<ENV
PG_PORT=$pg_port
PG_SOCKET_DIR=$pgsock
REDIS_PORT=$redis_port
PGBOUNCER_PORT=$pgbouncer_port
DATABASE_URL=postgresql+psycopg2://app@127.0.0.1:$pg_port/app
REDIS_URL=redis://127.0.0.1:$redis_port/0
ENV
ok=1
log "up; ports in $state/env"
