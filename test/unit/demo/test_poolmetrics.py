"""Run by test/unit/demo/poolmetrics.test.ts with Debian's /usr/bin/python3 -m unittest."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "demo", "workload"))
from poolmetrics import db_pool_metrics, redis_pool_metrics  # noqa: E402


class DbPoolMetrics(unittest.TestCase):
    def test_utilization_is_checked_out_over_size_plus_overflow(self):
        m = db_pool_metrics(pool_size=10, max_overflow=20, checked_out=15, checked_in=0, raw_overflow=5)
        self.assertEqual(m, {"size": 10, "max_overflow": 20, "checked_out": 15, "checked_in": 0, "overflow": 5, "utilization_percent": 50.0})

    def test_overflow_counts_from_minus_pool_size(self):
        # QueuePool.overflow() is -pool_size on a fresh pool; no connection is beyond pool_size.
        m = db_pool_metrics(pool_size=5, max_overflow=5, checked_out=0, checked_in=0, raw_overflow=-5)
        self.assertEqual(m["overflow"], 0)
        self.assertEqual(m["utilization_percent"], 0.0)

    def test_full_pool_is_100(self):
        m = db_pool_metrics(pool_size=5, max_overflow=5, checked_out=10, checked_in=0, raw_overflow=5)
        self.assertEqual(m["utilization_percent"], 100.0)

    def test_zero_capacity_is_zero(self):
        self.assertEqual(db_pool_metrics(0, 0, 0, 0, 0)["utilization_percent"], 0.0)


class RedisPoolMetrics(unittest.TestCase):
    def test_passthrough(self):
        self.assertEqual(redis_pool_metrics(50, 3, 2), {"max_connections": 50, "in_use": 3, "available": 2})


class ExporterNames(unittest.TestCase):
    """The exporter in app.py publishes exactly the runbook's names (no PostgreSQL needed)."""

    def test_metric_names_and_values(self):
        try:
            import app  # noqa: F401
        except ImportError as err:  # Debian packages missing
            self.fail(f"app.py needs python3-sqlalchemy python3-psycopg2 python3-redis python3-prometheus-client: {err}")
        from prometheus_client import generate_latest
        from prometheus_client.core import CollectorRegistry

        registry = CollectorRegistry()
        state = app.PoolState(db_pool_size=4, db_max_overflow=4, redis_max_connections=8)
        metrics = app.register_metrics(registry, state)
        metrics.latency.labels("200").observe(0.12)
        state.set_db(checked_out=6, checked_in=0, raw_overflow=2)
        state.set_redis(in_use=2, available=1)
        text = generate_latest(registry).decode()
        for line in [
            "voiceassist_db_pool_size 4.0",
            "voiceassist_db_pool_max_overflow 4.0",
            "voiceassist_db_pool_waiters 0.0",
            "voiceassist_db_pool_checkouts_total 0.0",
            "voiceassist_db_connections_opened_total 0.0",
            "voiceassist_db_connection_refused_total 0.0",
            'voiceassist_db_pool_checkout_wait_seconds_count 0.0',
            'voiceassist_db_connection_hold_seconds_count 0.0',
            "voiceassist_db_pool_checked_out 6.0",
            "voiceassist_db_pool_checked_in 0.0",
            "voiceassist_db_pool_overflow 2.0",
            "voiceassist_db_pool_utilization_percent 75.0",
            "voiceassist_redis_pool_max_connections 8.0",
            "voiceassist_redis_pool_in_use 2.0",
            "voiceassist_redis_pool_available 1.0",
            "voiceassist_db_pool_timeouts_total 0.0",
            "voiceassist_redis_connection_errors_total 0.0",
            "voiceassist_db_pool_draining_connections 0.0",
            "voiceassist_pool_config_generation 0.0",
            "voiceassist_pool_config_reload_errors_total 0.0",
        ]:
            self.assertIn(line + "\n", text)
        self.assertIn('voiceassist_http_request_duration_seconds_bucket{le="0.2",status="200"} 1.0\n', text)


class CheckoutSignals(unittest.TestCase):
    """What a full pool hides: threads waiting inside a checkout, and PostgreSQL's refusals."""

    def test_waiters_count_the_threads_inside_a_checkout(self):
        import app
        from prometheus_client import generate_latest
        from prometheus_client.core import CollectorRegistry

        registry = CollectorRegistry()
        state = app.PoolState(db_pool_size=1, db_max_overflow=0, redis_max_connections=1)
        app.register_metrics(registry, state)
        with state.waiting(), state.waiting():
            during = generate_latest(registry).decode()
        after = generate_latest(registry).decode()
        self.assertIn("voiceassist_db_pool_waiters 2.0\n", during)
        self.assertIn("voiceassist_db_pool_waiters 0.0\n", after)

    def test_refusals_are_postgresql_out_of_slots_only(self):
        import app

        for message in [
            "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
            "FATAL:  sorry, too many clients already",
            'FATAL:  too many connections for role "app"',
        ]:
            self.assertTrue(app.is_refusal(Exception(message)), message)
        self.assertFalse(app.is_refusal(Exception('FATAL:  password authentication failed for user "app"')))


if __name__ == "__main__":
    unittest.main()
