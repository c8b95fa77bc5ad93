#!/usr/bin/env bash
# The four-arm part of `make bench` (numbers, never pass/fail): the demo's workload under seeded
# load traces, each run on fresh state (demo/run.sh: new PostgreSQL and Redis from demo/up.sh, demo
# namespace objects deleted and re-applied, everything stopped by demo/down.sh at the end):
#   A  static runbook default    DB_POOL_SIZE 20 / DB_MAX_OVERFLOW 40, REDIS_MAX_CONNECTIONS 50 (its "medium" tier), no operator
#   B  static "very high" tier   DB_POOL_SIZE 50 / DB_MAX_OVERFLOW 100, REDIS_MAX_CONNECTIONS 100, no operator
#   D  static fair share         DB_POOL_SIZE 16 / DB_MAX_OVERFLOW 32 (96 usable / 2 replicas = 48 a pod),
#                                REDIS_MAX_CONNECTIONS 50 (the policy's max: the best fixed Redis setting)
#   C  poolpilot                 deploy/samples/demo/ (PoolPolicy + ConnectionBudget), start at the
#                                runbook's low tier 10 / 20, REDIS_MAX_CONNECTIONS 10
#   E  poolpilot, no restarts    C with spec.delivery ConfigMap (demo/run.sh DEMO_DELIVERY=ConfigMap):
#                                the pods re-read the pool settings from a mounted ConfigMap and
#                                resize their pools in place (the demo app's POOL_RELOAD=resize);
#                                refresh AnnotatePods (DEMO_REFRESH=KubeletSync waits for the
#                                kubelet's periodic sync instead; only the node has a kubelet)
#   F  poolpilot via PgBouncer   demo/run.sh DEMO_PATH=pgbouncer: the app through PgBouncer (transaction
#                                pooling) with FIXED pools DB_POOL_SIZE 40 / DB_MAX_OVERFLOW 20,
#                                REDIS_MAX_CONNECTIONS 50; poolpilot sets only PgBouncer's
#                                default_pool_size (the budget's share, mode FillToBudget) /
#                                max_client_conn (deploy/samples/demo/
#                                poolpolicy-pgbouncer.yaml, connectionbudget-pgbouncer.yaml: 100 − 6
#                                = 94 for PgBouncer, postgres_exporter's 2 connections counted). The
#                                app pools are what a careful user picks behind PgBouncer: client
#                                connections cost PostgreSQL nothing, so each process keeps open
#                                what its peak needs (40: ~80 busy over 2 pods at 120 users) plus 20
#                                for bursts, so requests queue in PgBouncer, not in the QueuePool.
#                                T1 and T2 only (one app).
# Traces (users:seconds per phase):
#   T1  the runbook trace  BENCH_T1_PHASES, default 5:15,50:45,120:90,20:40   (~3.2 min of load)
#   T2  a second peak      BENCH_T2_PHASES, default 5:15,120:60,20:40,120:60,20:20 (~3.3 min)
#   T3  two apps sharing one ConnectionBudget with offset peaks (demo/run.sh with DEMO_APPS=2:
#       voiceassist-api and reports-api, 2 replicas each, one load generator per app, seeds
#       <seed>-voiceassist-api and <seed>-reports-api): voiceassist-api BENCH_T3_PHASES_A, default
#       5:15,120:60,10:60,10:40, reports-api BENCH_T3_PHASES_B, default 10:15,10:60,120:60,5:40
#       (~3 min). Its arms (BENCH_T3_ARMS, default "S C"; the A B D C settings are for one app):
#   S   best static split        DB_POOL_SIZE 8 / DB_MAX_OVERFLOW 16 for both apps (24 a process:
#                                96 of the 95 usable, since the peaks never meet; the traces are symmetric, so an
#                                asymmetric split makes one app's peak worse), REDIS_MAX_CONNECTIONS 50
#   S2  static split 12 / 12     the same capacity of 24 a process, split pool / overflow otherwise
#   C   poolpilot                both PoolPolicies (deploy/samples/demo/poolpolicy.yaml and
#                                poolpolicy-reports-api.yaml) on the ConnectionBudget, both apps
#                                starting at 10 / 20, REDIS_MAX_CONNECTIONS 10
# BENCH_TRACES ("T1 T2 T3"), BENCH_REPEATS (3), BENCH_ARMS_ONLY ("A B D C", the arms of T1 and T2)
# and BENCH_T3_ARMS ("S C") select the runs; BENCH_SEED (1) is the base seed; BENCH_OUT_DIR
# (.local/bench-arms) is where the runs go and BENCH_RESULTS (bench/results.md; empty: print only)
# the file whose section the report replaces, so a smoke run can leave both alone. Order: for each
# repeat, for each trace, each arm in turn, so drift of the shared machine hits every arm alike;
# every arm of one (trace, repeat) gets the same seed (DEMO_SEED=<base>-<trace>-r<n>), so the same
# arrival sequence. A run takes ~3.5 min with set-up (about 20 s); the full matrix of 30 runs
# (T1 and T2: 4 arms, T3: 2; 3 repeats) about 105 min.
# Each run's samples, latencies, report and logs go to <BENCH_OUT_DIR>/<trace>/<arm>/r<n>/ with
# arm.json ({trace, arm, repeat, seed, path, phases, rc, ...}); <BENCH_OUT_DIR>/runs.jsonl gets one line
# per finished run. Resumable: a run whose arm.json says rc 0 for the same phases and seed is
# skipped (BENCH_FRESH=1 redoes it); only the run being redone is replaced, other runs stay.
# NODE=1 runs every arm on the local node (demo/run.sh NODE=1: real Pods, the real deployment
# controller, the kubelet delivering ConfigMaps; a plane it starts syncs every NODE_SYNC_FREQUENCY,
# default 5s as the demo's), NODE=0 on the demo's node agent; unset, as demo/run.sh decides (the
# node as root). A plane without a node is restarted with one (local-up.sh). arm.json records it
# as "node".
# In the background: nohup bash bench/arms.sh >.local/bench-arms.log 2>&1 &
# At the end bench/arms_report.py prints the tables and replaces the `## Four arms` section of
# bench/results.md. Needs the Debian packages `make install` installs. It builds the operator's
# bundle (dist/cli.js, `npm run build`) and the demo (tsc -p demo/tsconfig.json) from the checkout
# first, so that the commit each arm.json records is the code that ran (a bundle left from an
# older checkout once ran under a newer commit's name).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
outdir=${BENCH_OUT_DIR:-$root/.local/bench-arms}
results=${BENCH_RESULTS-bench/results.md}
traces=${BENCH_TRACES:-T1 T2 T3}
repeats=${BENCH_REPEATS:-3}
only=${BENCH_ARMS_ONLY:-A B D C}
t3_arms=${BENCH_T3_ARMS:-S C}
base_seed=${BENCH_SEED:-1}
fresh=${BENCH_FRESH:-0}
on_node=${NODE:-$([[ $(id -u) -eq 0 ]] && echo 1 || echo 0)}   # as demo/run.sh decides
[[ $on_node == 0 || $on_node == 1 ]] || { echo "bench/arms: NODE must be 0 or 1, not '$on_node'" >&2; exit 2; }
log() { echo "bench/arms: $(date -u +%H:%M:%S) $*" >&2; }

