"""Pools the demo app resizes in place on a reload (POOL_RELOAD=resize, the default), the way
HikariCP's setMaximumPoolSize does: no connection is opened for the resize, and only what is above
the new settings is closed.

A swap (POOL_RELOAD=swap) builds new pools and drains the old ones: every request after it opens
a connection again until the new pool is warm, and the old pool's busy connections stay open
beside the new pool's until they come back. A resize keeps the warm connections:

- DB_POOL_SIZE: the idle connections above the new size are closed at once; below it, connections
  that come back are kept instead of closed.
- DB_MAX_OVERFLOW (capacity = pool_size + max_overflow): a connection that comes back while more
  are open than the new capacity is closed, so a smaller capacity is reached as requests end, and
  never passed again.
- DB_POOL_TIMEOUT: the next checkout waits for the new time.
- REDIS_MAX_CONNECTIONS: the same as capacity: surplus idle connections close at once, busy ones
  when they come back.

SQLAlchemy (1.4 and 2.0) and redis-py (4.x) have no public API for a resize; these subclasses use
the internals both versions share, named where they are used. Tested in
test/unit/demo/test_resizable_pools.py against the real classes (no server needed).
"""
import redis
from sqlalchemy.pool import QueuePool


class ResizableQueuePool(QueuePool):
    """A QueuePool whose pool_size, max_overflow and timeout can change while it is in use.

    QueuePool's state: _pool, a queue of idle connections whose maxsize is pool_size; _overflow,
    the connections open minus pool_size; _max_overflow; _timeout; _overflow_lock guards
    _overflow. A pool_size of 0 means "no limit" to QueuePool, so neither the old nor the new size
    may be 0 (resizable() says whether a resize applies)."""

    @staticmethod
    def resizable(old_size, new_size):
        return old_size > 0 and new_size > 0

    def resize(self, pool_size, max_overflow, timeout):
        if not self.resizable(self.size(), pool_size):
            raise ValueError(f"a QueuePool cannot be resized from pool_size {self.size()} to {pool_size}")
        idle = self._pool
        surplus = []
        with self._overflow_lock:
            with idle.mutex:
                while len(idle.queue) > pool_size:
                    surplus.append(idle.queue.popleft())
                # Connections open stay what they were, less the surplus closed below.
                self._overflow += idle.maxsize - pool_size - len(surplus)
                idle.maxsize = pool_size
            self._max_overflow = max_overflow
            self._timeout = timeout
        for record in surplus:
            record.close()

    def _do_return_conn(self, record):
        # Above capacity after a smaller max_overflow: close instead of keeping it for the next request.
        with self._overflow_lock:
            over = 0 <= self._max_overflow < self._overflow
            if over:
                self._overflow -= 1
        if over:
            record.close()
            return
        super()._do_return_conn(record)


class ResizableConnectionPool(redis.ConnectionPool):
    """A redis-py ConnectionPool whose max_connections can change while it is in use.

    redis-py's state: _created_connections (open), _available_connections (idle, a list),
    _in_use_connections, _lock. It keeps every connection it made, so a smaller max_connections
    needs the surplus closed: idle ones at once, busy ones when they are released."""

    def resize(self, max_connections):
        with self._lock:
            self.max_connections = max_connections
            surplus = []
            while self._created_connections > max_connections and self._available_connections:
                surplus.append(self._available_connections.pop())
                self._created_connections -= 1
        for connection in surplus:
            connection.disconnect()

    def release(self, connection):
        with self._lock:
            over = self._created_connections > self.max_connections and connection in self._in_use_connections
            if over:
                self._in_use_connections.remove(connection)
                self._created_connections -= 1
        if over:
            connection.disconnect()
            return
        super().release(connection)
