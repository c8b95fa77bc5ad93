#!/usr/bin/python3
"""The demo workload: an HTTP service shaped like the runbook's app (VoiceAssist).

Each request to / checks a connection out of a SQLAlchemy QueuePool and holds it for a
realistic time (SELECT pg_sleep(hold), hold from ?hold=SECONDS, default 0.05-0.2 s), and does
one Redis INCR through a redis-py ConnectionPool. /metrics exports the runbook's pool metrics
(see poolmetrics.py for their definitions), the error counters and a latency histogram;
/healthz answers once the pools are built.

Besides the runbook's names it exports what a full pool hides (prefix voiceassist_):
  db_pool_max_overflow                 gauge: DB_MAX_OVERFLOW
  db_pool_waiters                      gauge: threads waiting for a connection right now because
                                       every one the pool may open (pool_size + max_overflow) is
                                       checked out (not those briefly opening or pinging one)
  db_pool_checkouts_total              counter: checkouts that got a connection
  db_pool_timeouts_total               counter: checkouts that gave up after DB_POOL_TIMEOUT
  db_pool_checkout_wait_seconds        histogram: time to get a connection, timeouts and refusals included
  db_connection_hold_seconds           histogram: time a request held its connection
  db_connections_opened_total          counter: new PostgreSQL connections (the pool's 'connect' event)
  db_connection_refused_total          counter: new connections PostgreSQL refused for lack of slots

  db_pool_draining_connections         gauge: connections open beyond the live settings: in pools
                                       retired by a reload (swap), or above a smaller capacity
                                       until they come back (resize)
  pool_config_generation               gauge: reloads applied since start (0 = start-up settings)
  pool_config_reload_errors_total      counter: pool config files (or SIGHUPs) rejected as malformed

Pool settings: DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT (seconds), REDIS_MAX_CONNECTIONS
from env, overridden by the file POOL_CONFIG_FILE names if set (format in poolconfig.py: one
KEY=VALUE a line). Also from env: DATABASE_URL, REDIS_URL, PORT, LISTEN_ADDRESS, POOL_RELOAD. A malformed file or
env at start is fatal (exit 2, the message names the line or the variable).

Live reload, no restart: on SIGHUP, and when the file's mtime or content changes (polled every
second; a kubelet ConfigMap volume update swaps a symlink, which changes both), the settings are
read again. If they differ from the live ones, POOL_RELOAD (env) says how they apply:
  resize (default)  the live SQLAlchemy pool and redis-py pool take the new sizes in place
                    (resizable_pools.py): warm connections stay open, idle ones above the new
                    size close at once, busy ones above a smaller capacity when they come back.
  swap              a new SQLAlchemy engine and redis-py pool are built and swapped in for new
                    requests; requests already running finish on the old pools, which are closed
                    when the last of them ends. Until then their connections stay in checked_out /
                    checked_in (and in db_pool_draining_connections). Also used when a resize
                    cannot apply (a DB_POOL_SIZE of 0, QueuePool's "no limit").
db_pool_size, db_pool_max_overflow and redis_pool_max_connections report the live settings and
pool_config_generation counts the reloads applied.
A malformed file is logged and counted, and the old settings stay.

Run with Debian's /usr/bin/python3 and the Debian packages python3-sqlalchemy python3-psycopg2
python3-redis python3-prometheus-client.
SIGTERM: stop accepting, let in-flight requests finish (up to 5 s), close the pools, exit 0.
"""
import json
import os
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from poolconfig import PoolConfigError, effective_settings  # noqa: E402
from poolmetrics import db_pool_metrics, redis_pool_metrics  # noqa: E402

RELOAD_MODES = ("resize", "swap")

PREFIX = "voiceassist_"


