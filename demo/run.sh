#!/usr/bin/env bash
# `make demo` after the build: the local control plane, PostgreSQL + Redis (demo/up.sh), the demo
# Deployments and PoolPolicy, the node agent, the operator, ~5 minutes of load, the report, and
# everything stopped again (Ctrl-C too). Output in .local/demo/: report.md, report.svg,
# samples.jsonl, logs/ (operator, node agent, pods, postgres, redis).
# DEMO_PHASES="users:seconds,..." overrides the traffic phases (default 5:20,50:70,120:140,20:60).
# For bench/arms.sh: DEMO_ARM=static runs no operator and no PoolPolicy/ConnectionBudget (default
# DEMO_ARM=poolpilot); DEMO_POOL_SIZE / DEMO_MAX_OVERFLOW / DEMO_REDIS_MAX_CONNECTIONS replace the
# manifest's start values 10 / 20 / 10;
# DEMO_OUT_DIR (default .local/demo) gets samples.jsonl, the report, policy/events/deployment JSON
# and a copy of logs/; DEMO_LOAD replaces demo/load.py (same arguments).
# DEMO_APPS=2 (bench/arms.sh trace T3) adds a second app on the same database and Redis,
# reports-api (demo/manifests/second-app.yaml, same start values; in the poolpilot arm its
# PoolPolicy deploy/samples/demo/poolpolicy-reports-api.yaml on the same ConnectionBudget), and
# loads both apps at once, one load generator each: voiceassist-api with DEMO_PHASES, reports-api
# with DEMO_PHASES_B (defaults 5:15,120:60,10:60,10:40 and 10:15,10:60,120:60,5:40: offset
# peaks), seeds DEMO_SEED-<app>. Per app, DEMO_OUT_DIR gets samples-<app>.jsonl (and
# latencies-<app>.json from bench/arms_load.py), policy-<app>.json, deployment-<app>.json and
# <app>/report.md; no samples.jsonl.
# DEMO_DELIVERY=ConfigMap (bench/arms.sh arm E) delivers the pool settings without restarts: each
# app gets a ConfigMap <app>-pools whose pools.env holds the start values, mounted at
# /etc/poolpilot (POOL_CONFIG_FILE=/etc/poolpilot/pools.env; the app re-reads it), and its
# PoolPolicy gets spec.delivery {mode: ConfigMap, configMapRef: {name: <app>-pools}, reload: Resize,
# refresh: AnnotatePods} (the demo app resizes its pools in place, demo/workload/resizable_pools.py;
# the annotation makes the node's kubelet rewrite the file at once; DEMO_REFRESH=KubeletSync waits
# for its periodic sync instead). Default Env.
# DEMO_PATH=pgbouncer (default direct) sends the app through PgBouncer (transaction pooling) with
# fixed app pools (start values 40 / 20 / Redis 50 unless DEMO_POOL_SIZE etc. say otherwise), adds
# Debian's postgres_exporter (demo/manifests/postgres-exporter.yaml), and in the poolpilot arm
# applies deploy/samples/demo/connectionbudget-pgbouncer.yaml and poolpolicy-pgbouncer.yaml:
# poolpilot tunes PgBouncer's default_pool_size and max_client_conn live (ConfigMap + SIGHUP) and
# never writes the app's Deployment. One app only (DEMO_APPS=1), env delivery only (no DEMO_DELIVERY).
# NODE=1 (the default as root; NODE=0 otherwise) runs the Deployments as real Pods on the local
# node (test/controlplane/node.sh) instead of the node agent: the images image/build.sh makes
# from Debian packages, imported into the node's containerd; the manifests rewritten for it by
# demo/node_manifests.py; PostgreSQL and Redis also on the node's address; Prometheus finds the
# Pods by kubernetes_sd; the load generator sends to the Ready Pods the API lists. The real
# deployment controller rolls changes out.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
state=$root/.local/demo
arm=${DEMO_ARM:-poolpilot}
[[ $arm == poolpilot || $arm == static ]] || { echo "demo: DEMO_ARM must be poolpilot or static, not '$arm'" >&2; exit 2; }
out=${DEMO_OUT_DIR:-$state}
path=${DEMO_PATH:-direct}
apps_count=${DEMO_APPS:-1}
delivery=${DEMO_DELIVERY:-Env}
refresh=${DEMO_REFRESH:-AnnotatePods}
[[ $refresh == AnnotatePods || $refresh == KubeletSync ]] || { echo "demo: DEMO_REFRESH must be AnnotatePods or KubeletSync, not '$refresh'" >&2; exit 2; }
[[ $delivery == Env || $delivery == ConfigMap ]] || { echo "demo: DEMO_DELIVERY must be Env or ConfigMap, not '$delivery'" >&2; exit 2; }
case $apps_count in
  1) apps=(voiceassist-api) ;;
  2) apps=(voiceassist-api reports-api) ;;
  *) echo "demo: DEMO_APPS must be 1 or 2, not '$apps_count'" >&2; exit 2 ;;
