#!/usr/bin/python3
"""The demo workload: an HTTP service shaped like the runbook's app (VoiceAssist).

Each request to / checks a connection out of a SQLAlchemy QueuePool and holds it for a
realistic time (SELECT pg_sleep(hold), hold from ?hold=SECONDS, default 0.05-0.2 s), and does
one Redis INCR through a redis-py ConnectionPool. /metrics exports the runbook's pool metrics
(see poolmetrics.py for their definitions), the error counters and a latency histogram;
/healthz answers once the pools are built.

Besides the runbook's names it exports what a full pool hides (prefix voiceassist_):
  db_pool_max_overflow                 gauge: DB_MAX_OVERFLOW
  db_pool_waiters                      gauge: threads inside a QueuePool checkout right now (waiting
                                       for a free connection, or opening a new one)
  db_pool_checkouts_total              counter: checkouts that got a connection
  db_pool_timeouts_total               counter: checkouts that gave up after DB_POOL_TIMEOUT
  db_pool_checkout_wait_seconds        histogram: time to get a connection, timeouts and refusals included
  db_connection_hold_seconds           histogram: time a request held its connection
  db_connections_opened_total          counter: new PostgreSQL connections (the pool's 'connect' event)
  db_connection_refused_total          counter: new connections PostgreSQL refused for lack of slots

Configured only by env: DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT (seconds),
REDIS_MAX_CONNECTIONS, DATABASE_URL, REDIS_URL, PORT. Run with Debian's /usr/bin/python3 and
the Debian packages python3-sqlalchemy python3-psycopg2 python3-redis python3-prometheus-client.
SIGTERM: stop accepting, let in-flight requests finish (up to 5 s), close the pools, exit 0.
"""
import json
import os
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from poolmetrics import db_pool_metrics, redis_pool_metrics  # noqa: E402

PREFIX = "voiceassist_"


class PoolState:
    """Reads the live pools at scrape time; without pools (tests) it reports the values set."""

    def __init__(self, db_pool_size, db_max_overflow, redis_max_connections, db_pool=None, redis_pool=None):
        self.db_pool_size = db_pool_size
        self.db_max_overflow = db_max_overflow
        self.redis_max_connections = redis_max_connections
        self.db_pool = db_pool
        self.redis_pool = redis_pool
        self._db = (0, 0, -db_pool_size)
        self._redis = (0, 0)
        self._waiters = 0
        self._waiters_lock = threading.Lock()

    @contextmanager
    def waiting(self):
        """Counts the calling thread as a waiter (db_pool_waiters) for the duration of the block."""
        with self._waiters_lock:
            self._waiters += 1
        try:
            yield
        finally:
            with self._waiters_lock:
                self._waiters -= 1

    def waiters(self):
        return self._waiters

    def set_db(self, checked_out, checked_in, raw_overflow):
        self._db = (checked_out, checked_in, raw_overflow)

    def set_redis(self, in_use, available):
        self._redis = (in_use, available)

    def db(self):
        if self.db_pool is not None:
            p = self.db_pool
            return db_pool_metrics(self.db_pool_size, self.db_max_overflow, p.checkedout(), p.checkedin(), p.overflow())
        return db_pool_metrics(self.db_pool_size, self.db_max_overflow, *self._db)

    def redis(self):
        if self.redis_pool is not None:
            p = self.redis_pool
            # redis-py 4.x keeps these two collections; no public accessor exists.
            return redis_pool_metrics(self.redis_max_connections, len(p._in_use_connections), len(p._available_connections))
        return redis_pool_metrics(self.redis_max_connections, *self._redis)


class PoolCollector:
    def __init__(self, state):
        self.state = state

    def collect(self):
        db = self.state.db()
        for key, help_text in [
            ("size", "Configured pool size (DB_POOL_SIZE)"),
            ("max_overflow", "Configured max overflow (DB_MAX_OVERFLOW); size + max_overflow is the capacity"),
            ("checked_out", "Connections currently in use"),
            ("checked_in", "Idle connections available"),
            ("overflow", "Overflow connections beyond pool_size"),
            ("utilization_percent", "100 x checked_out / (pool_size + max_overflow)"),
        ]:
            g = GaugeMetricFamily(f"{PREFIX}db_pool_{key}", help_text)
            g.add_metric([], db[key])
            yield g
        g = GaugeMetricFamily(f"{PREFIX}db_pool_waiters", "Threads inside a QueuePool checkout (waiting for a connection)")
        g.add_metric([], self.state.waiters())
        yield g
        r = self.state.redis()
        for key, help_text in [
            ("max_connections", "Configured max connections (REDIS_MAX_CONNECTIONS)"),
            ("in_use", "Connections currently in use"),
            ("available", "Idle connections in the pool"),
        ]:
            g = GaugeMetricFamily(f"{PREFIX}redis_pool_{key}", help_text)
            g.add_metric([], r[key])
            yield g


