"""Each tenant's logistics core: the one place that builds a tenant's `CoreClient`.

A tenant row names its own core (`tenants.core_api_url`, and its API key,
stored encrypted in `core_api_key_encrypted`). Two tenants use the
deployment's `CORE_API_URL`/`CORE_API_KEY` instead: the configured one
(TENANT_SLUG), whose row `encargo-migrate` writes from those very variables
at every start (so the process's environment is its truth), and a tenant
whose row names no core (a single-company deployment keeps working). The
deployment's key never goes to a core a row names: a row with a URL and no
key calls that core without a key.

`TenantCores` keeps, per process, each tenant's core settings and one client
per distinct core (a client keeps its connections alive; building one costs
a TLS context). What it read is dropped when `storage.tenant_changes`
announces a change (read at most once every CHECK_INTERVAL_S) or after
CACHE_S, so a new core URL or key is used within about a second without a
restart, and a message costs no database round trip.

`cores_of(rt)` is the worker's and scheduler's instance (one per Runtime
pool); the console builds its own.

Failure policy: database and decryption errors raise (the job is retried); a
core that cannot answer is the caller's business (`CoreError` from the client).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from core_api_client import CoreClient
from runtime.resources import Runtime
from storage import tenant_changes
from storage.crypto import Vault

log = logging.getLogger(__name__)

CACHE_S = 60.0  # the longest a change can go unseen (its announcement lost while Redis was down)


@dataclass(frozen=True)
class CoreAccess:
    """Where a tenant's core answers and the key it wants ("" for none)."""

    base_url: str
    api_key: str = field(repr=False)


class TenantCores:
    """The logistics core client of each tenant, cached for the life of the process."""

    def __init__(self, settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis, vault: Vault,
                 *, timeout_s: float | None = None) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = redis_conn
        self._vault = vault
        self._timeout_s = settings.core_api_timeout_s if timeout_s is None else timeout_s
        self._lock = threading.Lock()
        self._access: dict[int, tuple[float, CoreAccess]] = {}  # tenant id -> (monotonic expiry, access)
        self._clients: dict[CoreAccess, CoreClient] = {}
        self._version: int | None = None
        self._checked = float("-inf")

    def client(self, tenant_id: int) -> CoreClient:
        """The client of the tenant's own core (the deployment's when its row names none)."""
        access = self.access(tenant_id)
        with self._lock:
            found = self._clients.get(access)
            if found is None:
                found = self._clients[access] = CoreClient(access.base_url, access.api_key, self._timeout_s)
            return found

    def access(self, tenant_id: int) -> CoreAccess:
        """The tenant's core URL and key, from memory when the tenants have not changed since they were read."""
        now = time.monotonic()
        if now - self._checked >= tenant_changes.CHECK_INTERVAL_S:
            self._checked = now
            current = tenant_changes.version(self._redis)
            if current is not None and current != self._version:
                with self._lock:
                    self._access.clear()
                self._version = current
        cached = self._access.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        access = self._read(tenant_id)
        with self._lock:
            self._access[tenant_id] = (now + CACHE_S, access)
        return access

    def _read(self, tenant_id: int) -> CoreAccess:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT slug, core_api_url, core_api_key_encrypted FROM tenants WHERE id = %s",
                               (tenant_id,)).fetchone()
        url = row["core_api_url"] if row is not None else None  # type: ignore[call-overload]
        if not url or row["slug"] == self._settings.tenant_slug:  # type: ignore[call-overload,index]
            return CoreAccess(str(self._settings.core_api_url), self._settings.core_api_key)
        sealed = row["core_api_key_encrypted"]  # type: ignore[call-overload,index]
        return CoreAccess(str(url), self._vault.decrypt(sealed) if sealed else "")


_of_pool: weakref.WeakKeyDictionary[ConnectionPool, TenantCores] = weakref.WeakKeyDictionary()
_of_pool_lock = threading.Lock()


def cores_of(rt: Runtime) -> TenantCores:
    """The tenants' cores of a worker or scheduler process (one `TenantCores` per Runtime pool)."""
    with _of_pool_lock:
        found = _of_pool.get(rt.pool)
        if found is None:
            found = _of_pool[rt.pool] = TenantCores(rt.settings, rt.pool, rt.redis, rt.vault)
        return found


def core_for(rt: Runtime, tenant_id: int) -> CoreClient:
    """Shorthand: the client of `tenant_id`'s core in a worker or scheduler process."""
    return cores_of(rt).client(tenant_id)
