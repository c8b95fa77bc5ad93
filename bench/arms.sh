#!/usr/bin/env bash
# The three-arm part of `make bench` (numbers, never pass/fail): the demo's load trace
# (DEMO_PHASES, default 5:20,50:70,120:140,20:60) run three times in a row, each on fresh state
# (demo/run.sh: new PostgreSQL and Redis from demo/up.sh, demo namespace objects deleted and
# re-applied, everything stopped by demo/down.sh at the end):
#   A  static runbook default    DB_POOL_SIZE 20 / DB_MAX_OVERFLOW 40, no operator
#   B  static "very high" tier   DB_POOL_SIZE 50 / DB_MAX_OVERFLOW 100, no operator
#   C  poolpilot                 deploy/samples/demo/ (PoolPolicy + ConnectionBudget), start 10 / 20
# Each arm's samples, latencies, report and logs go to .local/bench-arms/<A|B|C>/; then
# bench/arms_report.py prints the table and replaces the `## Three arms` section of bench/results.md.
# BENCH_ARMS_ONLY="A C" runs a subset (the report covers the arms that have samples).
# Needs `make build`, the Debian packages `make install` installs and the demo build (tsc -p demo/tsconfig.json).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
outdir=$root/.local/bench-arms
phases=${DEMO_PHASES:-5:20,50:70,120:140,20:60}
export DEMO_PHASES=$phases
log() { echo "bench/arms: $*" >&2; }

plane_was_up=0
[[ -f .local/env ]] && plane_was_up=1
bash test/controlplane/local-up.sh
((plane_was_up)) || trap 'bash test/controlplane/local-down.sh' EXIT

run_arm() { # name arm pool overflow
  local name=$1 arm=$2 pool=$3 overflow=$4
  rm -rf "${outdir:?}/$name"
  mkdir -p "$outdir/$name"
  log "arm $name: $arm, start DB_POOL_SIZE $pool / DB_MAX_OVERFLOW $overflow, phases $phases"
  local started=$SECONDS rc=0
  DEMO_ARM=$arm DEMO_POOL_SIZE=$pool DEMO_MAX_OVERFLOW=$overflow DEMO_OUT_DIR=$outdir/$name \
    DEMO_LOAD=bench/arms_load.py DEMO_KEEP_PLANE=1 bash demo/run.sh >"$outdir/$name/run.log" 2>&1 || rc=$?
  printf '{"arm": "%s", "mode": "%s", "pool_size": %s, "max_overflow": %s, "phases": "%s", "rc": %s, "seconds": %s}\n' \
    "$name" "$arm" "$pool" "$overflow" "$phases" "$rc" "$((SECONDS - started))" >"$outdir/$name/arm.json"
  log "arm $name: done in $((SECONDS - started)) s (exit $rc; log $outdir/$name/run.log)"
}

only=${BENCH_ARMS_ONLY:-A B C}
[[ " $only " == *" A "* ]] && run_arm A static 20 40
[[ " $only " == *" B "* ]] && run_arm B static 50 100
[[ " $only " == *" C "* ]] && run_arm C poolpilot 10 20
/usr/bin/python3 bench/arms_report.py --dir "$outdir" --results bench/results.md
