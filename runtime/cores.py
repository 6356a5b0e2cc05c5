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
a TLS context), in a `storage.tenant_changes.TenantCache`: a new core URL or
key is used within about a second without a restart, and a message costs no
database round trip. Each process's `Runtime` holds one (`rt.cores`); the
console builds its own.

Failure policy: database and decryption errors raise (the job is retried); a
core that cannot answer is the caller's business (`CoreError` from the client).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from core_api_client import CoreClient
from runtime import core_timeouts
from storage.crypto import Vault
from storage.tenant_changes import TenantCache

log = logging.getLogger(__name__)


def core_url(settings: Settings, slug: str, row_url: str | None) -> str:
    """The base URL a tenant's core answers at: its row's, else (and for the configured tenant) CORE_API_URL;
    the rule of `TenantCores._read`, for a reader that has the rows but no `TenantCores`."""
    if not row_url or slug == settings.tenant_slug:
        return str(settings.core_api_url)
    return row_url


@dataclass(frozen=True)
class CoreAccess:
    """Where a tenant's core answers and the key it wants ("" for none)."""

    base_url: str
    api_key: str = field(repr=False)


class TenantCores:
    """The logistics core client of each tenant, cached for the life of the process. Thread-safe."""

    def __init__(self, settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis, vault: Vault,
                 *, timeout_s: float | None = None) -> None:
        self._settings = settings
        self._pool = pool
        self._vault = vault
        self._timeout_s = settings.core_api_timeout_s if timeout_s is None else timeout_s
        self._lock = threading.Lock()
        self._redis = redis_conn
        self._access: TenantCache[int, CoreAccess] = TenantCache(redis_conn, self._read)
        self._clients: dict[CoreAccess, CoreClient] = {}

    def client(self, tenant_id: int) -> CoreClient:
        """The client of the tenant's own core (the deployment's when its row names none)."""
        access = self.access(tenant_id)
        with self._lock:
            found = self._clients.get(access)
            if found is None:
                found = self._clients[access] = CoreClient(
                    access.base_url, access.api_key, self._timeout_s,
                    on_timeout=functools.partial(self._timed_out, access.base_url))
            return found

    def access(self, tenant_id: int) -> CoreAccess:
        """The tenant's core URL and key, from memory when the tenants have not changed since they were read."""
        return self._access.get(tenant_id)

    def _timed_out(self, base_url: str) -> None:
        core_timeouts.record(self._redis, base_url, time.time())

    def close(self) -> None:
        """Close every client this process built."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()

    def _read(self, tenant_id: int) -> CoreAccess:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT slug, core_api_url, core_api_key_encrypted FROM tenants WHERE id = %s",
                               (tenant_id,)).fetchone()
        url = row["core_api_url"] if row is not None else None  # type: ignore[call-overload]
        if not url or row["slug"] == self._settings.tenant_slug:  # type: ignore[call-overload,index]
            return CoreAccess(str(self._settings.core_api_url), self._settings.core_api_key)
        sealed = row["core_api_key_encrypted"]  # type: ignore[call-overload,index]
        return CoreAccess(str(url), self._vault.decrypt(sealed) if sealed else "")
