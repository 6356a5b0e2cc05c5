"""What a process's work needs: settings, pool, Redis, the vault, the transports and the queue.

`transport` is the deployment's own (its settings' number and credentials);
`senders` gives the one of a conversation's tenant channel (runtime.senders),
which is what replies, agents' messages and notifications are sent with.

Each process builds its `Runtime` once (`build_runtime`) and passes it on:
the worker hands it to every job as the first argument (worker.main), the
scheduler to every timed job (worker.scheduler). Nothing looks it up globally.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import redis
from psycopg_pool import ConnectionPool
from rq import Queue

from channels.outbound import Transport
from channels.transport import build_transport
from config import Settings
from runtime.senders import Senders
from storage import tenant_changes
from storage.crypto import Vault
from storage.db import open_pool
from storage.tenants import Tenant, tenant_for_channel_number

log = logging.getLogger(__name__)

TENANT_CACHE_S = 60.0  # the longest a change can go unseen (its announcement lost while Redis was down)


@dataclass
class Runtime:
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    vault: Vault
    transport: Transport
    queue: Queue
    senders: Senders
    # (provider, receiving number) -> (monotonic expiry, tenant or None)
    _tenants: dict[tuple[str, str], tuple[float, Tenant | None]] = field(default_factory=dict, repr=False)
    _tenants_version: int | None = field(default=None, repr=False)
    _tenants_checked: float = field(default=float("-inf"), repr=False)

    def tenant_for(self, provider: str, channel_number: str) -> Tenant | None:
        """The tenant owning a receiving number (whatever its status), from memory.

        Every message asks and tenants rarely change: an answer is kept for TENANT_CACHE_S, and the
        whole cache is dropped when `storage.tenant_changes` announces a change, which is read at most
        once every CHECK_INTERVAL_S (a suspension or a new number is seen within about a second).
        """
        now = time.monotonic()
        if now - self._tenants_checked >= tenant_changes.CHECK_INTERVAL_S:
            self._tenants_checked = now
            current = tenant_changes.version(self.redis)
            if current is not None and current != self._tenants_version:
                self._tenants.clear()
                self._tenants_version = current
        key = (provider, channel_number)
        cached = self._tenants.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = tenant_for_channel_number(self.pool, provider, channel_number)
        self._tenants[key] = (now + TENANT_CACHE_S, tenant)
        return tenant

    def close(self) -> None:
        self.senders.close()
        self.pool.close()
        self.redis.close()


def redis_from_settings(settings: Settings) -> redis.Redis:
    """A client that fails fast when Redis is down (the webhook then falls back to PostgreSQL)."""
    return redis.Redis.from_url(
        settings.redis_url, socket_timeout=2, socket_connect_timeout=1, health_check_interval=30
    )


def build_runtime(settings: Settings, *, pool: ConnectionPool | None = None, pool_size: int = 4) -> Runtime:
    conn = redis_from_settings(settings)
    pool = pool or open_pool(settings.database_url, max_size=pool_size, name="worker")
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    transport = build_transport(settings, conn)
    return Runtime(
        settings=settings,
        pool=pool,
        redis=conn,
        vault=vault,
        transport=transport,
        queue=Queue(settings.queue_name, connection=conn),
        senders=Senders(settings, pool, conn, vault, transport),
    )
