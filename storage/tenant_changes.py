"""Redis key `tenants:version`: a counter bumped whenever a tenant or one of its channels changes.

Processes cache tenants in memory (`runtime.resources.Runtime.tenant_for`);
they read this counter at most once every `CHECK_INTERVAL_S` and drop their
cache when it moved, so a suspension or a new number takes effect within
about a second everywhere, without a Redis or database round trip per message.

Failure policy: errors are logged, never raised. A bump lost to a Redis
outage is covered by the caches' own expiry (`Runtime.TENANT_CACHE_S`); a
version that cannot be read keeps the cache until that expiry.
"""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)

VERSION_KEY = "tenants:version"
CHECK_INTERVAL_S = 1.0


def announce(conn: redis.Redis | None) -> None:
    """Tell every process that tenants changed (no client: nothing to tell, e.g. a migration without Redis)."""
    if conn is None:
        return
    try:
        conn.incr(VERSION_KEY)
    except redis.RedisError as exc:
        log.warning("tenant change not announced (%s); caches expire on their own", type(exc).__name__)


def version(conn: redis.Redis) -> int | None:
    """The current version (0 before any change), None when Redis cannot be read."""
    try:
        value = conn.get(VERSION_KEY)
    except redis.RedisError as exc:
        log.debug("tenant version unreadable (%s)", type(exc).__name__)  # the outage is reported elsewhere
        return None
    return int(value) if value is not None else 0
