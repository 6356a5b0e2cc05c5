"""Which language model account each tenant's calls use: its own, or the deployment's.

A tenant row may name its own provider, model, API key and base URL
(`storage.tenant_llm`, migration 0017); what it leaves NULL is the
deployment's (LLM_PROVIDER, LLM_MODEL, LLM_API_KEY, LLM_BASE_URL). A row
that names its own key, its own base URL or another provider than the
deployment's is an account of its own: the deployment's key and base URL
never go to it (a row with only a base URL calls that server without a key).
A row with provider `none`, or no provider anywhere, has no model: rules only.

Each process's `Runtime` keeps every tenant's `ModelAccess` (key decrypted
once) in a `storage.tenant_changes.TenantCache` (`rt.model_access`): a changed
model or key is used within about a second without a restart, and a message
costs no database round trip. `llm.tenant_models` turns an access into a client.

Failure policy: database and decryption errors raise (the job is retried).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from storage import tenant_llm
from storage.crypto import Vault
from storage.tenant_changes import TenantCache


@dataclass(frozen=True)
class ModelAccess:
    """Which API, model and credentials one tenant's calls use."""

    provider: str  # openai | gemini
    model: str  # "" : the provider's default
    api_key: str = field(repr=False)
    base_url: str
    own: bool  # an account of the tenant's own (not the deployment's)

    @property
    def circuit(self) -> str:
        """The circuit breaker's name: the provider's for the deployment's account, else one per account."""
        if not self.own:
            return self.provider
        digest = hashlib.sha256(f"{self.base_url}\n{self.api_key}".encode()).hexdigest()[:12]
        return f"{self.provider}:{digest}"


def access_for(settings: Settings, row: tenant_llm.TenantLlm) -> ModelAccess | None:
    """What a tenant's row and the deployment's settings give together (None: no model, rules only)."""
    deployment = settings.llm_provider if settings.llm_provider in ("openai", "gemini") else None
    name = row.provider or deployment
    if name is None or name == "none":
        return None
    own = bool(row.api_key or row.base_url or name != deployment)
    if own:
        return ModelAccess(name, row.model or "", row.api_key or "", row.base_url or "", True)
    return ModelAccess(name, row.model or settings.llm_model, settings.llm_api_key, settings.llm_base_url, False)


def model_access_cache(settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis,
                       vault: Vault) -> TenantCache[int, ModelAccess | None]:
    """Each tenant's model access by tenant id, read once and kept until tenants change."""
    return TenantCache(redis_conn, lambda tenant_id: access_for(settings, tenant_llm.read(pool, vault, tenant_id)))
