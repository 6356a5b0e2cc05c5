"""One tenant as the operator's edit form shows it: its editable values, and whether each secret is set.

Secrets never leave here in clear except `core_key`, which the operator's
"test connection" uses when the key field was left blank (the stored key is
tried, not shown). Read-only; database and decryption errors raise.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from storage.crypto import Vault
from storage.tenants import channel_key


@dataclass(frozen=True)
class Profile:
    id: int
    slug: str
    name: str
    timezone: str
    status: str
    bot_name: str | None
    greeting: str | None
    core_api_url: str | None
    has_core_api_key: bool
    has_events_secret: bool
    plan_code: str


def profile(pool: ConnectionPool, slug: str) -> Profile | None:
    """The tenant `slug`'s editable values; None for an unknown tenant."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT id, slug, name, timezone, status, bot_name, greeting, core_api_url, plan_code,"
            " core_api_key_encrypted IS NOT NULL AS has_core_api_key,"
            " events_secret_encrypted IS NOT NULL AS has_events_secret FROM tenants WHERE slug = %s",
            (slug,),
        ).fetchone()
    return Profile(**row) if row is not None else None  # type: ignore[arg-type]


def core_key(pool: ConnectionPool, vault: Vault, slug: str) -> str:
    """The tenant's stored core API key in clear ('' when none is stored or no such tenant)."""
    with pool.connection() as conn:
        row = conn.execute("SELECT core_api_key_encrypted FROM tenants WHERE slug = %s", (slug,)).fetchone()
    sealed = row["core_api_key_encrypted"] if row is not None else None  # type: ignore[call-overload]
    return vault.decrypt(sealed) if sealed else ""


def slug_taken(pool: ConnectionPool, slug: str) -> bool:
    with pool.connection() as conn:
        return conn.execute("SELECT 1 FROM tenants WHERE slug = %s", (slug,)).fetchone() is not None


def number_owner(pool: ConnectionPool, provider: str, number: str) -> str | None:
    """The slug of the tenant that already receives on this number, else None."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT t.slug FROM tenant_channels c JOIN tenants t ON t.id = c.tenant_id"
            " WHERE c.provider = %s AND c.number = %s",
            (provider, channel_key(provider, number)),
        ).fetchone()
    return str(row["slug"]) if row is not None else None  # type: ignore[call-overload]
