"""Each tenant's language model: the one place the worker gets the model client a company's messages use.

A tenant row may name its own provider, model, API key and base URL
(`storage.tenant_llm`, migration 0017); what it leaves NULL is the
deployment's (LLM_PROVIDER, LLM_MODEL, LLM_API_KEY, LLM_BASE_URL). A row
that names its own key, its own base URL or another provider than the
deployment's is an account of its own: the deployment's key and base URL
never go to it (a row with only a base URL calls that server without a key).
A row with provider `none`, or no provider anywhere, has no model: rules only.

Each account gets its own circuit breaker (`TenantModel.circuit`): a company
whose key is refused, or whose server is down, goes rules-only alone; the
tenants on the deployment's account share the deployment's breaker.

`TenantModels` keeps, per process, each tenant's settings (key decrypted once)
in a `storage.tenant_changes.TenantCache`, and one client per distinct
account (clients keep connections alive): a changed model or key is used
within about a second without a restart, and a message costs no database
round trip. `models_of(rt)` is the worker's instance (one per Runtime pool).

Failure policy: database and decryption errors raise (the job is retried).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass, field

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from llm.types import Provider
from runtime.resources import Runtime
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


@dataclass(frozen=True)
class TenantModel:
    """The client a tenant's messages call, and the breaker it answers to."""

    provider: Provider
    circuit: str


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


class TenantModels:
    """The model client of each tenant, cached for the life of the process. Thread-safe."""

    def __init__(self, settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis, vault: Vault) -> None:
        self._settings = settings
        self._pool = pool
        self._vault = vault
        self._lock = threading.Lock()
        self._access: TenantCache[int, ModelAccess | None] = TenantCache(redis_conn, self._read)
        self._clients: dict[ModelAccess, Provider] = {}

    def access(self, tenant_id: int) -> ModelAccess | None:
        """The tenant's model settings, from memory while the tenants have not changed."""
        return self._access.get(tenant_id)

    def model(self, tenant_id: int) -> TenantModel | None:
        """The tenant's model client (None: no model configured for it, rules only)."""
        access = self.access(tenant_id)
        if access is None:
            return None
        with self._lock:
            found = self._clients.get(access)
            if found is None:
                found = self._clients[access] = _client(access, self._settings)
        return TenantModel(found, access.circuit)

    def _read(self, tenant_id: int) -> ModelAccess | None:
        return access_for(self._settings, tenant_llm.read(self._pool, self._vault, tenant_id))


def _client(access: ModelAccess, settings: Settings) -> Provider:
    # imported here: a rules-only process never loads either SDK (about a second of start-up each)
    if access.provider == "gemini":
        from llm.gemini_provider import GeminiProvider

        return GeminiProvider(api_key=access.api_key, model=access.model, base_url=access.base_url,
                              timeout_s=settings.llm_timeout_s, max_retries=settings.llm_max_retries)
    from llm.openai_provider import OpenAIProvider

    return OpenAIProvider(api_key=access.api_key, model=access.model, base_url=access.base_url,
                          timeout_s=settings.llm_timeout_s, max_retries=settings.llm_max_retries)


_of_pool: weakref.WeakKeyDictionary[ConnectionPool, TenantModels] = weakref.WeakKeyDictionary()
_of_pool_lock = threading.Lock()


def models_of(rt: Runtime) -> TenantModels:
    """The tenants' models of a worker or scheduler process (one `TenantModels` per Runtime pool)."""
    with _of_pool_lock:
        found = _of_pool.get(rt.pool)
        if found is None:
            found = _of_pool[rt.pool] = TenantModels(rt.settings, rt.pool, rt.redis, rt.vault)
        return found
