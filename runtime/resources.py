"""What a process's work needs: settings, pool, Redis, the vault, the transports and the queue.

`transport` is the deployment's own (its settings' number and credentials);
`senders` gives the one of a conversation's tenant channel (runtime.senders),
which is what replies, agents' messages and notifications are sent with;
`cores` gives each tenant's logistics core client (runtime.cores); `tenant_for`
routes a receiving number to its tenant; `rules` gives each company's own
hours and templates (runtime.tenant_rules); `faqs` its FAQ, `phrases` its own
router phrases (storage.intent_phrases). All are kept in memory until
tenants change (storage.tenant_changes).

Each process builds its `Runtime` once (`build_runtime`) and passes it on:
the worker hands it to every job as the first argument (worker.main), the
scheduler to every timed job (worker.scheduler). Nothing looks it up globally.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis
from psycopg_pool import ConnectionPool
from rq import Queue

from channels.outbound import Transport
from channels.transport import build_transport
from config import Settings
from runtime.cores import TenantCores
from runtime.model_access import ModelAccess, model_access_cache
from runtime.plan_terms import PlanTerms
from runtime.senders import Senders
from runtime.tenant_rules import TenantRules
from storage import faq_versions, intent_phrases
from storage.crypto import Vault
from storage.db import open_pool
from storage.faq_content import FaqData
from storage.intent_phrases import CompanyPhrases
from storage.media_files import MediaStore, open_store
from storage.tenant_changes import TenantCache
from storage.tenant_health import ChannelProofs
from storage.tenants import Tenant, tenant_for_channel_number

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    vault: Vault
    transport: Transport
    queue: Queue
    senders: Senders
    cores: TenantCores
    # (provider, receiving number) -> tenant or None; built by `build_runtime`
    routing: TenantCache[tuple[str, str], Tenant | None] = field(repr=False)
    rules: TenantRules = field(repr=False)  # each company's own hours and templates
    proofs: ChannelProofs = field(repr=False)  # receiving numbers proved to work (tenant_channels.verified_at)
    plans: PlanTerms = field(repr=False)  # what each tenant's plan lets the bot do now
    faqs: TenantCache[int, FaqData] = field(repr=False)  # each tenant's current policies and FAQ
    model_access: TenantCache[int, ModelAccess | None] = field(repr=False)  # each tenant's model account
    phrases: TenantCache[int, CompanyPhrases] = field(repr=False)  # each tenant's own router phrases
    media_store: MediaStore = field(repr=False)  # the files of conversations (issue 17; storage/media_files.py)

    def tenant_for(self, provider: str, channel_number: str) -> Tenant | None:
        """The tenant owning a receiving number (whatever its status), from memory.

        Every message asks and tenants rarely change: an answer is kept until `storage.tenant_changes`
        announces a change (a suspension or a new number is seen within about a second).
        """
        return self.routing.get((provider, channel_number))

    def close(self) -> None:
        self.senders.close()
        self.cores.close()
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
        cores=TenantCores(settings, pool, conn, vault),
        routing=TenantCache(conn, lambda key: tenant_for_channel_number(pool, *key)),
        rules=TenantRules(pool, conn),
        proofs=ChannelProofs(pool, conn),
        plans=PlanTerms(pool, conn),
        faqs=TenantCache(conn, lambda tenant_id: faq_versions.for_tenant(pool, tenant_id)),
        model_access=model_access_cache(settings, pool, conn, vault),
        phrases=TenantCache(conn, lambda tenant_id: intent_phrases.for_tenant(pool, tenant_id)),
        media_store=open_store(settings),
    )
