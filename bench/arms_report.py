#!/usr/bin/python3
"""The three arms' figures from bench/arms.sh's output (.local/bench-arms/<arm>/): prints a
markdown table and replaces the `## Three arms` section of bench/results.md (the same way as
bench/results.ts writeResultsSection: that section only, appended if missing).

Per arm, from samples.jsonl (one sample a second, demo/load.py + bench/arms_load.py),
latencies.json, deployment.json, events.json and logs/postgres.log:
- QueuePool timeouts, Redis 'Too many connections' errors, PostgreSQL refusals (HTTP 503
  db-connection-refused answers; and the "remaining connection slots are reserved" lines in the
  PostgreSQL log), other errors, requests ok: counted by the load generator from the answers;
- p50 / p95 latency of the successful requests (client side);
- peak PostgreSQL connections (pg_stat_activity once a second: the app role; all client backends)
  against max_connections 100 (97 without the superuser-reserved slots);
- idle-connection-seconds: sum over samples of the app role's pg_stat_activity rows in state
  'idle' × the sample period (and the same from voiceassist_db_pool_checked_in);
- changes: Deployment template changes (metadata.generation − 1 = rollouts), poolpilot's
  PoolResized events;
- time to no more timeouts, per load phase: the time of the phase's last sample with a timeout,
  relative to the phase start (so the timeouts stop from then on); "none" if the phase had none,
  "never" if they still occur in the phase's last 5 s; the same for errors of any kind;
- direction flips: reversals in the sequence of DB_POOL_SIZE values (up then down, or down then up).
"""
import argparse
import datetime
import json
import os
import re

