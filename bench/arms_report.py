#!/usr/bin/python3
"""The four arms' figures from bench/arms.sh's output (.local/bench-arms/<trace>/<arm>/r<n>/):
prints one markdown table per trace (median and min–max over the repeats), the issue's targets as
met / not met, and replaces the `## Four arms` section of bench/results.md (the same way as
bench/results.ts writeResultsSection: that section only, appended if missing; the older
`## Three arms` section is removed).

A run counts when its arm.json says rc 0 and its phases are the trace's phases (--trace T1=PHASES;
without it the phases of the trace's newest run); the others are listed as left out.
Per run, from samples.jsonl (one sample a second, demo/load.py + bench/arms_load.py),
latencies.json, deployment.json and events.json:
- requests ok, QueuePool timeouts, PostgreSQL refusals (503 db-connection-refused), other errors
  (Redis 'Too many connections' included): counted by the load generator from the answers, all
  of the run (latencies.json "counts", which has the answers after the last sample too);
- p50 / p95 / p99 latency of the successful requests (client side);
- peak PostgreSQL connections of the app role (pg_stat_activity once a second), against
  max_connections 100 (97 without the superuser-reserved slots, and one fewer for each load
  generator's sampler, a superuser connection in an ordinary slot);
- idle-connection-seconds: sum over samples of the app role's pg_stat_activity rows in state
  'idle' × the time since the previous sample;
- connections opened per second: (last − first pg_stat_database.sessions of database app) over the
  time between those two samples;
- rollouts: metadata.generation − 1 at the end; rollouts while ≥ 50 users were on: increases of the
  Deployment's generation (read every 2.5 s) where a sample from 2.5 s before the last one showing
  the old generation to the first showing the new one had ≥ 50 users (so a change near a phase
  boundary counts as busy);
- direction flips: reversals in the sequence of DB_POOL_SIZE values;
- errors per phase (all kinds);
- for runs through PgBouncer (arm F, arm.json path "pgbouncer"): PgBouncer's default_pool_size in
  order as PgBouncer ran it (pgbouncer_pool_size from its exporter in the samples). Their
  PostgreSQL connections are PgBouncer's server connections, against 100 − 6 = 94 (the
  postgres_exporter's 2 and the sampler's 1 connection are reserved too).
Trace T3 (two apps on one ConnectionBudget, demo/run.sh with DEMO_APPS=2) has its own table and
arms (S, S2, C): per app the same counts from samples-<app>.jsonl, latencies-<app>.json and
deployment-<app>.json, summed over the apps; p50 / p95 / p99 over both apps' successful requests;
peak PostgreSQL connections of the app role (both apps share it) over both load generators'
samples; rollouts per app.
"""
import argparse
import datetime
import json
import os
import re
import statistics

ARMS = [
    ("A", "static runbook default 20 / 40, Redis 50"),
    ("B", 'static "very high" 50 / 100, Redis 100'),
    ("D", "static fair share 16 / 32, Redis 50"),
    ("C", "poolpilot (start 10 / 20, Redis 10)"),
    ("E", "poolpilot, spec.delivery ConfigMap: no restarts, pools resized in place, pods annotated (start 10 / 20, Redis 10)"),
    ("F", "poolpilot tuning PgBouncer, app pools fixed at 40 / 20, Redis 50 (94 usable)"),
]
# The arms of issue 12 (changes without restarting) and the figure-key of their rollouts.
NO_RESTART_ARMS = ("E", "F")
TRACES = {"T1": "the runbook trace", "T2": "a second peak"}
T3_ARMS = [
    ("S", "best static split 8 / 16 for each app, Redis 50"),
    ("S2", "static split 12 / 12 for each app, Redis 50"),
    ("C", "poolpilot (both apps start 10 / 20, Redis 10)"),
    ("E", "poolpilot, spec.delivery ConfigMap, pools resized in place, pods annotated (both apps start 10 / 20, Redis 10)"),
]
T3_APPS = ("voiceassist-api", "reports-api")
MAX_CONNECTIONS, RESERVED = 100, 3
BUSY_USERS = 50
GENERATION_READ_PERIOD = 2.5  # demo/load.py reads the Deployment at most this often


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