esac
case $path in
  direct)
    # The runbook's low tier: poolpilot's database and redis sections move them (rollouts).
    pool_size=${DEMO_POOL_SIZE:-10} max_overflow=${DEMO_MAX_OVERFLOW:-20} redis_max=${DEMO_REDIS_MAX_CONNECTIONS:-10}
    budget_sample=deploy/samples/demo/connectionbudget.yaml policy_sample=deploy/samples/demo/poolpolicy.yaml
    # PostgreSQL's 3 superuser-reserved slots and one per load generator's sampler (a superuser
    # connection: it takes an ordinary slot while one is free); connectionbudget.yaml says 3 + 1.
    reserved=$((3 + apps_count)) ;;
  pgbouncer)
    ((apps_count == 1)) || { echo "demo: DEMO_PATH=pgbouncer runs one app; unset DEMO_APPS or set it to 1" >&2; exit 2; }
    [[ $delivery == Env ]] || { echo "demo: DEMO_PATH=pgbouncer keeps the app's pools fixed; unset DEMO_DELIVERY (ConfigMap delivery is for DEMO_PATH=direct)" >&2; exit 2; }
    # Fixed: client connections to PgBouncer cost PostgreSQL nothing, so each process may keep
    # open what its peak needs (40) plus room for bursts (20): the QueuePool never makes a request
    # wait, PgBouncer queues it for a server connection instead. Redis at the direct policy's max.
    pool_size=${DEMO_POOL_SIZE:-40} max_overflow=${DEMO_MAX_OVERFLOW:-20} redis_max=${DEMO_REDIS_MAX_CONNECTIONS:-50}
    budget_sample=deploy/samples/demo/connectionbudget-pgbouncer.yaml policy_sample=deploy/samples/demo/poolpolicy-pgbouncer.yaml
    reserved=6 ;;   # connectionbudget-pgbouncer.yaml says which 6
  *) echo "demo: DEMO_PATH must be direct or pgbouncer, not '$path'" >&2; exit 2 ;;
esac
node=$root/node_modules/.bin/node
log() { echo "demo: $*" >&2; }
# NODE unset: the real node as root (it needs root), the node agent otherwise.
on_node=${NODE:-$([[ $(id -u) -eq 0 ]] && echo 1 || echo 0)}
[[ $on_node == 0 || $on_node == 1 ]] || { echo "demo: NODE must be 0 or 1, not '$on_node'" >&2; exit 2; }
if ((on_node)); then log "on the local node (NODE=1; NODE=0 runs the Deployments on the node agent instead)"
else log "on the node agent (NODE=0; as root, NODE=1 runs real Pods on the local node)"; fi