class LivePools:
    """The pools new requests get, and the retired ones requests still hold.

    Whatever `build(settings)` returns is a pool set: it has .settings and .close(). lease() lends
    the current set to one request; replace() swaps in a new set for the requests that follow and
    closes the old one when its last lease ends (at once when none is out), so no request ever
    uses a closed pool and a retired pool's connections are counted until they are closed."""

    def __init__(self, first):
        self._lock = threading.Lock()
        self._current = first
        self._leases = {id(first): 0}
        self._retired = []
        self.generation = 0

    @contextmanager
    def lease(self):
        with self._lock:
            pools = self._current
            self._leases[id(pools)] += 1
        try:
            yield pools
        finally:
            with self._lock:
                self._leases[id(pools)] -= 1
                drained = pools in self._retired and self._leases[id(pools)] == 0
                if drained:
                    self._retired.remove(pools)
                    del self._leases[id(pools)]
            if drained:
                pools.close()

    def resize(self, settings):
        """Applies new settings to the current set in place (its .resize(settings)); nothing retires."""
        with self._lock:
            self._current.resize(settings)
            self.generation += 1

    def replace(self, pools):
        with self._lock:
            old = self._current
            self._current = pools
            self._leases[id(pools)] = 0
            self.generation += 1
            idle = self._leases[id(old)] == 0
            if idle:
                del self._leases[id(old)]
            else:
                self._retired.append(old)
        if idle:
            old.close()

    def snapshot(self):
        """(current set, retired sets not yet closed)."""
        with self._lock:
            return self._current, list(self._retired)

    def close_all(self):
        current, retired = self.snapshot()
        for pools in [current, *retired]:
            pools.close()


class PoolState:
    """Reads the live pools at scrape time; without pools (tests) it reports the values set."""

    def __init__(self, db_pool_size, db_max_overflow, redis_max_connections, live=None):
        self.db_pool_size = db_pool_size
        self.db_max_overflow = db_max_overflow
        self.redis_max_connections = redis_max_connections
        self.live = live
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

    def generation(self):
        return self.live.generation if self.live is not None else 0

    def db(self):
        """The live settings; checked_out / checked_in count retired pools too (their connections
        are still open), overflow is the current pool's."""
        if self.live is None:
            return db_pool_metrics(self.db_pool_size, self.db_max_overflow, *self._db)
        current, retired = self.live.snapshot()
        counts = [pools.db_counts() for pools in [current, *retired]]
        return db_pool_metrics(
            current.settings["DB_POOL_SIZE"], current.settings["DB_MAX_OVERFLOW"],
            sum(c[0] for c in counts), sum(c[1] for c in counts), counts[0][2],
        )

    def draining_connections(self):
        """Connections open beyond the live settings: all of the retired pools' (a swap), and the
        current pool's above pool_size + max_overflow (a resize to a smaller capacity, until they
        come back), so poolpilot confirms a delivery only once the pod holds what it was sent."""
        if self.live is None:
            return 0
        current, retired = self.live.snapshot()
        checked_out, checked_in, _ = current.db_counts()
        capacity = current.settings["DB_POOL_SIZE"] + current.settings["DB_MAX_OVERFLOW"]
        above_capacity = max(0, checked_out + checked_in - capacity)
        return above_capacity + sum(c[0] + c[1] for c in (pools.db_counts() for pools in retired))

    def redis(self):
        if self.live is None:
            return redis_pool_metrics(self.redis_max_connections, *self._redis)
        current, retired = self.live.snapshot()
        counts = [pools.redis_counts() for pools in [current, *retired]]
        return redis_pool_metrics(current.settings["REDIS_MAX_CONNECTIONS"], sum(c[0] for c in counts), sum(c[1] for c in counts))


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
        g = GaugeMetricFamily(
            f"{PREFIX}db_pool_draining_connections",
            "Connections open beyond the live settings: in pools retired by a reload, or above a smaller capacity",
        )
        g.add_metric([], self.state.draining_connections())
        yield g
        g = GaugeMetricFamily(f"{PREFIX}pool_config_generation", "Pool config reloads applied since start (0 = start-up settings)")
        g.add_metric([], self.state.generation())
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
        self.reload_errors = Counter(
            f"{PREFIX}pool_config_reload_errors", "Pool config reloads rejected as malformed (the old settings stay)", registry=registry,
        )
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
    """engine.connect() as a measured checkout: a caller that finds every connection the pool may
    open checked out is a waiter until it has one (or the pool gives up); the wait is observed
    whatever the outcome, the hold time on return."""
    started = time.monotonic()
    pool = engine.pool
    limit = pool._max_overflow  # noqa: SLF001 - QueuePool has no public accessor; -1 means no limit
    exhausted = limit >= 0 and pool.checkedout() >= pool.size() + limit
    with state.waiting() if exhausted else nullcontext():
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