phases_of() { # trace
  case $1 in
    T1) echo "${BENCH_T1_PHASES:-5:15,50:45,120:90,20:40}" ;;
    T2) echo "${BENCH_T2_PHASES:-5:15,120:60,20:40,120:60,20:20}" ;;
    # One phase list per app, "<app>=<phases> <app>=<phases>": recorded as is in arm.json.
    T3) echo "voiceassist-api=${BENCH_T3_PHASES_A:-5:15,120:60,10:60,10:40} reports-api=${BENCH_T3_PHASES_B:-10:15,10:60,120:60,5:40}" ;;
    *) echo "bench/arms: unknown trace '$1' in BENCH_TRACES (known: T1 T2 T3)" >&2; exit 2 ;;
  esac
}
arms_of() { # trace
  if [[ $1 == T3 ]]; then echo "$t3_arms"; else echo "$only"; fi
}
samples_of() { # trace: the samples files a finished run has
  if [[ $1 == T3 ]]; then echo "samples-voiceassist-api.jsonl samples-reports-api.jsonl"; else echo samples.jsonl; fi
}
settings_of() { # arm → "mode pool overflow redis delivery path"
  case $1 in
    A) echo "static 20 40 50 Env direct" ;;
    B) echo "static 50 100 100 Env direct" ;;
    D) echo "static 16 32 50 Env direct" ;;
    C) echo "poolpilot 10 20 10 Env direct" ;;
    E) echo "poolpilot 10 20 10 ConfigMap direct" ;;
    F) echo "poolpilot 40 20 50 Env pgbouncer" ;;
    S) echo "static 8 16 50 Env direct" ;;
    S2) echo "static 12 12 50 Env direct" ;;
    *) echo "bench/arms: unknown arm '$1' in BENCH_ARMS_ONLY or BENCH_T3_ARMS (known: A B D C E F; T3: S S2 C E)" >&2; exit 2 ;;
  esac
}
[[ $repeats =~ ^[1-9][0-9]*$ ]] || { echo "bench/arms: BENCH_REPEATS must be a positive whole number, not '$repeats'" >&2; exit 2; }
for trace in $traces; do
  phases_of "$trace" >/dev/null
  for arm in $(arms_of "$trace"); do
    settings_of "$arm" >/dev/null
    [[ $trace != T3 || $arm != F ]] || { echo "bench/arms: arm F (one app through PgBouncer) has no T3 run; drop it from BENCH_T3_ARMS" >&2; exit 2; }
  done