plane_was_up=0
[[ -f .local/env ]] && plane_was_up=1
if ((on_node && plane_was_up)) && ! grep -q '^CONTAINERD_ADDRESS=' .local/env; then
  log "the local plane that runs has no node: 'make local-down' and run the demo again, or NODE=0 for the node agent"
  exit 1
fi
# The kubelet writes a ConfigMap change into a running Pod's volume on its next sync of the Pod
# (syncFrequency, 1m by default): the demo's node syncs every 5 s, time-compressed like the
# policy's windows (30 s -> 5 s), unless NODE_SYNC_FREQUENCY says otherwise.
NODE=$on_node NODE_SYNC_FREQUENCY=${NODE_SYNC_FREQUENCY:-5s} bash test/controlplane/local-up.sh
# shellcheck disable=SC1091
source .local/env
# Where Pods reach this machine's services (the node's bridge), and where the app pods reach them.
service_host=127.0.0.1
if ((on_node)); then
  service_host=$NODE_ADDRESS
  export DEMO_NODE_ADDRESS=$NODE_ADDRESS
  images=()
  for image_name in demo-workload pgbouncer; do
    { read -r image; read -r archive; } < <(bash image/build.sh archive "$image_name")
    ctr --address "$CONTAINERD_ADDRESS" --namespace k8s.io images import "$archive" >/dev/null
    images+=("$image")
  done
  log "imported ${images[*]} into the node's containerd"
  log "the node's kubelet syncs every $(sed -n 's/^syncFrequency: //p' .local/node/kubelet/config.yaml) (ConfigMap volumes follow a change that late)"
fi
kctl() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }

