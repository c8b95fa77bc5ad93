#!/usr/bin/python3
"""Replays the runbook's traffic tiers against the demo workload and records what happens.

Users: each concurrent user sends requests as a Poisson stream (mean gap --think seconds) and does
not wait for the previous answer (open loop, like page views from many browsers); every request
asks the app to hold its DB connection for a uniform --hold-min..--hold-max seconds. Phases
(--phases "users:seconds,...", default 5:20,50:70,120:140,20:60, about 5 minutes) set the number
of users. The load is seeded (--seed, env DEMO_SEED, default 1): the n-th user started in a run
draws its think gaps and hold times from its own generator random.Random("<seed>:<n>"), so two
runs with the same seed and phases send the same requests at the same offsets whatever the app's
answers or timing: phases start at fixed offsets from the start, and a user fires at its phase's
start + the sum of its gaps (a late wake-up fires at once; nothing is skipped), up to the end of
its phase. Requests go round-robin to the pods the node agent registered for Prometheus
(PROMETHEUS_TARGETS_DIR/demo-agent-<namespace>-<deployment>-*.json), or on a real node
(--pods-from-api) to the Deployment's Ready Pods as the API lists them, so rollouts are followed.

Every second it records a sample (.local/demo/samples.jsonl): users, requests ok / db pool
timeouts / redis errors / other errors in that second, DB pool utilization (the operator's own
query: max over pods), pool size, overflow and checked-out connections (Prometheus), the
Deployment's DB_POOL_SIZE / DB_MAX_OVERFLOW (with a POOL_CONFIG_FILE, what the pods report they
run), PostgreSQL connections (pg_stat_activity) and PgBouncer's pool size, waiting clients and
queries in it (its exporter, via Prometheus).
Every --interval seconds it prints a progress line. Needs Debian's python3-psycopg2.
"""
import argparse
import asyncio
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import psycopg2


def parse_phases(text):
    phases = []
    for part in text.split(","):
        users, seconds = part.split(":")
        phases.append((int(users), float(seconds)))
    return phases


class Stats:
    def __init__(self):
        self.reset()
        self.total = {"ok": 0, "db_timeout": 0, "pg_refused": 0, "redis_error": 0, "other_error": 0}

    def reset(self):
        self.window = {"ok": 0, "db_timeout": 0, "pg_refused": 0, "redis_error": 0, "other_error": 0}
        self.latencies = []

    def add(self, kind, latency):
        self.window[kind] += 1
        self.total[kind] += 1
        if kind == "ok":
            self.latencies.append(latency)


class RoundRobin:
    """The addresses requests go to, in turn; a subclass's refresh() replaces them."""

    def __init__(self):
        self.list = []
        self.next = 0

    def pick(self):
        if not self.list:
            return None
        self.next = (self.next + 1) % len(self.list)
        return self.list[self.next]


class Endpoints(RoundRobin):
    """The node agent's Pods of the Deployment, from its file_sd targets."""

    def __init__(self, targets_dir, namespace, deployment):
        super().__init__()
        self.pattern = os.path.join(targets_dir, f"demo-agent-{namespace}-{deployment}-*.json")
        self.deployment = deployment

    def refresh(self):
        found = []
        for path in sorted(glob.glob(self.pattern)):
            try:
                with open(path) as f:
                    for group in json.load(f):
                        # The glob also finds look-alikes (voiceassist-api-worker-…): keep this Deployment's.
                        if group.get("labels", {}).get("deployment") == self.deployment:
                            found.extend(group["targets"])
            except (OSError, ValueError):
                continue
        self.list = found


def ready_pod_endpoints(pods):
    """"<pod IP>:<port named http>" of each Pod that is Ready and not terminating, sorted."""
    found = []
    for pod in pods:
        status = pod.get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        if not ready or pod["metadata"].get("deletionTimestamp") or not status.get("podIP"):
            continue
        ports = [p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", []) if p.get("name") == "http"]
        if ports:
            found.append(f"{status['podIP']}:{ports[0]}")
    return sorted(found)


class PodEndpoints(RoundRobin):
    """The Deployment's Pods on a real node (--pods-from-api), as a Service's endpoints would list
    them: Ready, not terminating, at their IP and the port named http. Read from the API through a
    `kubectl proxy` this starts (no kube-proxy routes a Service's address here)."""

    def __init__(self, kubeconfig, namespace, deployment):
        super().__init__()
        self.proxy = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "proxy", "--port=0"],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proxy.stdout.readline()  # "Starting to serve on 127.0.0.1:<port>"
        if "serve on" not in line:
            raise SystemExit(f"load: kubectl proxy did not start: {line!r}")
        selector = urllib.parse.quote(f"app={deployment}")
        self.url = f"http://{line.rsplit(' ', 1)[1].strip()}/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"

    def refresh(self):
        try:
            with urllib.request.urlopen(self.url, timeout=2) as r:
                pods = json.load(r)["items"]
        except (OSError, ValueError):
            return
        self.list = ready_pod_endpoints(pods)

    def close(self):
        self.proxy.terminate()