done

# True when dir holds a finished run (rc 0) of these phases and seed, with its samples, on the
# same kind of node (NODE).
done_before() { # dir phases seed trace
  local file
  [[ -f $1/arm.json ]] || return 1
  for file in $(samples_of "$4"); do [[ -f $1/$file ]] || return 1; done
  /usr/bin/python3 - "$1/arm.json" "$2" "$3" "$on_node" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
same = meta.get("phases") == sys.argv[2] and meta.get("seed") == sys.argv[3] and meta.get("node", 0) == int(sys.argv[4])
sys.exit(0 if meta.get("rc") == 0 and same else 1)
EOF
}

plane_was_up=0
[[ -f .local/env ]] && plane_was_up=1
NODE=$on_node NODE_SYNC_FREQUENCY=${NODE_SYNC_FREQUENCY:-5s} bash test/controlplane/local-up.sh
((plane_was_up)) || trap 'bash test/controlplane/local-down.sh' EXIT

run_one() { # trace arm repeat
  local trace=$1 arm=$2 repeat=$3 phases seed mode pool overflow redis delivery path dir apps_env=()
  phases=$(phases_of "$trace")
  seed=$base_seed-$trace-r$repeat
  read -r mode pool overflow redis delivery path <<<"$(settings_of "$arm")"
  dir=$outdir/$trace/$arm/r$repeat
  if [[ $trace == T3 ]]; then   # phases "voiceassist-api=<a> reports-api=<b>"
    local first second
    read -r first second <<<"$phases"
    apps_env=(DEMO_APPS=2 "DEMO_PHASES=${first#*=}" "DEMO_PHASES_B=${second#*=}")
  else
    apps_env=(DEMO_APPS=1 "DEMO_PHASES=$phases")
  fi
  if [[ $fresh != 1 ]] && done_before "$dir" "$phases" "$seed" "$trace"; then
    log "$trace/$arm/r$repeat: done before (rc 0, same phases, seed and node), skipped (BENCH_FRESH=1 redoes it)"
    return
  fi
  rm -rf "${dir:?}"
  mkdir -p "$dir"
  log "$trace/$arm/r$repeat: $mode, delivery $delivery, path $path, start DB_POOL_SIZE $pool / DB_MAX_OVERFLOW $overflow / REDIS_MAX_CONNECTIONS $redis, phases $phases, seed $seed"
  local started=$SECONDS started_at rc=0
  started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  env "${apps_env[@]}" DEMO_ARM="$mode" DEMO_POOL_SIZE="$pool" DEMO_MAX_OVERFLOW="$overflow" DEMO_REDIS_MAX_CONNECTIONS="$redis" \
    DEMO_DELIVERY="$delivery" DEMO_PATH="$path" DEMO_OUT_DIR="$dir" DEMO_SEED="$seed" DEMO_LOAD=bench/arms_load.py DEMO_KEEP_PLANE=1 NODE="$on_node" bash demo/run.sh >"$dir/run.log" 2>&1 || rc=$?
  local meta
  meta=$(printf '{"trace": "%s", "arm": "%s", "repeat": %s, "seed": "%s", "mode": "%s", "path": "%s", "pool_size": %s, "max_overflow": %s, "redis_max_connections": %s, "phases": "%s", "rc": %s, "started": "%s", "seconds": %s, "commit": "%s", "node": %s}' \
    "$trace" "$arm" "$repeat" "$seed" "$mode" "$path" "$pool" "$overflow" "$redis" "$phases" "$rc" "$started_at" "$((SECONDS - started))" "$(git rev-parse --short HEAD)" "$on_node")
  echo "$meta" >"$dir/arm.json"
  echo "$meta" >>"$outdir/runs.jsonl"
  log "$trace/$arm/r$repeat: done in $((SECONDS - started)) s (exit $rc; log $dir/run.log)"
}

npm --silent run build >/dev/null
node_modules/.bin/tsc -p demo/tsconfig.json
mkdir -p "$outdir"
log "traces: $traces; arms of T1/T2: $only, of T3: $t3_arms; repeats: $repeats; base seed $base_seed"
for ((repeat = 1; repeat <= repeats; repeat++)); do
  for trace in $traces; do
    for arm in $(arms_of "$trace"); do
      run_one "$trace" "$arm" "$repeat"
    done
  done
done
report_args=()
for trace in $traces; do report_args+=(--trace "$trace=$(phases_of "$trace")"); done
[[ -z $results ]] || report_args+=(--results "$results")
/usr/bin/python3 bench/arms_report.py --dir "$outdir" "${report_args[@]}"