ARMS = [("A", "static runbook default 20 / 40"), ("B", 'static "very high" 50 / 100'), ("C", "poolpilot (start 10 / 20)")]
DEFAULT_PHASES = "5:20,50:70,120:140,20:60"
MAX_CONNECTIONS, RESERVED = 100, 3


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def analyse(d):
    with open(os.path.join(d, "samples.jsonl")) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    if not samples:
        return None
    meta = read_json(os.path.join(d, "arm.json"), {})
    lat = read_json(os.path.join(d, "latencies.json"), {}).get("ok", [])
    total = lambda k: sum(s.get(k) or 0 for s in samples)  # noqa: E731
    peak = lambda k: max((s[k] for s in samples if s.get(k) is not None), default=None)  # noqa: E731

    idle_pg = idle_pool = 0.0
    prev_t = 0.0
    for s in samples:
        dt = s["t"] - prev_t
        prev_t = s["t"]
        idle_pg += (s.get("pg_idle_app") or 0) * dt
        idle_pool += (s.get("checked_in") or 0) * dt

    refused_log = 0
    try:
        with open(os.path.join(d, "logs", "postgres.log"), errors="replace") as f:
            refused_log = sum(1 for line in f if "remaining connection slots are reserved" in line or "too many clients" in line)
    except OSError:
        pass

    dep = read_json(os.path.join(d, "deployment.json"), {})
    generation = dep.get("metadata", {}).get("generation")
    rollouts = None if generation is None else generation - 1
    events = read_json(os.path.join(d, "events.json"), {}).get("items", [])
    resized = sum((e.get("deprecatedCount") or e.get("count") or 1) for e in events if e.get("reason") == "PoolResized")

    sizes = []
    for s in samples:
        v = s.get("db_pool_size")
        if v is not None and (not sizes or sizes[-1] != v):
            sizes.append(v)
    flips, direction = 0, 0
    for a, b in zip(sizes, sizes[1:]):
        step = 1 if b > a else -1
        if direction and step != direction:
            flips += 1
        direction = step

    # phases from the samples: a phase starts where the previous one's last sample was
    phases = []
    for s in samples:
        if not phases or phases[-1]["index"] != s["phase"]:
            start = phases[-1]["end"] if phases else 0.0
            phases.append({"index": s["phase"], "users": s["users"], "start": start, "end": s["t"], "samples": []})
        phases[-1]["end"] = s["t"]
        phases[-1]["samples"].append(s)
    def settle(p, count):
        with_t = [s["t"] for s in p["samples"] if count(s)]
        n = sum(count(s) for s in p["samples"])
        if not with_t:
            return "none"
        if with_t[-1] > p["end"] - 5:
            return f"never ({n})"
        return f"{with_t[-1] - p['start']:.0f} s ({n})"

    errors = lambda s: sum(s.get(k) or 0 for k in ("db_timeout", "pg_refused", "redis_error", "other_error"))  # noqa: E731
    recovery = [(p["users"], f"{settle(p, lambda s: s.get('db_timeout') or 0)} · {settle(p, errors)}") for p in phases]

    return {
        "meta": meta, "seconds": samples[-1]["t"], "ok": total("ok"), "db_timeout": total("db_timeout"),
        "redis_error": total("redis_error"), "pg_refused": total("pg_refused"), "other_error": total("other_error"),
        "refused_log": refused_log, "p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99),
        "peak_app": peak("pg_app"), "peak_clients": peak("pg_clients"), "peak_total": peak("pg_total"),
        "idle_pg": idle_pg, "idle_pool": idle_pool, "rollouts": rollouts, "resized": resized,
        "sizes": sizes, "flips": flips, "recovery": recovery,
    }


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            model = m.group(1).strip() if m else model
        with open("/proc/meminfo") as f:
            kib = int(re.search(r"^MemTotal:\s*(\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        kib = 0
    return f"{os.cpu_count()} × {model}, {kib / 2 ** 20:.0f} GiB"


def write_section(path, title, body):
    default = "# Benchmark results\n\nWritten by `make bench`; each section is replaced when its benchmark runs again.\n"
    current = open(path).read() if os.path.exists(path) else default
    heading = f"## {title}\n"
    section = f"{heading}\n{body}\n"
    start = current.find(heading)
    if start < 0:
        new = f"{current.rstrip()}\n\n{section}"
    else:
        end = current.find("\n## ", start + len(heading))
        new = current[:start] + section + ("" if end < 0 else current[end + 1:])
    with open(path, "w") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help=".local/bench-arms")
    ap.add_argument("--results", help="bench/results.md to update (omit: print only)")
    args = ap.parse_args()

    arms = []
    for name, label in ARMS:
        d = os.path.join(args.dir, name)
        r = analyse(d) if os.path.exists(os.path.join(d, "samples.jsonl")) else None
        if r:
            arms.append((name, label, r))
    if not arms:
        raise SystemExit("arms_report: no arm has samples")

    ms = lambda v: "-" if v is None else f"{v * 1000:.0f} ms"  # noqa: E731
    rows = [
        ("requests ok", lambda r: f"{r['ok']}"),
        ("QueuePool timeouts", lambda r: f"{r['db_timeout']}"),
        ("Redis connection errors", lambda r: f"{r['redis_error']}"),
        ('PostgreSQL refusals (503 answers / "slots are reserved" log lines)', lambda r: f"{r['pg_refused']} / {r['refused_log']}"),
        ("other errors", lambda r: f"{r['other_error']}"),
        ("latency p50 / p95 / p99 (ok requests)", lambda r: f"{ms(r['p50'])} / {ms(r['p95'])} / {ms(r['p99'])}"),
        (f"peak PostgreSQL connections: app role / all client backends (max_connections {MAX_CONNECTIONS}, {MAX_CONNECTIONS - RESERVED} usable)",
         lambda r: f"{r['peak_app']} / {r['peak_clients']}"),
        ("idle-connection-seconds (pg_stat_activity idle / pool checked_in)", lambda r: f"{r['idle_pg']:.0f} / {r['idle_pool']:.0f}"),
        ("changes (rollouts = generation − 1 / PoolResized events)", lambda r: f"{r['rollouts']} / {r['resized']}"),
        ("DB_POOL_SIZE values in order", lambda r: " → ".join(str(v) for v in r["sizes"])),
        ("direction flips", lambda r: f"{r['flips']}"),
    ]
    n_phases = max(len(r["recovery"]) for _, _, r in arms)
    for i in range(n_phases):
        users = next((r["recovery"][i][0] for _, _, r in arms if len(r["recovery"]) > i), "?")
        rows.append((f"phase {i + 1} ({users} users): time to no more QueuePool timeouts · to no more errors of any kind (count)",
                     lambda r, i=i: r["recovery"][i][1] if len(r["recovery"]) > i else "-"))

    header = "| measure | " + " | ".join(f"{n}: {label}" for n, label, _ in arms) + " |"
    table = [header, "|---|" + "---|" * len(arms)]
    for title, fn in rows:
        table.append(f"| {title} | " + " | ".join(fn(r) for _, _, r in arms) + " |")

    phases = arms[0][2]["meta"].get("phases") or os.environ.get("DEMO_PHASES") or DEFAULT_PHASES
    shortened = phases != DEFAULT_PHASES
    failed = [f"{n} (exit {r['meta'].get('rc')})" for n, _, r in arms if r["meta"].get("rc") not in (0, None)]
    body = [
        f"Measured {datetime.date.today().isoformat()} by `make bench` (bench/arms.sh, bench/arms_report.py) on {machine()}: "
        f"the demo's load trace, phases `{phases}` (users:seconds)"
        + (f", **shorter than the demo's default `{DEFAULT_PHASES}`**" if shortened else " (the demo's default)")
        + ", once per arm, each on a fresh PostgreSQL (max_connections 100, 3 reserved) and Redis and fresh "
        "demo namespace objects; 2 replicas, DB_POOL_TIMEOUT 2 s, REDIS_MAX_CONNECTIONS starts at 10 (only poolpilot moves it). "
        "One run each: expect run-to-run noise.",
        "",
        *table,
        "",
        "How measured: the load generator counts the answers (503 + `X-Error`); latency is client side for successful requests; "
        "PostgreSQL connections and idle ones (role app, state 'idle') from pg_stat_activity once a second; "
        "time to no more timeouts (errors) = the phase's last sample with a timeout (any error: timeout, PostgreSQL refusal, "
        "Redis, other) minus the phase start (\"never\": still happening in its last 5 s); direction flips = reversals in the DB_POOL_SIZE sequence. "
        "Per-arm samples, reports and logs: `.local/bench-arms/<arm>/`.",
    ]
    if failed:
        body += ["", f"Arms whose demo/run.sh did not exit 0: {', '.join(failed)} (see `.local/bench-arms/<arm>/run.log`)."]
    text = "\n".join(body)
    print(text)
    if args.results:
        write_section(args.results, "Three arms", text)


if __name__ == "__main__":
    main()
