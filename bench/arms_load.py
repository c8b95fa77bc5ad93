#!/usr/bin/python3
"""demo/load.py with two additions for bench/arms.sh (same arguments, same samples.jsonl):

- every sample also has `pg_idle_app` (pg_stat_activity rows of role app with state 'idle': pooled
  connections nobody is using) and `checked_in` (sum of voiceassist_db_pool_checked_in over pods);
- every sample also has `pg_sessions` (pg_stat_database.sessions of database app: sessions ever
  established; bench/arms_report.py takes the first and last to get connections opened per second),
  `waiters` and `timeouts_total` (sums over pods of voiceassist_db_pool_waiters and
  voiceassist_db_pool_timeouts_total);
- every answered request's latency is kept and written at the end next to --out, to latencies.json
  for samples.jsonl and latencies-<app>.json for samples-<app>.jsonl (demo/run.sh with DEMO_APPS=2)
  ({"ok": [seconds, ...]}: successful requests, client side, as load.py measures them), with
  "counts": the answers of every kind over the whole run, those that came after the last sample
  included (the samples miss them).
demo/load.py itself is imported unchanged; this only subclasses its Observer and wraps Stats.add.
"""
import asyncio
import importlib.util
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("demo_load", os.path.join(here, "..", "demo", "load.py"))
load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load)

latencies = []
counts = {}
_add = load.Stats.add


def add(self, kind, latency):
    _add(self, kind, latency)
    counts[kind] = counts.get(kind, 0) + 1
    if kind == "ok":
        latencies.append(round(latency, 4))


load.Stats.add = add


class ArmsObserver(load.Observer):
    def observe(self):
        obs = super().observe()
        sel = f'namespace="{self.args.namespace}",deployment="{self.args.deployment}"'  # as load.py
        obs["checked_in"] = self.prom(f"sum(voiceassist_db_pool_checked_in{{{sel}}})")
        obs["waiters"] = self.prom(f"sum(voiceassist_db_pool_waiters{{{sel}}})")
        obs["timeouts_total"] = self.prom(f"sum(voiceassist_db_pool_timeouts_total{{{sel}}})")
        obs["pg_idle_app"] = None
        obs["pg_sessions"] = None
        try:
            if self.pg is not None:
                with self.pg.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle'")
                    obs["pg_idle_app"] = cur.fetchone()[0]
                    # Each backend reports its own session start; pg_stat_clear_snapshot() reads the current counts.
                    cur.execute("SELECT pg_stat_clear_snapshot(); SELECT sessions FROM pg_stat_database WHERE datname = 'app'")
                    row = cur.fetchone()
                    obs["pg_sessions"] = None if row is None else row[0]
        except Exception:  # noqa: BLE001 - a missing number stays None
            self.pg = None
        return obs


load.Observer = ArmsObserver


def out_path():
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--out="):
            return a.split("=", 1)[1]
    raise SystemExit("arms_load: --out is required")


def latencies_path(samples_path):
    """latencies.json beside samples.jsonl; latencies-<app>.json beside samples-<app>.jsonl."""
    directory, name = os.path.split(os.path.abspath(samples_path))
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
    suffix = stem[len("samples"):] if stem.startswith("samples") else f"-{stem}"
    return os.path.join(directory, f"latencies{suffix}.json")


if __name__ == "__main__":
    target = latencies_path(out_path())
    rc = 1
    try:
        rc = asyncio.run(load.main())
    finally:
        with open(target, "w") as f:
            json.dump({"ok": latencies, "counts": counts}, f)
    sys.exit(rc)
