"""Each tenant's language model: the client a company's calls use, and the breaker they answer to.

Which account a tenant uses (its own or the deployment's) is
`runtime.model_access`, kept in memory by each process (`rt.model_access`).
This module turns an account into a client: one client per distinct account
for the life of the process (clients keep connections alive), built on first
use. Each account gets its own circuit breaker (`TenantModel.circuit`): a
company whose key is refused, or whose server is down, goes rules-only alone;
the tenants on the deployment's account share the deployment's breaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from config import Settings
from llm.types import Provider
from runtime.model_access import ModelAccess
from storage.tenant_changes import TenantCache

MAX_CLIENTS = 256  # distinct accounts kept per process; the least recently used one beyond is dropped


@dataclass(frozen=True)
class TenantModel:
    """The client a tenant's messages call, and the breaker it answers to."""

    provider: Provider
    circuit: str


class TenantModels:
    """Each tenant's model in one process, from its cache of tenants' model accounts."""

    def __init__(self, settings: Settings, access: TenantCache[int, ModelAccess | None]) -> None:
        self._settings = settings
        self._access = access

    def access(self, tenant_id: int) -> ModelAccess | None:
        """The tenant's model settings, from memory while the tenants have not changed."""
        return self._access.get(tenant_id)

    def model(self, tenant_id: int) -> TenantModel | None:
        """The tenant's model client (None: no model configured for it, rules only)."""
        access = self.access(tenant_id)
        if access is None:
            return None
        return TenantModel(_client(access, self._settings.llm_timeout_s, self._settings.llm_max_retries),
                           access.circuit)


@lru_cache(maxsize=MAX_CLIENTS)
def _client(access: ModelAccess, timeout_s: float, max_retries: int) -> Provider:
    """The one client of an account (the same account always gets the same client)."""
    # imported here: a rules-only process never loads either SDK (about a second of start-up each)
    if access.provider == "gemini":
        from llm.gemini_provider import GeminiProvider

        return GeminiProvider(api_key=access.api_key, model=access.model, base_url=access.base_url,
                              timeout_s=timeout_s, max_retries=max_retries)
    from llm.openai_provider import OpenAIProvider

    return OpenAIProvider(api_key=access.api_key, model=access.model, base_url=access.base_url,
                          timeout_s=timeout_s, max_retries=max_retries)