cleaning=0
cleanup() {
  ((cleaning)) && return
  cleaning=1
  trap '' INT TERM
  log "stopping the demo"
  bash "$here/down.sh"
  if [[ $out != "$state" ]]; then mkdir -p "$out/logs" && cp -r "$state/logs/." "$out/logs/" 2>/dev/null || true; fi
  if ((plane_was_up == 0)) && [[ ${DEMO_KEEP_PLANE:-0} != 1 ]]; then bash test/controlplane/local-down.sh; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# A run's logs are its own: those of an earlier run (its pods' names included) would be copied
# into this run's output with them.
rm -rf "$state/logs"
mkdir -p "$state/logs" "$state/pids" "$out"
rm -f "$out/samples.jsonl" "$out/report.md" "$out/report.svg" "$out/events.json" "$out/policy.json" "$out/deployment.json" \
  "$out"/samples-*.jsonl "$out"/policy-*.json "$out"/deployment-*.json
bash "$here/up.sh"
# shellcheck disable=SC1091
source "$state/env"

kctl apply --server-side --force-conflicts -f crds/ >/dev/null
kctl wait --for=condition=Established --timeout=60s crd --all >/dev/null
# A fresh start in namespace demo (namespaces cannot be deleted here: no controller-manager runs).
kctl apply -f - >/dev/null <<<'{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}}'
kctl -n demo delete poolpolicies,connectionbudgets,deployments,configmaps --all --ignore-not-found --wait >/dev/null
kctl -n demo delete events --all --ignore-not-found >/dev/null 2>&1 || true
# Debian's prometheus-pgbouncer-exporter, through the script that lets it read PgBouncer 1.18.
pgbouncer_exporter=$root/test/support/debian-pgbouncer-exporter.py
[[ -x /usr/bin/prometheus-pgbouncer-exporter ]] ||
  { log "/usr/bin/prometheus-pgbouncer-exporter is missing: run 'make install' (Debian package prometheus-pgbouncer-exporter)"; exit 1; }
app_db_port=$PG_PORT db_via=PostgreSQL
[[ $path == pgbouncer ]] && app_db_port=$PGBOUNCER_PORT db_via=PgBouncer
apply_manifest() { # file: the ports, the exporter's path and the start values replaced
  sed -e "s/127\.0\.0\.1/$service_host/g" -e "s/__PG_PORT__/$PG_PORT/g" -e "s/__REDIS_PORT__/$REDIS_PORT/g" -e "s/__PGBOUNCER_PORT__/$PGBOUNCER_PORT/g" \
    -e "s/__APP_DB_PORT__/$app_db_port/g" \
    -e "s|__PGBOUNCER_EXPORTER__|$pgbouncer_exporter|g" \
    -e "s/{name: DB_POOL_SIZE, value: \"10\"}/{name: DB_POOL_SIZE, value: \"$pool_size\"}/" \
    -e "s/{name: DB_MAX_OVERFLOW, value: \"20\"}/{name: DB_MAX_OVERFLOW, value: \"$max_overflow\"}/" \
    -e "s/{name: REDIS_MAX_CONNECTIONS, value: \"10\"}/{name: REDIS_MAX_CONNECTIONS, value: \"$redis_max\"}/" \
    "$1" | with_delivery | for_node | kctl apply -f - >/dev/null
}
for_node() {
  if ((on_node == 0)); then cat; return; fi
  kctl apply --dry-run=client -o json -f - | /usr/bin/python3 demo/node_manifests.py \
    --workload-image "${images[0]}" --pgbouncer-image "${images[1]}" --node-address "$NODE_ADDRESS" \
    --api-server "${KUBE_APISERVER_URL#https://}"
}
# DEMO_DELIVERY=ConfigMap: each app Deployment of the manifest (container api) gets its ConfigMap
# <app>-pools (the start values in pools.env) mounted at /etc/poolpilot and POOL_CONFIG_FILE, in
# the same first apply (so metadata.generation − 1 still counts only the rollouts of the run).
with_delivery() {
  if [[ $delivery == Env ]]; then cat; return; fi
  kctl apply --dry-run=client -o json -f - | /usr/bin/python3 -c '
import json, sys
pool_size, max_overflow, redis_max = sys.argv[1:4]
doc = json.load(sys.stdin)
items = doc["items"] if doc.get("kind") == "List" else [doc]
out = []
for item in items:
    out.append(item)
    spec = item.get("spec", {}).get("template", {}).get("spec", {})
    api = [c for c in spec.get("containers", []) if c["name"] == "api"]
    if item["kind"] != "Deployment" or not api:
        continue
    name = item["metadata"]["name"] + "-pools"
    spec.setdefault("volumes", []).append({"name": "pools", "configMap": {"name": name}})
    api[0].setdefault("volumeMounts", []).append({"name": "pools", "mountPath": "/etc/poolpilot"})
    api[0].setdefault("env", []).append({"name": "POOL_CONFIG_FILE", "value": "/etc/poolpilot/pools.env"})
    out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": item["metadata"]["namespace"]},
                "data": {"pools.env": f"DB_POOL_SIZE={pool_size}\nDB_MAX_OVERFLOW={max_overflow}\nREDIS_MAX_CONNECTIONS={redis_max}\n"}})
json.dump({"apiVersion": "v1", "kind": "List", "items": out}, sys.stdout)
' "$pool_size" "$max_overflow" "$redis_max"
}
apply_manifest demo/manifests/demo.yaml
[[ $delivery == ConfigMap ]] &&
  log "delivery ConfigMap: the apps read their pools from ConfigMap <app>-pools (pools.env), mounted at /etc/poolpilot"
log "applied demo/manifests/demo.yaml: voiceassist-api (2 replicas, DB_POOL_SIZE=$pool_size, DB_MAX_OVERFLOW=$max_overflow, REDIS_MAX_CONNECTIONS=$redis_max, DATABASE_URL to $db_via), pgbouncer + its ConfigMap, pgbouncer-exporter"
deployments=("${apps[@]}" pgbouncer pgbouncer-exporter)
if [[ $path == pgbouncer ]]; then
  [[ -x /usr/bin/prometheus-postgres-exporter ]] ||
    { log "/usr/bin/prometheus-postgres-exporter is missing: run 'make install' (Debian package prometheus-postgres-exporter)"; exit 1; }
  apply_manifest demo/manifests/postgres-exporter.yaml
  deployments+=(postgres-exporter)
  log "applied demo/manifests/postgres-exporter.yaml: Debian's postgres_exporter (2 superuser connections)"