class PoolConfigSource:
    """Where the settings come from: env, and over it the file POOL_CONFIG_FILE names.

    changed() tells whether the file differs (mtime or content) from the last time it was read;
    a kubelet ConfigMap volume update swaps a symlink, which changes both."""

    def __init__(self, environ):
        self.environ = environ
        self.path = environ.get("POOL_CONFIG_FILE", "").strip() or None
        self._seen = None

    def _signature(self):
        with open(self.path, encoding="utf-8") as f:
            return os.fstat(f.fileno()).st_mtime_ns, f.read()

    def changed(self):
        if self.path is None:
            return False
        try:
            return self._signature() != self._seen
        except OSError:
            return self._seen is not None

    def read(self):
        """The effective settings; raises PoolConfigError or OSError with a message that says what to fix."""
        if self.path is None:
            return effective_settings(self.environ)
        try:
            self._seen = self._signature()
        except OSError as err:
            self._seen = None
            raise OSError(f"POOL_CONFIG_FILE {self.path} cannot be read: {err.strerror}") from None
        return effective_settings(self.environ, self._seen[1], f"POOL_CONFIG_FILE {self.path}")


def describe(settings):
    return " ".join(f"{key}={value}" for key, value in settings.items())


def main():
    import redis
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import OperationalError, TimeoutError as PoolTimeout

    from resizable_pools import ResizableConnectionPool, ResizableQueuePool

    source = PoolConfigSource(os.environ)
    try:
        settings = source.read()
        port = int(os.environ.get("PORT") or 8000)
        # Loopback under the node agent; a Pod listens on all its addresses (LISTEN_ADDRESS=0.0.0.0).
        listen_address = os.environ.get("LISTEN_ADDRESS", "").strip() or "127.0.0.1"
        reload_mode = os.environ.get("POOL_RELOAD", "").strip() or "resize"
        if reload_mode not in RELOAD_MODES:
            raise ValueError(f"POOL_RELOAD={reload_mode!r} is not one of {', '.join(RELOAD_MODES)}")
    except (PoolConfigError, OSError, ValueError) as err:
        print(f"app: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    registry = CollectorRegistry()

    class Pools:
        """One SQLAlchemy engine and one redis-py pool built for one set of settings. Its PostgreSQL
        connections carry application_name "voiceassist pid P pool gen N" (P = this process, N = the
        config generation the set was built for; a resize keeps it), so pg_stat_activity shows which
        engine holds them while an old one drains."""

        def __init__(self, settings, generation):
            self.settings = settings
            self.engine = create_engine(
                os.environ["DATABASE_URL"], pool_size=settings["DB_POOL_SIZE"], max_overflow=settings["DB_MAX_OVERFLOW"],
                pool_timeout=settings["DB_POOL_TIMEOUT"], pool_recycle=3600, pool_pre_ping=True, poolclass=ResizableQueuePool,
                connect_args={"application_name": f"voiceassist pid {os.getpid()} pool gen {generation}"},
            )
            # `metrics` is bound below, before the first request can open a connection.
            event.listen(self.engine.pool, "connect", lambda _dbapi_conn, _record: metrics.db_opened.inc())
            self.redis_pool = ResizableConnectionPool.from_url(os.environ["REDIS_URL"], max_connections=settings["REDIS_MAX_CONNECTIONS"])
            self.redis = redis.Redis(connection_pool=self.redis_pool)

        def resizable(self, settings):
            return ResizableQueuePool.resizable(self.settings["DB_POOL_SIZE"], settings["DB_POOL_SIZE"])

        def resize(self, settings):
            self.engine.pool.resize(settings["DB_POOL_SIZE"], settings["DB_MAX_OVERFLOW"], settings["DB_POOL_TIMEOUT"])
            self.redis_pool.resize(settings["REDIS_MAX_CONNECTIONS"])
            self.settings = settings

        def db_counts(self):
            p = self.engine.pool
            return p.checkedout(), p.checkedin(), p.overflow()

        def redis_counts(self):
            # redis-py 4.x keeps these two collections; no public accessor exists.
            return len(self.redis_pool._in_use_connections), len(self.redis_pool._available_connections)

        def close(self):
            self.engine.dispose()
            self.redis_pool.disconnect()

    live = LivePools(Pools(settings, 0))
    state = PoolState(settings["DB_POOL_SIZE"], settings["DB_MAX_OVERFLOW"], settings["REDIS_MAX_CONNECTIONS"], live=live)
    metrics = register_metrics(registry, state)
    stopping = threading.Event()
    reload_requested = threading.Event()
    inflight = [0]
    lock = threading.Lock()

    def reload(reason):
        try:
            wanted = source.read()
        except (PoolConfigError, OSError) as err:
            metrics.reload_errors.inc()
            print(f"app: {reason}: ignored, the pools keep their settings: {err}", file=sys.stderr, flush=True)
            return
        current, _ = live.snapshot()
        if wanted == current.settings:
            print(f"app: {reason}: settings unchanged", flush=True)
            return
        if reload_mode == "resize" and current.resizable(wanted):
            live.resize(wanted)
            how = "resized in place"
        else:
            # Only this thread replaces pools, so the next generation number is known here.
            live.replace(Pools(wanted, live.generation + 1))
            how = "new pools (old pools close once their requests end)"
        print(f"app: {reason}: generation {live.generation}: {describe(wanted)}, {how}", flush=True)

    def watch_config():
        while not stopping.is_set():
            if reload_requested.wait(1.0):
                reload_requested.clear()
                reload("SIGHUP")
            elif source.changed():
                reload(f"{source.path} changed")

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
                with live.lease() as pools:
                    status, error = serve(pools, hold)
            except Exception as err:  # noqa: BLE001 - reported to the client
                status, error = 500, type(err).__name__
            finally:
                with lock:
                    inflight[0] -= 1
            metrics.latency.labels(str(status)).observe(time.monotonic() - start)
            self.send(status, json.dumps({"error": error} if error else {"ok": True}), headers=[("X-Error", error)] if error else ())

    def serve(pools, hold):
        """One request on one pool set: a Redis INCR, then a connection held for `hold` seconds."""
        try:
            pools.redis.incr("demo:requests")
        except redis.ConnectionError as err:
            if "Too many connections" not in str(err):
                return 500, "redis"
            metrics.redis_errors.inc()
            return 503, "redis-too-many-connections"
        try:
            with pooled_connection(pools.engine, state, metrics) as conn:
                conn.execute(text("SELECT pg_sleep(:s)"), {"s": hold})
        except PoolTimeout:
            metrics.db_timeouts.inc()
            return 503, "db-pool-timeout"
        except OperationalError as err:
            # PostgreSQL at max_connections - superuser_reserved_connections refuses new ones.
            if is_refusal(err):
                metrics.db_refused.inc()
                return 503, "db-connection-refused"
            return 503, "db-operational-error"
        return 200, ""

    class Server(ThreadingHTTPServer):
        # socketserver's listen backlog is 5: a burst of new connections beyond it (a load step,
        # a test's six requests plus a scrape) has SYNs dropped and retried after 1 s or more,
        # which shows as latency the pools did not cause. Production servers use 128 and up.
        request_queue_size = 128
        daemon_threads = True

    server = Server((listen_address, port), Handler)

    def on_term(_signum, _frame):
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    # The handler only flags the reload: building pools does not belong in a signal handler.
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload_requested.set())
    threading.Thread(target=watch_config, name="pool-config", daemon=True).start()
    print(f"app: listening on {listen_address}:{port} {describe(settings)} POOL_RELOAD={reload_mode}"
          f"{f' (POOL_CONFIG_FILE {source.path})' if source.path else ''}", flush=True)
    server.serve_forever(poll_interval=0.2)
    deadline = time.monotonic() + 5
    while inflight[0] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.server_close()
    live.close_all()
    print("app: stopped", flush=True)


if __name__ == "__main__":
    main()
