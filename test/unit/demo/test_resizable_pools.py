"""Run by test/unit/demo/poolmetrics.test.ts with Debian's /usr/bin/python3 -m unittest: the demo
app's in-place pool resize (demo/workload/resizable_pools.py) on the real SQLAlchemy QueuePool
(connections from sqlite3, no server) and the real redis-py ConnectionPool (connections that
never touch a socket)."""
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "demo", "workload"))
import redis  # noqa: E402
from sqlalchemy.exc import TimeoutError as PoolTimeout  # noqa: E402
from resizable_pools import ResizableConnectionPool, ResizableQueuePool  # noqa: E402


class CountingCreator:
    """sqlite3 connections, counted as they are opened and closed."""

    def __init__(self):
        self.opened = 0
        self.closed = 0

    def __call__(self):
        self.opened += 1
        creator = self

        class Conn(sqlite3.Connection):
            def close(self):
                creator.closed += 1
                super().close()

        return sqlite3.connect(":memory:", factory=Conn, check_same_thread=False)

    @property
    def open(self):
        return self.opened - self.closed


def counts(pool):
    return {"size": pool.size(), "checked_out": pool.checkedout(), "checked_in": pool.checkedin()}


class QueuePoolResize(unittest.TestCase):
    def setUp(self):
        self.creator = CountingCreator()
        self.pool = ResizableQueuePool(self.creator, pool_size=2, max_overflow=3, timeout=0.05)

    def tearDown(self):
        self.pool.dispose()

    def checkout(self, n):
        return [self.pool.connect() for _ in range(n)]

    def test_growing_keeps_warm_connections_and_keeps_more_idle(self):
        held = self.checkout(5)
        self.pool.resize(4, 1, 0.05)
        for c in held:
            c.close()
        self.assertEqual(counts(self.pool), {"size": 4, "checked_out": 0, "checked_in": 4})
        self.assertEqual((self.creator.opened, self.creator.open), (5, 4))
        # The four idle ones serve the next requests: nothing is opened for them.
        again = self.checkout(4)
        self.assertEqual(self.creator.opened, 5)
        for c in again:
            c.close()

    def test_shrinking_closes_idle_connections_above_the_new_size_at_once(self):
        held = self.checkout(2)
        for c in held:
            c.close()
        self.pool.resize(4, 1, 0.05)
        held = self.checkout(4)
        for c in held:
            c.close()
        self.assertEqual(self.creator.open, 4)
        self.pool.resize(1, 4, 0.05)
        self.assertEqual(counts(self.pool), {"size": 1, "checked_out": 0, "checked_in": 1})
        self.assertEqual(self.creator.open, 1)
        # Capacity is the new 1 + 4: five at once, the sixth waits and times out.
        held = self.checkout(5)
        with self.assertRaises(PoolTimeout):
            self.pool.connect()
        for c in held:
            c.close()

    def test_a_smaller_capacity_is_reached_as_busy_connections_come_back(self):
        held = self.checkout(5)
        self.pool.resize(1, 1, 0.05)
        self.assertEqual(self.creator.open, 5)
        for c in held[:3]:
            c.close()
        # Five open, capacity 2: the first three back are closed, not kept.
        self.assertEqual((self.creator.open, counts(self.pool)["checked_in"]), (2, 0))
        # Two busy fill the capacity: a third checkout waits and times out.
        with self.assertRaises(PoolTimeout):
            self.pool.connect()
        for c in held[3:]:
            c.close()
        self.assertEqual(counts(self.pool), {"size": 1, "checked_out": 0, "checked_in": 1})
        self.assertEqual(self.creator.open, 1)

    def test_the_new_timeout_applies_to_the_next_checkout(self):
        self.pool.resize(1, 0, 0.3)
        held = self.checkout(1)
        # QueuePool names the timeout the checkout waited for in its message (no clock read here).
        with self.assertRaisesRegex(PoolTimeout, r"size 1 overflow 0 reached, connection timed out, timeout 0\.30"):
            self.pool.connect()
        self.assertEqual(self.pool.timeout(), 0.3)
        held[0].close()

    def test_size_zero_is_not_resizable(self):
        self.assertEqual(
            (ResizableQueuePool.resizable(2, 3), ResizableQueuePool.resizable(0, 3), ResizableQueuePool.resizable(2, 0)),
            (True, False, False),
        )
        with self.assertRaises(ValueError):
            self.pool.resize(0, 3, 1)


class SocketlessConnection(redis.Connection):
    disconnected = 0

    def connect(self):
        pass

    def can_read(self, timeout=0):
        return False

    def disconnect(self, *args):
        SocketlessConnection.disconnected += 1


class RedisPoolResize(unittest.TestCase):
    def setUp(self):
        SocketlessConnection.disconnected = 0
        self.pool = ResizableConnectionPool(connection_class=SocketlessConnection, max_connections=4)

    def take(self, n):
        return [self.pool.get_connection("INCR") for _ in range(n)]

    def test_growing_allows_more(self):
        held = self.take(4)
        self.pool.resize(6)
        held += self.take(2)
        with self.assertRaises(redis.ConnectionError):
            self.pool.get_connection("INCR")
        for c in held:
            self.pool.release(c)
        self.assertEqual((self.pool._created_connections, SocketlessConnection.disconnected), (6, 0))

    def test_shrinking_closes_idle_surplus_at_once_and_busy_surplus_on_release(self):
        held = self.take(4)
        for c in held[:2]:
            self.pool.release(c)
        self.pool.resize(1)
        # Two idle closed at once; two busy, one too many.
        self.assertEqual((self.pool._created_connections, SocketlessConnection.disconnected), (2, 2))
        self.pool.release(held[2])
        self.pool.release(held[3])
        self.assertEqual((self.pool._created_connections, len(self.pool._available_connections)), (1, 1))
        self.assertEqual(SocketlessConnection.disconnected, 3)


if __name__ == "__main__":
    unittest.main()