fi
if ((apps_count == 2)); then
  apply_manifest demo/manifests/second-app.yaml
  log "applied demo/manifests/second-app.yaml: reports-api (2 replicas, same start values)"
fi

if ((on_node == 0)); then
  setsid "$node" "$state/build/node-agent.js" --kubeconfig "$KUBECONFIG" --namespace demo \
    --targets-dir "$PROMETHEUS_TARGETS_DIR" --state-dir "$state" --cwd "$root" >"$state/logs/node-agent.log" 2>&1 </dev/null &
  echo $! >"$state/pids/node-agent.pid"
  log "node agent started (pid $!, log $state/logs/node-agent.log)"
fi
for d in "${deployments[@]}"; do
  kctl -n demo rollout status "deployment/$d" --timeout=90s >/dev/null || {
    log "deployment $d did not become ready:"
    if ((on_node)); then kctl -n demo describe pods -l "app=$d" | tail -n 30 >&2; else tail -n 30 "$state/logs/node-agent.log" >&2; fi
    exit 1
  }
done
log "pods ready: $(kctl -n demo get deploy -o jsonpath='{range .items[*]}{.metadata.name}={.status.readyReplicas}/{.spec.replicas} {end}')"
# PgBouncer answers on its admin console (its config from the ConfigMap). No query
# goes to database app through it here: on the direct path its server connection would take one of
# the slots the apps' budget counts on.
/usr/bin/psql -X -w -h "$service_host" -p "$PGBOUNCER_PORT" -U admin -d pgbouncer -qAtc 'SHOW DATABASES' | grep -q '^app|' &&
  log "pgbouncer on $service_host:$PGBOUNCER_PORT is up and lists database app"

# Prometheus scrapes every app pod (and on the pgbouncer path both exporters) before poolpilot
# starts (else: NoData at first).
scraped='count(voiceassist_db_pool_size{namespace="demo"})' series=$((2 * apps_count))
if [[ $path == pgbouncer ]]; then
  scraped+=' + count(pg_settings_max_connections{namespace="demo"}) + count(pgbouncer_pool_size{namespace="demo",database="app"})'
  series=$((series + 2))
