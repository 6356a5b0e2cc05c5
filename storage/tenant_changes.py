"""Redis key `tenants:version`: a counter bumped whenever a tenant or one of its channels changes.

Processes keep what they read about tenants in a `TenantCache` (routing,
each tenant's core, its senders, ...): it reads this counter at most once
every `CHECK_INTERVAL_S` and drops its entries when it moved, so a suspension,
a new number or a new setting takes effect within about a second everywhere,
without a Redis or database round trip per message.

Failure policy: errors are logged, never raised. A bump lost to a Redis
outage is covered by the caches' own expiry (`CACHE_S`); a version that cannot
be read keeps the cache until that expiry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import redis

log = logging.getLogger(__name__)

VERSION_KEY = "tenants:version"
CHECK_INTERVAL_S = 1.0
CACHE_S = 60.0  # the longest a change can go unseen (its announcement lost while Redis was down)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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


class TenantCache(Generic[K, V]):
    """Values read about tenants, kept until tenants change (or for `ttl_s`). Thread-safe.

    `load(key)` reads a missing or expired entry (its errors propagate: nothing is cached then).
    `on_change()`, if given, runs after the entries were dropped because the version moved (not at
    the first read), e.g. to retire connections built for the old values.
    """

    def __init__(self, conn: redis.Redis, load: Callable[[K], V], *, ttl_s: float = CACHE_S,
                 on_change: Callable[[], None] | None = None) -> None:
        self._redis = conn
        self._load = load
        self._ttl_s = ttl_s
        self._on_change = on_change
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}  # key -> (monotonic expiry, value)
        self._version: int | None = None
        self._checked = float("-inf")

    def get(self, key: K) -> V:
        now = time.monotonic()
        self._watch(now)
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        value = self._load(key)
        with self._lock:
            self._entries[key] = (now + self._ttl_s, value)
        return value

    def _watch(self, now: float) -> None:
        if now - self._checked < CHECK_INTERVAL_S:
            return
        self._checked = now
        current = version(self._redis)
        if current is None or current == self._version:
            return
        first = self._version is None
        self._version = current
        with self._lock:
            self._entries.clear()
        if not first and self._on_change is not None:
            self._on_change()
