"""Run by test/unit/demo/poolmetrics.test.ts with Debian's /usr/bin/python3 -m unittest."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "demo", "workload"))
from poolconfig import DEFAULTS, PoolConfigError, effective_settings, parse_pool_config  # noqa: E402


class PoolConfigFile(unittest.TestCase):
    def test_the_file_overrides_env_key_by_key(self):
        env = {"DB_POOL_SIZE": "10", "DB_MAX_OVERFLOW": "20", "REDIS_MAX_CONNECTIONS": "30"}
        text = "# written by poolpilot\n\nDB_POOL_SIZE=16\n DB_POOL_TIMEOUT = 2.5 \n"
        self.assertEqual(
            effective_settings(env, text),
            {"DB_POOL_SIZE": 16, "DB_MAX_OVERFLOW": 20, "DB_POOL_TIMEOUT": 2.5, "REDIS_MAX_CONNECTIONS": 30},
        )

    def test_without_a_file_env_then_defaults(self):
        self.assertEqual(effective_settings({"DB_POOL_SIZE": " "}), DEFAULTS)

    def test_malformed_lines_are_rejected_with_the_line_named(self):
        for text, message in [
            ("DB_POOL_SIZE=16\nDB_POOL_SZE=4\n", "line 2: unknown key 'DB_POOL_SZE'"),
            ("DB_POOL_SIZE=16\nDB_POOL_SIZE=17\n", "line 2: DB_POOL_SIZE is set twice"),
            ("DB_POOL_SIZE 16\n", "line 1: expected KEY=VALUE"),
            ("DB_POOL_SIZE=sixteen\n", "line 1: DB_POOL_SIZE='sixteen' is not an integer >= 0"),
            ("REDIS_MAX_CONNECTIONS=0\n", "line 1: REDIS_MAX_CONNECTIONS='0' is not an integer >= 1"),
            ("DB_POOL_TIMEOUT=0\n", "line 1: DB_POOL_TIMEOUT='0' is not a number of seconds > 0"),
        ]:
            with self.assertRaises(PoolConfigError, msg=text) as caught:
                parse_pool_config(text, "pool.conf")
            self.assertIn(f"pool.conf {message}", str(caught.exception))


class FakePools:
    def __init__(self, name):
        self.settings = {"name": name}
        self.closed = False

    def close(self):
        self.closed = True


class LivePoolsSwap(unittest.TestCase):
    """A reload swaps pools for new requests; the old ones close when their last request ends."""

    def setUp(self):
        import app

        self.old, self.new = FakePools("old"), FakePools("new")
        self.live = app.LivePools(self.old)

    def test_an_idle_pool_set_closes_at_the_swap(self):
        self.live.replace(self.new)
        self.assertEqual((self.old.closed, self.live.generation, self.live.snapshot()), (True, 1, (self.new, [])))

    def test_a_leased_pool_set_drains_then_closes(self):
        with self.live.lease() as running:
            self.live.replace(self.new)
            with self.live.lease() as later:
                self.assertEqual((running, later), (self.old, self.new))
            self.assertEqual((self.old.closed, self.live.snapshot()), (False, (self.new, [self.old])))
        self.assertEqual((self.old.closed, self.new.closed, self.live.snapshot()), (True, False, (self.new, [])))



class CountedPools:
    def __init__(self, settings, db_counts):
        self.settings = settings
        self._db_counts = db_counts

    def db_counts(self):
        return self._db_counts

    def close(self):
        pass


class DrainingConnections(unittest.TestCase):
    """db_pool_draining_connections: what a pod holds beyond the settings it reports."""

    SETTINGS = {"DB_POOL_SIZE": 2, "DB_MAX_OVERFLOW": 1, "DB_POOL_TIMEOUT": 2.0, "REDIS_MAX_CONNECTIONS": 5}

    def state(self, current):
        import app

        live = app.LivePools(current)
        return live, app.PoolState(2, 1, 5, live=live)

    def test_within_capacity_nothing_drains(self):
        _, state = self.state(CountedPools(self.SETTINGS, (3, 0, 1)))
        self.assertEqual(state.draining_connections(), 0)

    def test_open_connections_above_a_resized_capacity_drain(self):
        # 5 open (4 busy, 1 idle) after a resize to 2 + 1.
        _, state = self.state(CountedPools(self.SETTINGS, (4, 1, 3)))
        self.assertEqual(state.draining_connections(), 2)

    def test_a_retired_pool_drains_all_it_holds(self):
        old = CountedPools(self.SETTINGS, (2, 1, 1))
        live, state = self.state(old)
        with live.lease():
            live.replace(CountedPools(self.SETTINGS, (1, 0, -1)))
            self.assertEqual(state.draining_connections(), 3)


if __name__ == "__main__":
    unittest.main()
