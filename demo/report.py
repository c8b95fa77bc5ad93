#!/usr/bin/python3
"""Writes .local/demo/report.md and report.svg from the load generator's samples.

Usage: report.py --samples samples.jsonl --out-dir DIR [--policy policy.json] [--events events.json]
         [--deployment deployment.json] [--max-connections 100 --reserved 3] [--path direct|pgbouncer]
The SVG is drawn by hand (no plotting library): pool utilization, the pool settings, errors per
second and PostgreSQL connections over time, with the traffic phases shaded. --deployment (the
app's Deployment at the end) gives the rollouts: its generation − 1 (the demo creates it afresh).
--path pgbouncer (DEMO_PATH=pgbouncer: the app through PgBouncer, poolpilot tuning PgBouncer)
adds PgBouncer's default_pool_size over time, per phase and in the chart.
"""
import argparse
import json
import os
from html import escape


def load_samples(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def phases_of(samples):
    """[(index, users, t_start, t_end)] from the samples' phase field."""
    out = []
    for s in samples:
        if not out or out[-1][0] != s["phase"]:
            out.append([s["phase"], s["users"], s["t"], s["t"]])
        out[-1][3] = s["t"]
    return [tuple(p) for p in out]


def bouncer_sizes(samples):
    """PgBouncer's pool size (as its exporter reports it) in each sample that has one, as integers."""
    return [round(s["pgbouncer_pool_size"]) for s in samples if s.get("pgbouncer_pool_size") is not None]


def nice(value):
    """The next round axis maximum at or above value: 10, 20, 50, then multiples of 20"""
    for step in (10, 20, 50):
        if value <= step:
            return step
    return -(-value // 20) * 20


def svg_chart(samples, phases, budget, max_connections, pgbouncer):
    width, left, right = 960, 70, 20
    panel_h, gap, top = 150, 40, 40
    panels = 4
    height = top + panels * (panel_h + gap) + 20
    t_max = max(s["t"] for s in samples) or 1
    x = lambda t: left + (width - left - right) * t / t_max  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14" font-weight="bold">poolpilot demo: runbook traffic tiers against a SQLAlchemy pool</text>']

    def panel(i, title, series, y_max, lines=(), bars=None):
        y0 = top + i * (panel_h + gap)
        y = lambda v: y0 + panel_h - panel_h * min(v, y_max) / y_max  # noqa: E731
        for idx, users, ts, te in phases:
            shade = "#f3f6fb" if idx % 2 == 0 else "#e6ecf5"
            out.append(f'<rect x="{x(ts):.1f}" y="{y0}" width="{max(0.5, x(te) - x(ts)):.1f}" height="{panel_h}" fill="{shade}"/>')
            if i == 0:
                out.append(f'<text x="{x(ts) + 3:.1f}" y="{y0 + 12}" fill="#555">{users} users</text>')
        out.append(f'<text x="{left}" y="{y0 - 6}" font-weight="bold">{escape(title)}</text>')
        out.append(f'<line x1="{left}" y1="{y0 + panel_h}" x2="{width - right}" y2="{y0 + panel_h}" stroke="#333"/>')
        out.append(f'<line x1="{left}" y1="{y0}" x2="{left}" y2="{y0 + panel_h}" stroke="#333"/>')
        for frac in (0, 0.5, 1):
            v = y_max * frac
            out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        for value, label, color in lines:
            out.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" stroke="{color}" stroke-dasharray="4 3"/>')
            out.append(f'<text x="{width - right - 2}" y="{y(value) - 3:.1f}" text-anchor="end" fill="{color}">{escape(label)}</text>')
        if bars is not None:
            key, color, label = bars
            for s in samples:
                v = s.get(key) or 0
                if v:
                    out.append(f'<rect x="{x(s["t"]) - 1.5:.1f}" y="{y(v):.1f}" width="3" height="{y0 + panel_h - y(v):.1f}" fill="{color}"/>')
        legend_x = left + 10
        for key, color, label in series + ([bars] if bars else []):
            out.append(f'<rect x="{legend_x}" y="{y0 + panel_h + 8}" width="10" height="3" fill="{color}"/>'
                       f'<text x="{legend_x + 14}" y="{y0 + panel_h + 14}">{escape(label)}</text>')
            legend_x += 16 + 7 * len(label)
        for key, color, _label in series:
            pts = [(x(s["t"]), y(s[key])) for s in samples if s.get(key) is not None]
            if pts:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')

    if pgbouncer:
        # What the PgBouncer policy reads (deploy/samples/demo/poolpolicy-pgbouncer.yaml), from the same metrics.
        for s in samples:
            queries, waiting, size = s.get("pgbouncer_queries"), s.get("pgbouncer_waiting"), s.get("pgbouncer_pool_size")
            s["pgbouncer_utilization"] = None if None in (queries, waiting) or not size else 100 * (queries + waiting) / size
        panel(0, "Utilization % (PgBouncer's: the operator's query; the app's pool, max over pods)",
              [("pgbouncer_utilization", "#d62728", "PgBouncer utilization % (cut at 100)"), ("utilization", "#1f77b4", "app DB pool utilization %")], 100,
              lines=[(80, "scale up above 80", "#999"), (40, "scale down below 40", "#999")])
    else:
        panel(0, "DB pool utilization % (max over pods: the operator's query)",
              [("utilization", "#d62728", "utilization %")], 100, lines=[(80, "scale up above 80", "#999"), (40, "scale down below 40", "#999")])
    settings = [("db_pool_size", "#1f77b4", "DB_POOL_SIZE"), ("db_max_overflow", "#2ca02c", "DB_MAX_OVERFLOW"), ("overflow", "#9467bd", "overflow in use (all pods)")]
    title = "Pool settings on the Deployment (poolpilot's writes)"
    if pgbouncer:
        settings += [("pgbouncer_pool_size", "#d62728", "PgBouncer default_pool_size"), ("pgbouncer_waiting", "#ff7f0e", "clients waiting in PgBouncer")]
        title = "Pool settings: the app's (fixed) and PgBouncer's (poolpilot's writes, as PgBouncer runs them)"
    size_max = nice(max([s.get(k) or 0 for s in samples for k, _, _ in settings] + [10]))
    panel(1, title, settings, size_max)
    err_max = nice(max([max(s.get("db_timeout") or 0, (s.get("other_error") or 0) + (s.get("redis_error") or 0) + (s.get("pg_refused") or 0)) for s in samples] + [5]))
    for s in samples:
        s["errors_other"] = (s.get("other_error") or 0) + (s.get("redis_error") or 0) + (s.get("pg_refused") or 0)
    panel(2, "Errors per second",
          [("errors_other", "#ff7f0e", "other errors (PostgreSQL refused, Redis, HTTP)")], err_max, bars=("db_timeout", "#d62728", "QueuePool timeouts"))
    panel(3, "PostgreSQL connections (pg_stat_activity)",
          [("pg_app", "#1f77b4", "app role connections"), ("pg_total", "#7f7f7f", "all rows (incl. background processes)")],
          nice(max_connections * 1.1), lines=[(budget, f"max_connections - reserved = {budget}", "#d62728"), (max_connections, f"max_connections = {max_connections}", "#555")])
    y_axis = top + panels * (panel_h + gap) - gap + 28
    out.append(f'<text x="{(left + width) / 2}" y="{y_axis}" text-anchor="middle">seconds since the load started</text>')
    for t in range(0, int(t_max) + 1, 30):
        out.append(f'<text x="{x(t):.1f}" y="{y_axis - 14}" text-anchor="middle">{t}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--policy")
    ap.add_argument("--events")
    ap.add_argument("--max-connections", type=int, default=100)
    ap.add_argument("--reserved", type=int, default=3)
    ap.add_argument("--deployment", help="the app's Deployment as JSON at the end (its generation counts the rollouts)")
    ap.add_argument("--path", choices=("direct", "pgbouncer"), default="direct")
    args = ap.parse_args()
    pgbouncer = args.path == "pgbouncer"

    samples = load_samples(args.samples)
    if not samples:
        raise SystemExit("report: no samples")
    budget = args.max_connections - args.reserved
    phases = phases_of(samples)
    with open(os.path.join(args.out_dir, "report.svg"), "w") as f:
        f.write(svg_chart(samples, phases, budget, args.max_connections, pgbouncer))

    def in_phase(idx):
        return [s for s in samples if s["phase"] == idx]

    lines = ["# poolpilot demo report", "",
             f"Samples: {len(samples)} (one per second), {samples[-1]['t']:.0f} s of load. Chart: [report.svg](report.svg).", "",
             "| phase | users | seconds | DB_POOL_SIZE start → end (max) | DB_MAX_OVERFLOW end | "
             + ("PgBouncer default_pool_size start → end (max) | " if pgbouncer else "")
             + "max utilization % | mean utilization % | QueuePool timeouts | PostgreSQL refused | other errors | requests ok | peak app connections |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if pgbouncer else "")]
    for idx, users, ts, te in phases:
        ss = in_phase(idx)
        sizes = [s["db_pool_size"] for s in ss if s.get("db_pool_size") is not None]
        utils = [s["utilization"] for s in ss if s.get("utilization") is not None]
        apps = [s["pg_app"] for s in ss if s.get("pg_app") is not None]
        overflow_end = next((s["db_max_overflow"] for s in reversed(ss) if s.get("db_max_overflow") is not None), None)
        bouncer = ""
        if pgbouncer:
            b = bouncer_sizes(ss)
            bouncer = f"{b[0] if b else '-'} → {b[-1] if b else '-'} ({max(b) if b else '-'}) | "
        lines.append(f"| {idx + 1} | {users} | {te - ts:.0f} | {sizes[0] if sizes else '-'} → {sizes[-1] if sizes else '-'} ({max(sizes) if sizes else '-'}) | {overflow_end} | "
                     f"{bouncer}{max(utils):.0f} | {sum(utils) / len(utils):.0f} | {sum(s['db_timeout'] for s in ss)} | {sum(s.get('pg_refused', 0) for s in ss)} | "
                     f"{sum(s['other_error'] + s['redis_error'] for s in ss)} | {sum(s['ok'] for s in ss)} | {max(apps) if apps else '-'} |")

    peak_users = max(p[1] for p in phases)
    peak = [p for p in phases if p[1] == peak_users][0]
    ps = in_phase(peak[0])
    sizes = [s["db_pool_size"] for s in ps if s.get("db_pool_size") is not None]
    # Capacity per process (DB_POOL_SIZE + DB_MAX_OVERFLOW) decides timeouts; DB_POOL_SIZE alone is
    # what stays open idle (FillToBudget keeps it low and fills capacity to the budget's share).
    capacities = [(s["db_pool_size"], s["db_max_overflow"]) for s in ps
                  if s.get("db_pool_size") is not None and s.get("db_max_overflow") is not None]
    half = peak[2] + (peak[3] - peak[2]) / 2
    first_half_timeouts = sum(s["db_timeout"] for s in ps if s["t"] < half)
    second_half_timeouts = sum(s["db_timeout"] for s in ps if s["t"] >= half)
    last_timeout = max((s["t"] for s in ps if s["db_timeout"]), default=None)
    apps_all = [s["pg_app"] for s in samples if s.get("pg_app") is not None]
    clients_all = [s["pg_clients"] for s in samples if s.get("pg_clients") is not None]
    totals_all = [s["pg_total"] for s in samples if s.get("pg_total") is not None]
    peak_app = max(apps_all) if apps_all else None

    # A phase is a success only without errors of any kind; the verdict says so phase by phase.
    phase_lines, failed = [], []
    for idx, users, ts, te in phases:
        ss = in_phase(idx)
        timeouts = sum(s["db_timeout"] for s in ss)
        refused = sum(s.get("pg_refused", 0) for s in ss)
        other = sum(s["other_error"] + s["redis_error"] for s in ss)
        counts = f"{timeouts} QueuePool timeouts, {refused} PostgreSQL refusals, {other} other errors (Redis included)"
        if timeouts + refused + other:
            failed.append(f"phase {idx + 1}")
            last = max(s["t"] for s in ss if s["db_timeout"] or s.get("pg_refused", 0) or s["other_error"] or s["redis_error"])
            phase_lines.append(f"- **Phase {idx + 1} ({users} users, {te - ts:.0f} s): errors, not a success** — {counts}; "
                               f"the last at {last - ts:.0f} s into the phase.")
        else:
            phase_lines.append(f"- **Phase {idx + 1} ({users} users, {te - ts:.0f} s): no errors** — {counts}.")
    overall = ("- **Every phase was served without errors.**" if not failed else
               f"- **Not a success: {len(failed)} of {len(phases)} phases had errors** ({', '.join(failed)}).")

    if pgbouncer:
        bs = bouncer_sizes(ps)
        waiting = [s["pgbouncer_waiting"] for s in ps if s.get("pgbouncer_waiting") is not None]
        pool_line = (f"- **PgBouncer's default_pool_size in the {peak_users}-user phase** (what PgBouncer runs, from its exporter): "
                     f"{bs[0] if bs else '-'} at its start, {max(bs) if bs else '-'} at most, {bs[-1] if bs else '-'} at its end "
                     f"(PostgreSQL has {budget} connections for it); at most {round(max(waiting)) if waiting else '-'} clients waited in PgBouncer "
                     f"for a server connection at once. The app's pools stayed at DB_POOL_SIZE {sizes[0] if sizes else '-'} + "
                     f"DB_MAX_OVERFLOW {capacities[0][1] if capacities else '-'} per process (client connections to PgBouncer).")
    else:
        pool_line = (f"- **Capacity per process in the {peak_users}-user phase** (DB_POOL_SIZE + DB_MAX_OVERFLOW): "
                     f"{sum(capacities[0]) if capacities else '-'} at its start, {min(map(sum, capacities)) if capacities else '-'} at least, "
                     f"{sum(capacities[-1]) if capacities else '-'} at its end (the budget's fair share is {budget // 2} per process for 2 replicas); "
                     f"DB_POOL_SIZE {sizes[0] if sizes else '-'} at its start, {sizes[-1] if sizes else '-'} at its end.")
    generation = None
    if args.deployment and os.path.exists(args.deployment):
        with open(args.deployment) as f:
            generation = json.load(f).get("metadata", {}).get("generation")
    rollout_line = ("- **Rollouts of the app's Deployment:** unknown (no --deployment)." if generation is None else
                    f"- **Rollouts of the app's Deployment:** {generation - 1} (its generation − 1; the demo creates it afresh, so "
                    "every rollout is a change of its pod template: poolpilot's env writes"
                    + (", none expected on the PgBouncer path)." if pgbouncer else ")."))
    lines += ["", "## Verdict", "", overall, *phase_lines, pool_line, rollout_line,
              f"- **QueuePool timeouts in that phase:** {first_half_timeouts} in its first half, {second_half_timeouts} in its second half "
              f"(from {half:.0f} s to {peak[3]:.0f} s)"
              + ("" if last_timeout is None else f"; the last one at {last_timeout:.0f} s ({last_timeout - peak[2]:.0f} s into the phase)") + ".",
              f"- **Peak PostgreSQL connections:** {peak_app} of the app's role (all client backends: {max(clients_all) if clients_all else '-'}; "
              f"all pg_stat_activity rows incl. background processes: {max(totals_all) if totals_all else '-'}) vs "
              f"max_connections − reserved = {args.max_connections} − {args.reserved} = {budget}: "
              f"{'inside' if peak_app is not None and peak_app <= budget else 'OVER'} the budget.",
              f"- Requests: {sum(s['ok'] for s in samples)} ok, {sum(s['db_timeout'] for s in samples)} QueuePool timeouts, "
              f"{sum(s.get('pg_refused', 0) for s in samples)} refused by PostgreSQL (\"remaining connection slots are reserved\"), "
              f"{sum(s['redis_error'] for s in samples)} Redis 'Too many connections', {sum(s['other_error'] for s in samples)} other errors.",
              ""]

    changes = []
    prev = None
    for s in samples:
        cur = (s.get("db_pool_size"), s.get("db_max_overflow"), s.get("redis_max_connections"))
        if None in cur:
            continue
        if prev is not None and cur != prev:
            changes.append((s["t"], s["users"], prev, cur, s.get("utilization")))
        prev = cur
    lines += ["## Pool changes seen on the Deployment", "",
              "| t (s) | users | DB_POOL_SIZE | DB_MAX_OVERFLOW | REDIS_MAX_CONNECTIONS | utilization % then |", "|---|---|---|---|---|---|"]
    for t, users, a, b, util in changes:
        lines.append(f"| {t:.0f} | {users} | {a[0]} → {b[0]} | {a[1]} → {b[1]} | {a[2]} → {b[2]} | {'-' if util is None else f'{util:.0f}'} |")
    if not changes:
        lines.append("| – | – | no change | | | |")
    if pgbouncer:
        lines += ["", "## PgBouncer's pool size over time", "",
                  "What PgBouncer runs (its exporter's `pgbouncer_pool_size`, scraped every second), after poolpilot's ConfigMap "
                  "write, the node agent's file sync and PgBouncer's reload.", "",
                  "| t (s) | users | default_pool_size | clients waiting then | queries in PgBouncer then (running or waiting, 10 s mean) |", "|---|---|---|---|---|"]
        prev = None
        for s in samples:
            size = s.get("pgbouncer_pool_size")
            if size is None or round(size) == prev:
                continue
            busy, waiting = s.get("pgbouncer_queries"), s.get("pgbouncer_waiting")
            lines.append(f"| {s['t']:.0f} | {s['users']} | {'' if prev is None else f'{prev} → '}{round(size)} | "
                         f"{'-' if waiting is None else f'{waiting:.0f}'} | {'-' if busy is None else f'{busy:.1f}'} |")
            prev = round(size)
        if prev is None:
            lines.append("| – | – | no sample (was PgBouncer's exporter scraped?) | | |")

    if args.events and os.path.exists(args.events):
        with open(args.events) as f:
            events = json.load(f).get("items", [])
        events = [e for e in events if e.get("reason") in ("PoolResized",) or e.get("type") == "Warning"]
        events.sort(key=lambda e: e.get("eventTime") or e.get("lastTimestamp") or e.get("metadata", {}).get("creationTimestamp") or "")
        lines += ["", "## poolpilot's events (kubectl get events -n demo)", ""]
        for e in events:
            when = e.get("eventTime") or e.get("lastTimestamp") or e.get("metadata", {}).get("creationTimestamp")
            lines.append(f"- `{when}` {e.get('type')} **{e.get('reason')}**: {e.get('note') or e.get('message')}")
    if args.policy and os.path.exists(args.policy):
        with open(args.policy) as f:
            policy = json.load(f)
        lines += ["", "## The PoolPolicy's conditions at the end", ""]
        for c in policy.get("status", {}).get("conditions", []):
            lines.append(f"- {c.get('type')}={c.get('status')} ({c.get('reason')}): {c.get('message')}")

    lines += ["", "## How this was measured", "",
              "- Utilization = 100 × checked_out / (DB_POOL_SIZE + DB_MAX_OVERFLOW) per pod (the runbook's \"total capacity\"); "
              + ("this report uses the max over pods; the operator reads PgBouncer's utilization instead (below)." if pgbouncer else
                 "the operator and this report use the max over pods."),
              "- QueuePool timeouts and errors are counted by the load generator from the answers (HTTP 503 with `X-Error: db-pool-timeout` "
              "when SQLAlchemy raised `TimeoutError: QueuePool limit ... reached`); the pods also export `voiceassist_db_pool_timeouts_total`.",
              "- PostgreSQL connections: `SELECT count(*) FROM pg_stat_activity` once a second, split into the app role's connections, "
              "all client backends (without the sampler's own superuser session) and all rows.",
              "- Pool settings: the Deployment's env, read once every 2.5 s."]
    if pgbouncer:
        lines += ["- PgBouncer: Debian's prometheus-pgbouncer-exporter through Prometheus once a second: `pgbouncer_pool_size` "
                  "(SHOW DATABASES), `pgbouncer_waiting_clients` (SHOW POOLS cl_waiting) and the 10 s rate of "
                  "`pgbouncer_query_microseconds_total` / 10⁶ (SHOW STATS total_query_time, which includes the wait for a server connection: queries running or waiting), "
                  "for database app; PgBouncer's utilization = 100 × (queries + waiting clients) / pool size, as the policy reads it. "
                  "The app role's PostgreSQL connections are PgBouncer's server connections."]
    lines.append("")
    with open(os.path.join(args.out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[: lines.index("## Pool changes seen on the Deployment")]))


if __name__ == "__main__":
    main()
