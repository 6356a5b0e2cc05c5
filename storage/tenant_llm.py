"""A tenant's own language model settings: provider, model, API key, base URL and monthly budget (migration 0017).

Every value is optional: NULL means the deployment's setting (LLM_PROVIDER,
LLM_MODEL, LLM_API_KEY, LLM_BASE_URL) and, for the budget, the plan's
`llm_usd` limit. `llm.tenant_models` turns these into the tenant's model
client; `storage.plans.plan_of` puts the budget in place of the plan's
limit. The API key is stored encrypted with the Vault (rotated by
`storage.secret_rotation`); `describe` says only whether one is set.

Failure policy: a refused change raises `TenantError` (nothing written);
database and decryption errors raise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import redis
from psycopg_pool import ConnectionPool

from storage import tenant_changes
from storage.crypto import Vault
from storage.tenants import TenantError

PROVIDERS = ("openai", "gemini", "none")  # none: this tenant never calls a model
FIELDS = ("provider", "model", "api_key", "base_url", "monthly_usd")
_URL = re.compile(r"^https?://[^\s/]+")


@dataclass(frozen=True)
class TenantLlm:
    """What the tenant's row says; None everywhere is "the deployment's settings and the plan's budget"."""

    provider: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    monthly_usd: Decimal | None = None


def read(pool: ConnectionPool, vault: Vault, tenant_id: int) -> TenantLlm:
    """The tenant's LLM settings with the key in clear (an unknown tenant reads as all-default)."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT llm_provider, llm_model, llm_api_key_encrypted, llm_base_url, llm_monthly_usd"
            " FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    if row is None:
        return TenantLlm()
    values: dict[str, object] = dict(row)
    sealed = values["llm_api_key_encrypted"]
    return TenantLlm(provider=values["llm_provider"], model=values["llm_model"],  # type: ignore[arg-type]
                     api_key=vault.decrypt(str(sealed)) if sealed else None,
                     base_url=values["llm_base_url"], monthly_usd=values["llm_monthly_usd"])  # type: ignore[arg-type]


def describe(pool: ConnectionPool, slug: str) -> dict[str, str | None]:
    """The tenant's settings for people: every value but the key, which is only "set" or None. TenantError."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT llm_provider, llm_model, llm_api_key_encrypted IS NOT NULL AS has_key, llm_base_url,"
            " llm_monthly_usd FROM tenants WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        raise TenantError(f"no tenant {slug!r}")
    values: dict[str, object] = dict(row)
    budget = values["llm_monthly_usd"]
    return {"provider": _text(values["llm_provider"]), "model": _text(values["llm_model"]),
            "api_key": "set" if values["has_key"] else None, "base_url": _text(values["llm_base_url"]),
            "monthly_usd": None if budget is None else f"{budget:.2f}"}


def update(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis | None, slug: str,
           changes: Mapping[str, str | None]) -> None:
    """Change some of `FIELDS` for the tenant `slug`; None or "" puts one back to the deployment's / plan's.

    `monthly_usd` is dollars ("25", "12.50"); the key is stored encrypted. Announces the change
    (`storage.tenant_changes`): the workers use it within about a second. TenantError for an unknown
    tenant or field, or a bad value.
    """
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise TenantError(f"unknown LLM setting(s): {', '.join(sorted(unknown))}")
    if not changes:
        raise TenantError("nothing to change")
    columns = {"provider": "llm_provider", "model": "llm_model", "api_key": "llm_api_key_encrypted",
               "base_url": "llm_base_url", "monthly_usd": "llm_monthly_usd"}
    values: list[object] = []
    for name, raw in changes.items():
        values.append(_value(vault, name, (raw or "").strip()))
    assignments = ", ".join(f"{columns[name]} = %s" for name in changes)
    with pool.connection() as conn:
        updated = conn.execute(
            f"UPDATE tenants SET {assignments}, updated_at = now() WHERE slug = %s",  # noqa: S608 - fixed names
            (*values, slug)).rowcount
    if not updated:
        raise TenantError(f"no tenant {slug!r}")
    tenant_changes.announce(redis_conn)


def _value(vault: Vault, name: str, text: str) -> object:
    if not text:
        return None
    if name == "provider" and text not in PROVIDERS:
        raise TenantError(f"unknown LLM provider {text!r} (one of {', '.join(PROVIDERS)})")
    if name == "base_url" and not _URL.match(text):
        raise TenantError("the LLM base URL must be an http(s) URL")
    if name == "api_key":
        return vault.encrypt(text)
    if name == "monthly_usd":
        try:
            amount = Decimal(text.removeprefix("$"))
        except InvalidOperation:
            raise TenantError(f"the monthly LLM budget is an amount in dollars, not {text!r}") from None
        if not amount.is_finite() or amount < 0 or amount >= Decimal("1e8"):
            raise TenantError("the monthly LLM budget must be between 0 and 99999999.99 dollars")
        return amount
    return text


def _text(value: object) -> str | None:
    return None if value is None else str(value)