fi
for _ in $(seq 60); do
  n=$(curl -fsG "$PROMETHEUS_URL/api/v1/query" --data-urlencode "query=$scraped" |
    /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
  [[ $n == "$series" ]] && break
  sleep 0.5
done
if [[ $arm == poolpilot ]]; then
policies=(-f "$budget_sample" -f "$policy_sample")
((apps_count == 2)) && policies+=(-f deploy/samples/demo/poolpolicy-reports-api.yaml)
kctl apply "${policies[@]}" >/dev/null
[[ $path == direct ]] &&
  kctl -n demo patch connectionbudget demo-postgres --type merge -p "{\"spec\":{\"postgres\":{\"reserved\":$reserved}}}" >/dev/null
if [[ $delivery == ConfigMap ]]; then
  for app in "${apps[@]}"; do
    kctl -n demo patch poolpolicy "$app" --type merge \
      -p "{\"spec\":{\"delivery\":{\"mode\":\"ConfigMap\",\"configMapRef\":{\"name\":\"$app-pools\"},\"reload\":\"Resize\",\"refresh\":\"$refresh\"}}}" >/dev/null
  done
fi
setsid "$node" dist/cli.js run --kubeconfig "$KUBECONFIG" --prometheus-url "$PROMETHEUS_URL" --namespace demo \
  --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 --log-level info >"$state/logs/operator.log" 2>&1 </dev/null &
echo $! >"$state/pids/operator.pid"
log "poolpilot started (pid $!, log $state/logs/operator.log); policies: ${policies[*]}"
else
  log "static arm: no operator, no PoolPolicy; the pools stay at $pool_size + $max_overflow (and PgBouncer at its ConfigMap's sizes)"
fi

load_rc=0
pods_from=(--targets-dir "$PROMETHEUS_TARGETS_DIR")
((on_node)) && pods_from=(--pods-from-api)
load_args=("${pods_from[@]}" --prometheus-url "$PROMETHEUS_URL" --kubeconfig "$KUBECONFIG" --pg-port "$PG_PORT"
  --usable-connections $((100 - reserved)))
if ((apps_count == 1)); then
  /usr/bin/python3 "${DEMO_LOAD:-demo/load.py}" "${load_args[@]}" --out "$out/samples.jsonl" &
  load_pid=$!
  echo "$load_pid" >"$state/pids/load.pid"
  wait "$load_pid" || load_rc=$?
  rm -f "$state/pids/load.pid"
else
  # One load generator per app, started together and awaited together; their lines are prefixed.
  declare -A app_phases=([voiceassist-api]=${DEMO_PHASES:-5:15,120:60,10:60,10:40} [reports-api]=${DEMO_PHASES_B:-10:15,10:60,120:60,5:40})
  load_pids=()
  for app in "${apps[@]}"; do
    /usr/bin/python3 "${DEMO_LOAD:-demo/load.py}" "${load_args[@]}" --deployment "$app" --phases "${app_phases[$app]}" \
      --seed "${DEMO_SEED:-1}-$app" --out "$out/samples-$app.jsonl" > >(sed -u "s/^/$app: /") 2>&1 &
    load_pids+=($!)
    echo "$!" >"$state/pids/load-$app.pid"   # demo/down.sh stops every pids/*.pid
  done
  for pid in "${load_pids[@]}"; do
    pid_rc=0
    wait "$pid" || pid_rc=$?
    ((load_rc != 0)) || load_rc=$pid_rc
  done
  rm -f "$state"/pids/load-*.pid
fi

kctl -n demo get events.events.k8s.io -o json >"$out/events.json" 2>/dev/null || true
if ((apps_count == 1)); then
  kctl -n demo get poolpolicy voiceassist-api -o json >"$out/policy.json" 2>/dev/null || rm -f "$out/policy.json"   # none in a static arm
  kctl -n demo get deployment voiceassist-api -o json >"$out/deployment.json" 2>/dev/null || true
else
  for app in "${apps[@]}"; do
    kctl -n demo get poolpolicy "$app" -o json >"$out/policy-$app.json" 2>/dev/null || rm -f "$out/policy-$app.json"
    kctl -n demo get deployment "$app" -o json >"$out/deployment-$app.json" 2>/dev/null || true
  done
fi
kctl -n demo get poolpolicy,connectionbudget,deployment >&2 || true
if ((apps_count == 1)); then
  /usr/bin/python3 demo/report.py --samples "$out/samples.jsonl" --out-dir "$out" --path "$path" \
    --policy "$out/policy.json" --events "$out/events.json" --deployment "$out/deployment.json" \
    --max-connections 100 --reserved "$reserved"
  log "report: $out/report.md, chart: $out/report.svg"
else
  for app in "${apps[@]}"; do   # one report per app (its own samples; PostgreSQL connections are both apps')
    mkdir -p "$out/$app"
    /usr/bin/python3 demo/report.py --samples "$out/samples-$app.jsonl" --out-dir "$out/$app" \
      --policy "$out/policy-$app.json" --events "$out/events.json" --deployment "$out/deployment-$app.json" \
      --max-connections 100 --reserved "$reserved" ||
      log "demo/report.py failed for $app (its samples are kept in $out/samples-$app.jsonl)"
    log "report of $app: $out/$app/report.md, chart: $out/$app/report.svg"
  done
fi
exit "$load_rc"
