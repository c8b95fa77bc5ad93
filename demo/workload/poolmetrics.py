"""The runbook's pool metrics, computed from pool counters (pure; unit-tested in test_poolmetrics.py).

Database pool (SQLAlchemy QueuePool):
  size          = pool_size (DB_POOL_SIZE), the configured base size
  max_overflow  = max_overflow (DB_MAX_OVERFLOW): connections QueuePool may open beyond pool_size;
                  size + max_overflow is the pool's capacity
  checked_out   = connections lent to requests right now
  checked_in    = idle connections held by the pool
  overflow      = connections open beyond pool_size (QueuePool.overflow() counts from
                  -pool_size upwards, so it is clamped at 0 here)
  utilization   = 100 x checked_out / (pool_size + max_overflow): the share of the pool's total
                  capacity in use. The runbook calls pool_size + max_overflow the "total capacity"
                  and alerts at 80 %; a pool at 100 % makes the next checkout wait up to
                  DB_POOL_TIMEOUT and then raise "QueuePool limit ... reached".
Redis pool (redis-py ConnectionPool):
  max_connections = REDIS_MAX_CONNECTIONS
  in_use          = connections lent out
  available       = idle connections already open (not max - in_use: redis-py opens lazily)
"""


def db_pool_metrics(pool_size, max_overflow, checked_out, checked_in, raw_overflow):
    capacity = pool_size + max_overflow
    utilization = 100.0 * checked_out / capacity if capacity > 0 else 0.0
    return {
        "size": pool_size,
        "max_overflow": max_overflow,
        "checked_out": checked_out,
        "checked_in": checked_in,
        "overflow": max(0, raw_overflow),
        "utilization_percent": min(100.0, utilization),
    }


def redis_pool_metrics(max_connections, in_use, available):
    return {"max_connections": max_connections, "in_use": in_use, "available": available}