def read_samples(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def analyse(d, app=None):
    """One run's figures, or None without samples; app: the files of one app of a T3 run
    (samples-<app>.jsonl, latencies-<app>.json, deployment-<app>.json)."""
    suffix = "" if app is None else f"-{app}"
    samples = read_samples(os.path.join(d, f"samples{suffix}.jsonl"))
    if not samples:
        return None
    answers = read_json(os.path.join(d, f"latencies{suffix}.json"), {})
    lat = answers.get("ok", [])
    counts = answers.get("counts")

    def total(kind):
        """Answers of this kind in the whole run (bench/arms_load.py's counts; else the samples')."""
        return counts.get(kind, 0) if counts is not None else sum(s.get(kind) or 0 for s in samples)

    idle_pg = 0.0
    prev_t = 0.0
    for s in samples:
        idle_pg += (s.get("pg_idle_app") or 0) * (s["t"] - prev_t)
        prev_t = s["t"]

    sessions = [(s["t"], s["pg_sessions"]) for s in samples if s.get("pg_sessions") is not None]
    opened_per_s = None
    if len(sessions) >= 2 and sessions[-1][0] > sessions[0][0]:
        opened_per_s = (sessions[-1][1] - sessions[0][1]) / (sessions[-1][0] - sessions[0][0])

    generation = read_json(os.path.join(d, f"deployment{suffix}.json"), {}).get("metadata", {}).get("generation")
    # A sample carries the generation read up to GENERATION_READ_PERIOD earlier: a change started
    # between that long before the last sample still showing the old generation and the first
    # showing the new one; it counts as busy if any sample in that window had ≥ 50 users.
    busy_rollouts, prev_gen, last_old_t = 0, None, 0.0
    for s in samples:
        g = s.get("generation")
        if g is None:
            continue
        if prev_gen is not None and g > prev_gen:
            window = [x["users"] for x in samples if last_old_t - GENERATION_READ_PERIOD <= x["t"] <= s["t"]]
            if max(window) >= BUSY_USERS:
                busy_rollouts += g - prev_gen
        prev_gen, last_old_t = g, s["t"]

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

    phase_errors = {}
    for s in samples:
        errors = sum(s.get(k) or 0 for k in ("db_timeout", "pg_refused", "redis_error", "other_error"))
        phase_errors[s["phase"]] = phase_errors.get(s["phase"], 0) + errors
    phase_users = {}
    for s in samples:
        phase_users.setdefault(s["phase"], s["users"])
    # PgBouncer's pool size as it ran it (its exporter), repeats dropped: runs through PgBouncer only.
    bouncer_sizes = None
    if read_json(os.path.join(d, "arm.json"), {}).get("path") == "pgbouncer":
        bouncer_sizes = []
        for s in samples:
            v = s.get("pgbouncer_pool_size")
            if v is not None and (not bouncer_sizes or bouncer_sizes[-1] != round(v)):
                bouncer_sizes.append(round(v))

    return {
        "ok": total("ok"), "db_timeout": total("db_timeout"), "pg_refused": total("pg_refused"),
        "other": total("redis_error") + total("other_error"),
        "p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99),
        "peak_app": max((s["pg_app"] for s in samples if s.get("pg_app") is not None), default=None),
        "idle_pg": idle_pg, "opened_per_s": opened_per_s,
        "rollouts": None if generation is None else generation - 1, "busy_rollouts": busy_rollouts,
        "flips": flips, "sizes": sizes,
        "phase_errors": [phase_errors[i] for i in sorted(phase_errors)],
        "phase_users": [phase_users[i] for i in sorted(phase_users)],
        "timeouts_and_other": total("db_timeout") + total("redis_error") + total("other_error"),
        "latencies": lat,
        "capacities": capacities(samples),
        "bouncer_sizes": bouncer_sizes,
    }


def capacities(samples):
    """The Deployment's DB_POOL_SIZE+DB_MAX_OVERFLOW pairs in order, repeats dropped."""
    out = []
    for s in samples:
        pair = (s.get("db_pool_size"), s.get("db_max_overflow"))
        if None not in pair and (not out or out[-1] != pair):
            out.append(pair)
    return out


def analyse_t3(d):
    """A T3 run's figures: both apps' summed, and each app's under "apps"; None unless every app
    has samples."""
    apps = {app: analyse(d, app) for app in T3_APPS}
    if any(fig is None for fig in apps.values()):
        return None
    total = lambda key: sum(fig[key] for fig in apps.values())  # noqa: E731
    lat = [v for fig in apps.values() for v in fig["latencies"]]
    peaks = [fig["peak_app"] for fig in apps.values() if fig["peak_app"] is not None]
    return {
        "ok": total("ok"), "db_timeout": total("db_timeout"), "pg_refused": total("pg_refused"), "other": total("other"),
        "errors": total("db_timeout") + total("pg_refused") + total("other"),
        "p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99),
        "peak_app": max(peaks, default=None),
        "apps": apps,
    }


def runs_of(root, trace, arm):
    """[(run id, arm.json, figures or None)] of every r<n> directory, in repeat order (T3: the
    figures of analyse_t3)."""
    d = os.path.join(root, trace, arm)
    out = []
    if not os.path.isdir(d):
        return out
    names = sorted((n for n in os.listdir(d) if re.fullmatch(r"r\d+", n)), key=lambda n: int(n[1:]))
    for name in names:
        run_dir = os.path.join(d, name)
        figures = analyse_t3(run_dir) if trace == "T3" else analyse(run_dir)
        out.append((f"{trace}/{arm}/{name}", read_json(os.path.join(run_dir, "arm.json"), {}), figures))
    return out


def arms_of(trace):
    return T3_ARMS if trace == "T3" else ARMS


def newest_phases(root, trace):
    metas = [m for arm, _ in arms_of(trace) for _, m, _ in runs_of(root, trace, arm) if m.get("phases")]
    return max(metas, key=lambda m: m.get("started", ""))["phases"] if metas else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cell(values, fmt):
    """median (min–max) of the runs' values; just the value for one run."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = fmt(statistics.median(values))
    return med if len(values) == 1 else f"{med} ({fmt(min(values))}–{fmt(max(values))})"


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


def write_section(path, title, body, replaces=()):
    """Replaces the `## title` section of path (appended if missing) and removes the sections
    titled in `replaces`; the rest of the file stays byte for byte."""
    default = "# Benchmark results\n\nWritten by `make bench`; each section is replaced when its benchmark runs again.\n"
    current = open(path).read() if os.path.exists(path) else default

    def cut(text, heading):
        """(text before the section, text from the next section on) or None if it is missing."""
        start = text.find(heading)
        if start < 0:
            return None
        end = text.find("\n## ", start + len(heading))
        return text[:start], ("" if end < 0 else text[end + 1:])

    for old in replaces:
        found = cut(current, f"## {old}\n")
        if found:
            current = found[0] + found[1] if found[1] else found[0].rstrip() + "\n"
    section = f"## {title}\n\n{body.rstrip()}\n"
    found = cut(current, f"## {title}\n")
    if found is None:
        new = f"{current.rstrip()}\n\n{section}"
    else:
        new = found[0] + section + (f"\n{found[1]}" if found[1] else "")
    with open(path, "w") as f:
        f.write(new)


ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
num = lambda v: f"{v:.0f}"  # noqa: E731


def trace_table(trace, phases, arms):
    """arms: [(name, label, [(run id, figures)])] with at least one run each."""
    rows = [
        ("requests ok", lambda r: r["ok"], num),
        ("QueuePool timeouts", lambda r: r["db_timeout"], num),
        ("PostgreSQL refusals", lambda r: r["pg_refused"], num),
        ("other errors (Redis included)", lambda r: r["other"], num),
        ("latency p50 (ok requests)", lambda r: r["p50"], ms),
        ("latency p95", lambda r: r["p95"], ms),
        ("latency p99", lambda r: r["p99"], ms),
        (f"peak PostgreSQL connections, app role (of {MAX_CONNECTIONS - RESERVED} ordinary slots, one taken by the sampler)", lambda r: r["peak_app"], num),
        ("idle-connection-seconds (pg_stat_activity idle, role app)", lambda r: r["idle_pg"], num),
        ("connections opened per second (pg_stat_database.sessions)", lambda r: r["opened_per_s"], lambda v: f"{v:.2f}"),
        ("rollouts (generation − 1)", lambda r: r["rollouts"], num),
        (f"rollouts started while ≥ {BUSY_USERS} users were on", lambda r: r["busy_rollouts"], num),
        ("direction flips of DB_POOL_SIZE", lambda r: r["flips"], num),
    ]
    users = [int(p.split(":")[0]) for p in phases.split(",")]
    for i, u in enumerate(users):
        rows.append((f"errors in phase {i + 1} ({u} users), all kinds",
                     lambda r, i=i: r["phase_errors"][i] if i < len(r["phase_errors"]) else None, num))
    header = "| measure | " + " | ".join(f"{n}: {label}" for n, label, _ in arms) + " |"
    table = [header, "|---|" + "---|" * len(arms)]
    for title, get, fmt in rows:
        table.append(f"| {title} | " + " | ".join(cell([get(r) for _, r in runs], fmt) for _, _, runs in arms) + " |")
    table.append("| DB_POOL_SIZE values in order (each run) | " + " | ".join(
        "; ".join(" → ".join(str(v) for v in r["sizes"]) for _, r in runs) for _, _, runs in arms) + " |")
    if any(r.get("bouncer_sizes") is not None for _, _, runs in arms for _, r in runs):
        table.append("| PgBouncer default_pool_size in order, as PgBouncer ran it (runs through PgBouncer) | " + " | ".join(
            "; ".join(" → ".join(str(v) for v in r["bouncer_sizes"]) for _, r in runs if r.get("bouncer_sizes") is not None) or "-"
            for _, _, runs in arms) + " |")
    return table


def t3_phases(phases):
    """{app: phases} from T3's "voiceassist-api=<phases> reports-api=<phases>" (bench/arms.sh)."""
    return dict(part.split("=", 1) for part in phases.split())


def t3_table(phases, arms):
    """arms: [(name, label, [(run id, T3 figures)])] with at least one run each."""
    app_phases = t3_phases(phases)
    rows = [
        ("requests ok, both apps", lambda r: r["ok"], num),
        *[(f"requests ok, {app}", lambda r, app=app: r["apps"][app]["ok"], num) for app in T3_APPS],
        ("errors of all kinds, both apps", lambda r: r["errors"], num),
        *[(f"errors of all kinds, {app}", lambda r, app=app: r["apps"][app]["db_timeout"] + r["apps"][app]["pg_refused"]
           + r["apps"][app]["other"], num) for app in T3_APPS],
        ("QueuePool timeouts", lambda r: r["db_timeout"], num),
        ("PostgreSQL refusals", lambda r: r["pg_refused"], num),
        ("other errors (Redis included)", lambda r: r["other"], num),
        ("latency p50 (ok requests, both apps)", lambda r: r["p50"], ms),
        ("latency p95", lambda r: r["p95"], ms),
        ("latency p99", lambda r: r["p99"], ms),
        (f"peak PostgreSQL connections, app role, both apps (of {MAX_CONNECTIONS - RESERVED} ordinary slots, two taken by the samplers)", lambda r: r["peak_app"], num),
        *[(f"rollouts of {app} (generation − 1)", lambda r, app=app: r["apps"][app]["rollouts"], num) for app in T3_APPS],
    ]
    for app in T3_APPS:
        users = [int(p.split(":")[0]) for p in app_phases.get(app, "").split(",") if p]
        for i, u in enumerate(users):
            rows.append((f"errors of {app} in its phase {i + 1} ({u} users), all kinds",
                         lambda r, app=app, i=i: (r["apps"][app]["phase_errors"][i]
                                                  if i < len(r["apps"][app]["phase_errors"]) else None), num))
    header = "| measure | " + " | ".join(f"{n}: {label}" for n, label, _ in arms) + " |"
    table = [header, "|---|" + "---|" * len(arms)]
    for title, get, fmt in rows:
        table.append(f"| {title} | " + " | ".join(cell([get(r) for _, r in runs], fmt) for _, _, runs in arms) + " |")
    for app in T3_APPS:
        table.append(f"| DB_POOL_SIZE+DB_MAX_OVERFLOW of {app} in order (each run) | " + " | ".join(
            "; ".join(" → ".join(f"{p}+{o}" for p, o in r["apps"][app]["capacities"]) for _, r in runs)
            for _, _, runs in arms) + " |")
    return table


def verdict(ok, text):
    return f"- **{'met' if ok else 'not met'}**: {text}"


def targets(figures):
    """The issue's targets, from the medians. figures: {(trace, arm): [figures of the runs]}."""
    med = lambda trace, arm, key: median([r[key] for r in figures.get((trace, arm), [])])  # noqa: E731
    out = []
    if figures.get(("T1", "C")):
        refused = med("T1", "C", "pg_refused")
        out.append(verdict(refused == 0, f"T1: C has 0 PostgreSQL refusals — median {num(refused)}."))
        errs = med("T1", "C", "timeouts_and_other")
        out.append(verdict(errs <= 10, f"T1: C's QueuePool timeouts + other errors ≤ 10 — median {num(errs)}."))
        p95 = med("T1", "C", "p95")
        out.append(verdict(p95 is not None and p95 <= 0.620, f"T1: C's p95 ≤ 620 ms — median {'-' if p95 is None else ms(p95)}."))
        if figures.get(("T1", "D")):
            c_ok, d_ok = med("T1", "C", "ok"), med("T1", "D", "ok")
            out.append(verdict(c_ok >= d_ok * 0.999, f"T1: C's requests ok ≥ D's − 0.1 % — C {num(c_ok)}, D {num(d_ok)}, "
                                                     f"floor {d_ok * 0.999:.0f} ({100 * (c_ok - d_ok) / d_ok:+.2f} %)."))
            c_idle, d_idle = med("T1", "C", "idle_pg"), med("T1", "D", "idle_pg")
            out.append(verdict(c_idle <= 0.75 * d_idle, f"T1: C's idle-connection-seconds ≤ 0.75 × D's — C {num(c_idle)}, "
                                                        f"D {num(d_idle)}, limit {0.75 * d_idle:.0f} (ratio {c_idle / d_idle:.2f})."
                               if d_idle else f"T1: C's idle-connection-seconds ≤ 0.75 × D's — C {num(c_idle)}, D 0."))
        else:
            out.append("- **not evaluated**: T1 targets against D (requests ok, idle-connection-seconds): arm D has no run of T1.")
    else:
        out.append("- **not evaluated**: T1 targets: arm C has no run of T1.")
    if figures.get(("T2", "C")):
        second = [r["phase_errors"][3] if len(r["phase_errors"]) > 3 else None for r in figures[("T2", "C")]]
        m = median(second)
        out.append(verdict(m == 0, f"T2: C has 0 errors of any kind in the second peak (phase 4) — median {'-' if m is None else num(m)}"
                                   f" (runs: {', '.join('-' if v is None else str(v) for v in second)})."))
    else:
        out.append("- **not evaluated**: T2 target: arm C has no run of T2.")
    return out


def no_restart_targets(figures):
    """Issue 12's targets for each arm that changes pools without restarting (medians): 0 rollouts,
    0 refusals, timeouts + errors ≤ 10 on T1 and 0 in T2's second peak, idle-connection-seconds
    ≤ 0.75 × D's, p95 ≤ 620 ms."""
    med = lambda trace, arm, key: median([r[key] for r in figures.get((trace, arm), [])])  # noqa: E731
    out = []
    for arm in NO_RESTART_ARMS:
        if not figures.get(("T1", arm)):
            out.append(f"- **not evaluated**: issue 12 targets of arm {arm}: it has no run of T1.")
            continue
        rollouts = med("T1", arm, "rollouts")
        out.append(verdict(rollouts == 0, f"T1: {arm} causes 0 rollouts — median {num(rollouts)}."))
        refused = med("T1", arm, "pg_refused")
        out.append(verdict(refused == 0, f"T1: {arm} has 0 PostgreSQL refusals — median {num(refused)}."))
        errs = med("T1", arm, "timeouts_and_other")
        out.append(verdict(errs <= 10, f"T1: {arm}'s QueuePool timeouts + other errors ≤ 10 — median {num(errs)}."))
        p95 = med("T1", arm, "p95")
        out.append(verdict(p95 is not None and p95 <= 0.620, f"T1: {arm}'s p95 ≤ 620 ms — median {'-' if p95 is None else ms(p95)}."))
        if figures.get(("T1", "D")):
            idle, d_idle = med("T1", arm, "idle_pg"), med("T1", "D", "idle_pg")
            out.append(verdict(d_idle and idle <= 0.75 * d_idle,
                               f"T1: {arm}'s idle-connection-seconds ≤ 0.75 × D's — {arm} {num(idle)}, D {num(d_idle)}"
                               + (f", ratio {idle / d_idle:.2f}." if d_idle else ".")))
        if figures.get(("T2", arm)):
            second = [r["phase_errors"][3] if len(r["phase_errors"]) > 3 else None for r in figures[("T2", arm)]]
            m = median(second)
            out.append(verdict(m == 0, f"T2: {arm} has 0 errors in the second peak — median {'-' if m is None else num(m)}"
                                       f" (runs: {', '.join('-' if v is None else str(v) for v in second)})."))
    return out


def t3_targets(figures):
    """Issue 11's T3 target against each static split that ran: C has fewer errors (all kinds,
    both apps) and more requests ok than the static split, medians compared."""
    med = lambda arm, key: median([r[key] for r in figures.get(("T3", arm), [])])  # noqa: E731
    statics = [name for name, _ in T3_ARMS if name.startswith("S") and figures.get(("T3", name))]
    if not figures.get(("T3", "C")) or not statics:
        missing = "C" if not figures.get(("T3", "C")) else "a static split (S or S2)"
        return [f"- **not evaluated**: T3 target: arm {missing} has no run of T3."]
    out = []
    c_err, c_ok = med("C", "errors"), med("C", "ok")
    for name in statics:
        s_err, s_ok = med(name, "errors"), med(name, "ok")
        out.append(verdict(c_err < s_err and c_ok > s_ok,
                           f"T3: C has fewer errors and more requests ok than static split {name} (both apps) — "
                           f"errors C {num(c_err)}, {name} {num(s_err)}; requests ok C {num(c_ok)}, {name} {num(s_ok)} "
                           f"({100 * (c_ok - s_ok) / s_ok:+.2f} %)." if s_ok else
                           f"T3: C has fewer errors and more requests ok than static split {name} — errors C {num(c_err)}, "
                           f"{name} {num(s_err)}; requests ok C {num(c_ok)}, {name} 0."))
    return out


T3_NOTE = ("Two apps, voiceassist-api and reports-api (demo/manifests/second-app.yaml), 2 replicas each, one database and "
           "one ConnectionBudget (100 − 3 superuser-reserved − 2 load-generator samplers = 95 usable connections from the "
           "second session of 2026-12-06 on; 97 before, which did not count the samplers' slots), one seeded load generator per app (seeds "
           "<seed>-<app>); the apps' peaks do not overlap. S is the best static split: 24 connections a process, 8 + 16 "
           "for both apps (96 in all: one more than the usable 95, which S reaches only if both apps fill their pools at "
           "once, and the peaks do not meet); both apps have the same peak (120 users for 60 s with the default phases) at different times, "
           "so giving one app more than 24 a process takes it from the other, whose peak then gets less. S2 (when run) splits the same 24 as 12 + 12, to show "
           "whether pool against overflow matters for errors. C runs poolpilot with both PoolPolicies "
           "(deploy/samples/demo/poolpolicy.yaml, poolpolicy-reports-api.yaml), both apps starting at 10 / 20, Redis 10. "
           "Requests and errors are summed over the apps; latency percentiles are over both apps' successful requests.")


def shown(path):
    """path relative to the working directory when it is inside it (.local/bench-arms), else as given."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help=".local/bench-arms")
    ap.add_argument("--results", help="bench/results.md to update (omit: print only)")
    ap.add_argument("--trace", action="append", default=[], metavar="T1=PHASES",
                    help="the phases a trace's runs must have to count (default: those of its newest run)")
    args = ap.parse_args()
    wanted = dict(t.split("=", 1) for t in args.trace)

    body = [f"Measured up to {datetime.date.today().isoformat()} by `make bench` (bench/arms.sh, bench/arms_report.py) on {machine()}. "
            "Each run on a fresh PostgreSQL (max_connections 100, 3 reserved) and Redis and fresh demo namespace objects; "
            "2 replicas, maxSurge 0, DB_POOL_TIMEOUT 2 s, REDIS_MAX_CONNECTIONS as each arm says (poolpilot starts at 10 and moves it). "
            "Seeded load: every arm of one (trace, repeat) gets the same arrival sequence; runs interleaved "
            "(for each repeat, for each trace, each arm in turn). Cells: median (min–max) over the runs listed. "
            "Arm F (when run) sends the app through PgBouncer (transaction pooling; demo/run.sh DEMO_PATH=pgbouncer) with fixed "
            "app pools 40 / 20 and Redis 50; poolpilot sets only PgBouncer's default_pool_size (to the budget's share, mode "
            "FillToBudget, since 2026-12-07's sixth session; before, moved by PgBouncer's utilization) and max_client_conn by "
            "ConfigMap and RELOAD (deploy/samples/demo/poolpolicy-pgbouncer.yaml), within 100 − 6 = 94 connections (the ConnectionBudget "
            "reads max_connections from postgres_exporter, whose 2 connections are reserved); its PostgreSQL connections are "
            "PgBouncer's server connections.", ""]
    figures = {}
    for trace, title in {**TRACES, "T3": "two apps sharing one ConnectionBudget, offset peaks"}.items():
        phases = wanted.get(trace) or newest_phases(args.dir, trace)
        if phases is None:
            continue
        arms, used, left_out = [], [], []
        for name, label in arms_of(trace):
            good = []
            for run_id, meta, fig in runs_of(args.dir, trace, name):
                if meta.get("rc") == 0 and meta.get("phases") == phases and fig is not None:
                    good.append((run_id, fig))
                    used.append(f"{run_id} (seed {meta.get('seed')}, commit {meta.get('commit')})")
                else:
                    why = "no arm.json (unfinished)" if not meta else (
                        f"exit {meta.get('rc')}" if meta.get("rc") != 0 else
                        f"phases {meta.get('phases')}" if meta.get("phases") != phases else "no samples")
                    left_out.append(f"{run_id} ({why})")
            if good:
                arms.append((name, label, good))
                figures[(trace, name)] = [fig for _, fig in good]
        if not arms:
            continue
        counts = ", ".join(f"{n} {len(runs)}" for n, _, runs in arms)
        body += [f"### {trace}: {title}, phases `{phases}` (users:seconds)", "",
                 *([T3_NOTE, ""] if trace == "T3" else []),
                 f"Runs per arm: {counts}. Used: {', '.join(used)}."
                 + (f" Left out: {', '.join(left_out)}." if left_out else ""), "",
                 *(t3_table(phases, arms) if trace == "T3" else trace_table(trace, phases, arms)), ""]
    if not figures:
        raise SystemExit("arms_report: no finished run (rc 0) with samples under " + args.dir)
    t3_lines = t3_targets(figures) if any(trace == "T3" for trace, _ in figures) else []
    body += ["### Targets (issue 11; medians compared)", "", *targets(figures), *t3_lines, "",
             "### Targets of changes without restarting (issue 12; medians compared)", "", *no_restart_targets(figures), "",
             "How measured: the load generator counts the answers (503 + `X-Error`); latency is client side for successful "
             "requests; PostgreSQL connections and idle ones (role app, state 'idle') from pg_stat_activity once a second, "
             "idle-connection-seconds = Σ idle × seconds since the previous sample; connections opened per second = growth of "
             "pg_stat_database.sessions (database app) between the first and last sample / their time apart; rollouts = "
             "generation − 1; rollouts while busy = generation increases (read every 2.5 s) with ≥ 50 users on in a sample from 2.5 s before the last showing the old generation to the first showing the new one; "
             f"direction flips = reversals in the DB_POOL_SIZE sequence. Raw data of each run: `{shown(args.dir)}/<trace>/<arm>/r<n>/`, "
             f"index `{shown(args.dir)}/runs.jsonl`."]
    text = "\n".join(body)
    print(text)
    if args.results:
        write_section(args.results, "Four arms", text, replaces=("Three arms",))


if __name__ == "__main__":
    main()
