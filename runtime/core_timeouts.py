"""Timeouts of the logistics cores, counted per core and per hour in Redis (the key family).

`core:timeouts:<core>:<hour>` counts the requests to one core (its base URL,
hashed: `core_id`) that timed out during one clock hour (epoch hours, UTC),
each attempt of a retried GET counting once. Every `CoreClient` that
`runtime.cores.TenantCores` builds reports its timeouts here (the worker's,
the scheduler's and the console's), so the count covers every caller of that
core. A tenant's count is its core's: tenants on the deployment's core
(`CORE_API_URL`) share one. Keys live `TTL_S` (26 hours), enough for the
operations view's alerts (`handoff.alerts`), which read the last hour.

Failure policy: Redis errors are logged and never raised (a count is lost,
the customer's answer is not delayed).
"""

from __future__ import annotations

import hashlib
import logging

import redis

log = logging.getLogger(__name__)

KEY = "core:timeouts:{core}:{hour}"
TTL_S = 26 * 3600


def core_id(base_url: str) -> str:
    """A short stable name of a core for keys (its URL, without a trailing slash, hashed)."""
    return hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]


def _key(base_url: str, hour: int) -> str:
    return KEY.format(core=core_id(base_url), hour=hour)


def record(conn: redis.Redis, base_url: str, now: float) -> None:
    """Count one request to the core at `base_url` that timed out at `now` (epoch seconds)."""
    key = _key(base_url, int(now // 3600))
    try:
        pipe = conn.pipeline()
        pipe.incr(key)
        pipe.expire(key, TTL_S, nx=True)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("core timeout not counted: %s", type(exc).__name__)


def count(conn: redis.Redis, base_url: str, now: float, hours: int = 1) -> int:
    """Timeouts of that core in the current clock hour and the `hours - 1` before it (0 when Redis fails)."""
    current = int(now // 3600)
    try:
        raw = conn.mget([_key(base_url, current - i) for i in range(max(1, hours))])
    except redis.RedisError as exc:
        log.warning("core timeouts unreadable: %s", type(exc).__name__)
        return 0
    return sum(int(v) for v in raw if v is not None)