async def one_request(endpoints, stats, hold, timeout):
    start = time.monotonic()
    for _attempt in range(3):
        target = endpoints.pick()
        if target is None:
            await asyncio.sleep(0.2)
            continue
        host, port = target.rsplit(":", 1)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
        except (OSError, asyncio.TimeoutError):
            continue  # a pod that just went away: try the next one
        try:
            writer.write(f"GET /?hold={hold:.3f} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
        except (OSError, asyncio.TimeoutError):
            stats.add("other_error", 0)
            return
        finally:
            writer.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        if not head:
            continue  # closed without an answer (pod stopping): retry elsewhere
        status = int(head.split(" ", 2)[1])
        if status == 200:
            stats.add("ok", time.monotonic() - start)
        elif "X-Error: db-pool-timeout" in head:
            stats.add("db_timeout", 0)
        elif "X-Error: db-connection-refused" in head:
            stats.add("pg_refused", 0)
        elif "X-Error: redis-too-many-connections" in head:
            stats.add("redis_error", 0)
        else:
            stats.add("other_error", 0)
        return
    stats.add("other_error", 0)


def user_random(seed, number):
    """The generator of the number-th user started in a run (0-based): same seed, same draws."""
    return random.Random(f"{seed}:{number}")


class Span:
    """A user's active time on the monotonic clock, fixed by the phases when it is started."""

    def __init__(self, start, stop):
        self.start = start
        self.stop = stop


def user_span(phases, phase_starts, phase_index, position):
    """The span of the user at `position` (0-based) of the users' stack started in phase_index:
    users leave newest first, so it stops where a later phase has no more than `position` users."""
    stop_phase = next((j for j in range(phase_index + 1, len(phases)) if phases[j][0] <= position), len(phases))
    return Span(phase_starts[phase_index], phase_starts[stop_phase])


def user_schedule(rng, start, think, hold_min, hold_max):
    """The user's requests, endless: (time, hold seconds) at start + each cumulative gap."""
    at = start
    while True:
        at += rng.expovariate(1.0 / think)
        yield at, rng.uniform(hold_min, hold_max)


async def user(endpoints, stats, args, span, inflight, rng):
    """Sends the scheduled requests that fall before span.stop, each at its time or at once if late."""
    for at, hold in user_schedule(rng, span.start, args.think, args.hold_min, args.hold_max):
        while at < span.stop and (delay := at - time.monotonic()) > 0:
            await asyncio.sleep(min(delay, 0.25))  # wakes up to see a stop set by Ctrl-C
        if at >= span.stop:
            return
        task = asyncio.create_task(one_request(endpoints, stats, hold, args.request_timeout))
        inflight.add(task)
        task.add_done_callback(inflight.discard)


class Observer:
    """Prometheus, PostgreSQL and the Deployment, read once per second in a thread."""

    def __init__(self, args):
        self.args = args
        self.pg = None
        self.deployment_env = {}
        self.deployment_read = 0.0

    def prom(self, query):
        url = f"{self.args.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                result = json.load(r)["data"]["result"]
            return float(result[0]["value"][1]) if result else None
        except Exception:  # noqa: BLE001 - a missing number is shown as "-"
            return None

    def postgres(self):
        try:
            if self.pg is None:
                self.pg = psycopg2.connect(host="127.0.0.1", port=self.args.pg_port, user="postgres", dbname="postgres")
                self.pg.autocommit = True
            with self.pg.cursor() as cur:
                cur.execute(
                    "SELECT count(*), count(*) FILTER (WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),"
                    " count(*) FILTER (WHERE usename = 'app') FROM pg_stat_activity"
                )
                return cur.fetchone()
        except Exception:  # noqa: BLE001
            self.pg = None
            return (None, None, None)

    def deployment(self):
        if time.monotonic() - self.deployment_read > 2.5:
            self.deployment_read = time.monotonic()
            try:
                out = subprocess.run(
                    ["kubectl", "--kubeconfig", self.args.kubeconfig, "-n", self.args.namespace, "get", "deployment", self.args.deployment, "-o", "json"],
                    capture_output=True, text=True, timeout=5, check=True,
                ).stdout
                d = json.loads(out)
                container = d["spec"]["template"]["spec"]["containers"][0]
                self.deployment_env = {e["name"]: e.get("value") for e in container.get("env", [])}
                self.deployment_env["_generation"] = d["metadata"].get("generation")
            except Exception:  # noqa: BLE001
                pass
        return self.deployment_env

    def observe(self):
        # The node agent labels its pods' series with their Deployment: exact, unlike pod=~"<deployment>-.*".
        sel = f'namespace="{self.args.namespace}",deployment="{self.args.deployment}"'
        p = "voiceassist_"
        bouncer = f'namespace="{self.args.namespace}",database="app"'
        total, clients, app_conns = self.postgres()
        env = self.deployment()

        def env_int(name):
            try:
                return int(env.get(name))
            except (TypeError, ValueError):
                return None

        return {
            "utilization": self.prom(f"max({p}db_pool_utilization_percent{{{sel}}})"),
            "pool_size_metric": self.prom(f"max({p}db_pool_size{{{sel}}})"),
            "overflow": self.prom(f"sum({p}db_pool_overflow{{{sel}}})"),
            "checked_out": self.prom(f"sum({p}db_pool_checked_out{{{sel}}})"),
            "redis_utilization": self.prom(f"max(100 * {p}redis_pool_in_use{{{sel}}} / {p}redis_pool_max_connections{{{sel}}})"),
            "pods": self.prom(f"count({p}db_pool_size{{{sel}}})"),
            **self.settings(env, env_int, sel, p),
            "generation": env.get("_generation"),
            # PgBouncer's pool for database app (Debian's exporter; None where it is not scraped):
            # the size it runs, the clients waiting for a server connection now, and the mean
            # number of queries in PgBouncer over the last 10 s (total_query_time includes the
            # wait for a server connection: running or waiting).
            "pgbouncer_pool_size": self.prom(f'max(pgbouncer_pool_size{{{bouncer}}})'),
            "pgbouncer_waiting": self.prom(f'sum(pgbouncer_waiting_clients{{{bouncer}}})'),
            "pgbouncer_queries": self.prom(f'sum(rate(pgbouncer_query_microseconds_total{{{bouncer}}}[10s])) / 1e6'),
            "pg_total": total,
            "pg_clients": clients,
            "pg_app": app_conns,
        }


    def settings(self, env, env_int, sel, p):
        """The pool settings: the Deployment's env, or with a pool config file (DEMO_DELIVERY=ConfigMap,
        where poolpilot writes a ConfigMap the pods re-read) what the pods report they run (the max over pods)."""
        if env.get("POOL_CONFIG_FILE"):
            def gauge(name):
                v = self.prom(f"max({p}{name}{{{sel}}})")
                return None if v is None else int(v)
            return {"db_pool_size": gauge("db_pool_size"), "db_max_overflow": gauge("db_pool_max_overflow"),
                    "redis_max_connections": gauge("redis_pool_max_connections")}
        return {"db_pool_size": env_int("DB_POOL_SIZE"), "db_max_overflow": env_int("DB_MAX_OVERFLOW"),
                "redis_max_connections": env_int("REDIS_MAX_CONNECTIONS")}


def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default=os.environ.get("DEMO_PHASES", "5:20,50:70,120:140,20:60"))
    ap.add_argument("--seed", default=os.environ.get("DEMO_SEED") or "1",
                    help="seed of the users' think gaps and hold times (env DEMO_SEED, default 1)")
    ap.add_argument("--think", type=float, default=0.6, help="mean seconds between one user's requests")
    ap.add_argument("--hold-min", type=float, default=0.2)
    ap.add_argument("--hold-max", type=float, default=0.6)
    ap.add_argument("--request-timeout", type=float, default=10)
    ap.add_argument("--interval", type=float, default=5, help="progress line period (the policy's interval)")
    ap.add_argument("--usable-connections", type=int, default=97,
                    help="PostgreSQL connections the app's role may have (max_connections - reserved), for the progress line")
    ap.add_argument("--namespace", default="demo")
    ap.add_argument("--deployment", default="voiceassist-api")
    ap.add_argument("--targets-dir", help="the node agent's file_sd directory: its Pods get the requests")
    ap.add_argument("--pods-from-api", action="store_true",
                    help="send the requests to the Deployment's Ready Pods as the API lists them (a real node)")
    ap.add_argument("--prometheus-url", required=True)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--out", required=True, help="samples file (JSON lines)")
    args = ap.parse_args()

    phases = parse_phases(args.phases)
    if args.pods_from_api:
        endpoints = PodEndpoints(args.kubeconfig, args.namespace, args.deployment)
    elif args.targets_dir:
        endpoints = Endpoints(args.targets_dir, args.namespace, args.deployment)
    else:
        ap.error("say where the pods are: --targets-dir (the node agent) or --pods-from-api (a real node)")
    stats = Stats()
    observer = Observer(args)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)

    async def refresher():
        while not stopped.is_set():
            await loop.run_in_executor(None, endpoints.refresh)
            await asyncio.sleep(0.5)

    refresh_task = asyncio.create_task(refresher())
    endpoints.refresh()
    print(f"load: phases {', '.join(f'{u} users for {s:.0f}s' for u, s in phases)}; each user: a request every "
          f"{args.think}s on average, holding a DB connection {args.hold_min}-{args.hold_max}s; seed {args.seed}", flush=True)
    print(f"{'time':>5} {'users':>5} {'req/s':>6} {'util%':>6} {'pool':>9} {'overflow':>8} {'timeouts':>8} "
          f"{'errors':>6} {'p95 ms':>6} {'pg conns/max':>12}", flush=True)

    inflight = set()
    users = []  # (task, span) of the users on now, the newest last
    user_tasks = set()
    users_started = 0
    out = open(args.out, "w")
    t0 = time.monotonic()
    phase_starts = [t0 + sum(seconds for _, seconds in phases[:i]) for i in range(len(phases) + 1)]
    phase_index = 0
    next_sample = t0 + 1
    next_print = t0 + args.interval
    printed = {"ok": 0, "db_timeout": 0, "pg_refused": 0, "redis_error": 0, "other_error": 0}
    try:
        while not stopped.is_set() and phase_index < len(phases):
            want = phases[phase_index][0]
            while len(users) < want:
                span = user_span(phases, phase_starts, phase_index, len(users))
                rng = user_random(args.seed, users_started)
                users_started += 1
                task = asyncio.create_task(user(endpoints, stats, args, span, inflight, rng))
                user_tasks.add(task)
                task.add_done_callback(user_tasks.discard)
                users.append((task, span))
            del users[want:]  # their spans ended at this phase's start
            now = time.monotonic()
            if now >= next_sample:
                window = stats.window
                lat = sorted(stats.latencies)
                p95 = lat[int(0.95 * (len(lat) - 1))] * 1000 if lat else None
                stats.reset()
                obs = await loop.run_in_executor(None, observer.observe)
                sample = {"t": round(now - t0, 2), "phase": phase_index, "users": want, **window, "p95_ms": p95, **obs}
                out.write(json.dumps(sample) + "\n")
                out.flush()
                next_sample += 1
                if now >= next_print:
                    next_print += args.interval
                    tot = stats.total
                    errs = tot["pg_refused"] + tot["redis_error"] + tot["other_error"]
                    d = {k: tot[k] - printed[k] for k in tot}
                    printed = dict(tot)
                    pool = f"{fmt(obs['db_pool_size'])}+{fmt(obs['db_max_overflow'])}"
                    print(f"{now - t0:5.0f} {want:5d} {sum(d.values()) / args.interval:6.0f} {fmt(obs['utilization'], '{:.0f}'):>6} "
                          f"{pool:>9} {fmt(obs['overflow']):>8} {tot['db_timeout']:>4}(+{d['db_timeout']}) "
                          f"{errs:>6} {fmt(p95):>6} {fmt(obs['pg_app']):>5} / {args.usable_connections}", flush=True)
            if now >= phase_starts[phase_index + 1]:
                phase_index += 1
                if phase_index < len(phases):
                    print(f"load: phase {phase_index + 1}: {phases[phase_index][0]} users for {phases[phase_index][1]:.0f}s", flush=True)
            await asyncio.sleep(0.05)
    finally:
        if stopped.is_set():
            for _task, span in users:
                span.stop = min(span.stop, time.monotonic())
        if user_tasks:
            await asyncio.wait(list(user_tasks), timeout=5)
        refresh_task.cancel()
        if isinstance(endpoints, PodEndpoints):
            endpoints.close()
        if inflight:
            await asyncio.wait(list(inflight), timeout=args.request_timeout)
        out.close()
    print(f"load: done: {stats.total}", flush=True)
    return 130 if stopped.is_set() else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