class Metrics:
    def __init__(self, registry, state):
        registry.register(PoolCollector(state))
        self.db_timeouts = Counter(f"{PREFIX}db_pool_timeouts", "QueuePool checkouts that timed out (TimeoutError)", registry=registry)
        self.db_checkouts = Counter(f"{PREFIX}db_pool_checkouts", "QueuePool checkouts that got a connection", registry=registry)
        self.db_checkout_wait = Histogram(
            f"{PREFIX}db_pool_checkout_wait_seconds", "Time to get a connection from the pool (timeouts and refusals included)",
            registry=registry, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.db_hold = Histogram(
            f"{PREFIX}db_connection_hold_seconds", "Time a request held its pooled connection", registry=registry,
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1, 2, 5),
        )
        self.db_opened = Counter(f"{PREFIX}db_connections_opened", "New PostgreSQL connections opened by the pool", registry=registry)
        self.db_refused = Counter(
            f"{PREFIX}db_connection_refused", "New PostgreSQL connections refused for lack of connection slots", registry=registry,
        )
        self.redis_errors = Counter(f"{PREFIX}redis_connection_errors", "Redis 'Too many connections' errors", registry=registry)
        self.latency = Histogram(
            f"{PREFIX}http_request_duration_seconds", "Request latency", ["status"], registry=registry,
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5),
        )


def register_metrics(registry, state):
    return Metrics(registry, state)


# PostgreSQL's words when it refuses a new connection for lack of slots (server-wide, per role, per database).
REFUSAL_MESSAGES = ("connection slots are reserved", "too many clients", "too many connections for")


def is_refusal(error):
    return any(m in str(error) for m in REFUSAL_MESSAGES)


@contextmanager
def pooled_connection(engine, state, metrics):
    """engine.connect() as a measured checkout: the caller is a waiter until it has a connection
    (or the pool gives up), the wait is observed whatever the outcome, the hold time on return."""
    started = time.monotonic()
    with state.waiting():
        try:
            conn = engine.connect()
        finally:
            metrics.db_checkout_wait.observe(time.monotonic() - started)
    metrics.db_checkouts.inc()
    held_from = time.monotonic()
    try:
        yield conn
    finally:
        conn.close()
        metrics.db_hold.observe(time.monotonic() - held_from)


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def main():
    import redis
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import OperationalError, TimeoutError as PoolTimeout

    pool_size = env_int("DB_POOL_SIZE", 20)
    max_overflow = env_int("DB_MAX_OVERFLOW", 40)
    pool_timeout = float(os.environ.get("DB_POOL_TIMEOUT") or 30)
    redis_max = env_int("REDIS_MAX_CONNECTIONS", 50)
    port = env_int("PORT", 8000)

    engine = create_engine(
        os.environ["DATABASE_URL"], pool_size=pool_size, max_overflow=max_overflow,
        pool_timeout=pool_timeout, pool_recycle=3600, pool_pre_ping=True,
    )
    redis_pool = redis.ConnectionPool.from_url(os.environ["REDIS_URL"], max_connections=redis_max)
    rcli = redis.Redis(connection_pool=redis_pool)
    state = PoolState(pool_size, max_overflow, redis_max, db_pool=engine.pool, redis_pool=redis_pool)
    registry = CollectorRegistry()
    metrics = register_metrics(registry, state)
    event.listen(engine.pool, "connect", lambda _dbapi_conn, _record: metrics.db_opened.inc())
    stopping = threading.Event()
    inflight = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, status, body, content_type="application/json", headers=()):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            if stopping.is_set():
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/metrics":
                return self.send(200, generate_latest(registry).decode(), CONTENT_TYPE_LATEST)
            if url.path == "/healthz":
                return self.send(503 if stopping.is_set() else 200, "ok\n", "text/plain")
            if url.path != "/":
                return self.send(404, "{}")
            with lock:
                inflight[0] += 1
            start = time.monotonic()
            status, error = 200, ""
            try:
                hold = float(parse_qs(url.query).get("hold", [random.uniform(0.05, 0.2)])[0])
                try:
                    rcli.incr("demo:requests")
                except redis.ConnectionError as err:
                    if "Too many connections" in str(err):
                        metrics.redis_errors.inc()
                        status, error = 503, "redis-too-many-connections"
                    else:
                        status, error = 500, "redis"
                if status == 200:
                    try:
                        with pooled_connection(engine, state, metrics) as conn:
                            conn.execute(text("SELECT pg_sleep(:s)"), {"s": hold})
                    except PoolTimeout:
                        metrics.db_timeouts.inc()
                        status, error = 503, "db-pool-timeout"
                    except OperationalError as err:
                        # PostgreSQL at max_connections - superuser_reserved_connections refuses new ones.
                        if is_refusal(err):
                            metrics.db_refused.inc()
                            status, error = 503, "db-connection-refused"
                        else:
                            status, error = 503, "db-operational-error"
            except Exception as err:  # noqa: BLE001 - reported to the client
                status, error = 500, type(err).__name__
            finally:
                with lock:
                    inflight[0] -= 1
            metrics.latency.labels(str(status)).observe(time.monotonic() - start)
            self.send(status, json.dumps({"error": error} if error else {"ok": True}), headers=[("X-Error", error)] if error else ())

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def on_term(_signum, _frame):
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"app: listening on 127.0.0.1:{port} pool_size={pool_size} max_overflow={max_overflow} "
          f"pool_timeout={pool_timeout} redis_max_connections={redis_max}", flush=True)
    server.serve_forever(poll_interval=0.2)
    deadline = time.monotonic() + 5
    while inflight[0] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.server_close()
    engine.dispose()
    redis_pool.disconnect()
    print("app: stopped", flush=True)


if __name__ == "__main__":
    main()
