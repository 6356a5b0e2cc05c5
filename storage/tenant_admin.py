"""The operator's changes to tenants: create, update, suspend and resume, add and remove channels, list.

Every change commits, then bumps `storage.tenant_changes` so that the
processes' tenant caches drop what they hold within about a second: a new
tenant answers its number without a restart, a suspended one stops at once.

Secrets (the core's API key, the events secret, a channel's access or auth
token) are encrypted with the Vault before they are stored; listings say only
whether a secret is set, and `channel_secret` gives the one a caller needs.

Failure policy: a refused change raises `TenantError` (nothing is written);
database errors raise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import redis
from psycopg_pool import ConnectionPool

from storage import faq_versions, tenant_changes
from storage.crypto import Vault
from storage.tenants import (
    ACTIVE,
    SUSPENDED,
    TENANT_COLUMNS,
    Tenant,
    TenantError,
    channel_key,
    tenant_from_row,
)

PROVIDERS = ("meta", "twilio", "local")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # at most 64: it is the X-Encargo-Key-Id of its core events
TEXT_FIELDS = ("name", "timezone", "bot_name", "greeting", "core_api_url")
SECRET_FIELDS = {"core_api_key": "core_api_key_encrypted", "events_secret": "events_secret_encrypted"}


@dataclass(frozen=True)
class Channel:
    """A receiving number as listed: never its secret, only whether one is set."""

    provider: str
    number: str
    waba_id: str | None
    account_sid: str | None
    messaging_service_sid: str | None
    has_secret: bool
    verified_at: datetime | None


@dataclass(frozen=True)
class TenantListing:
    tenant: Tenant
    core_api_url: str | None
    has_core_api_key: bool
    has_events_secret: bool
    channels: list[Channel]


def create_tenant(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis | None, *, slug: str, name: str,
                  timezone: str = "America/El_Salvador", **fields: str | None) -> Tenant:
    """A new active tenant; `fields` as for `update_tenant`. TenantError for a bad or taken slug or a bad value."""
    if not SLUG.match(slug):
        raise TenantError("the slug is 1-64 lowercase letters, digits and hyphens, starting with a letter or digit")
    with pool.connection() as conn, conn.transaction():
        try:
            row = conn.execute("INSERT INTO tenants (slug, name, timezone) VALUES (%s, %s, %s) RETURNING id",
                               (slug, "-", "UTC")).fetchone()
        except psycopg.errors.UniqueViolation:
            raise TenantError(f"a tenant {slug!r} already exists") from None
        assert row is not None
        tenant = _update(conn, vault, slug, {"name": name, "timezone": timezone, **fields})
    tenant_changes.announce(redis_conn)
    faq_versions.seed_tenant(pool, redis_conn, tenant.id, slug)  # its faq_data/<slug>.yaml, when there is one
    return tenant


def update_tenant(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis | None, slug: str,
                  changes: Mapping[str, str | None]) -> Tenant:
    """Change some of: name, timezone, bot_name, greeting, core_api_url (text; None or "" clears an optional one),
    core_api_key, events_secret (stored encrypted; None or "" removes it). TenantError for an unknown tenant,
    an unknown field or a bad value."""
    with pool.connection() as conn, conn.transaction():
        tenant = _update(conn, vault, slug, changes)
    tenant_changes.announce(redis_conn)
    return tenant


def set_status(pool: ConnectionPool, redis_conn: redis.Redis | None, slug: str, status: str) -> Tenant:
    """Suspend (SUSPENDED) or resume (ACTIVE) a tenant. TenantError for an unknown tenant or status."""
    if status not in (ACTIVE, SUSPENDED):
        raise TenantError(f"unknown status {status!r}")
    with pool.connection() as conn:
        row = conn.execute(
            f"UPDATE tenants t SET status = %s, updated_at = now() WHERE slug = %s RETURNING {TENANT_COLUMNS}",  # noqa: S608
            (status, slug),
        ).fetchone()
    if row is None:
        raise TenantError(f"no tenant {slug!r}")
    tenant_changes.announce(redis_conn)
    return tenant_from_row(row)  # type: ignore[arg-type]


def add_channel(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis | None, slug: str, *, provider: str,
                number: str, secret: str | None = None, waba_id: str | None = None, account_sid: str | None = None,
                messaging_service_sid: str | None = None) -> Channel:
    """Give the tenant a receiving number. TenantError for an unknown tenant or provider, or a number in use."""
    if provider not in PROVIDERS:
        raise TenantError(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
    key = channel_key(provider, number)
    if not key:
        raise TenantError("the number is empty")
    with pool.connection() as conn, conn.transaction():
        owner = conn.execute("SELECT id FROM tenants WHERE slug = %s", (slug,)).fetchone()
        if owner is None:
            raise TenantError(f"no tenant {slug!r}")
        try:
            conn.execute(
                """
                INSERT INTO tenant_channels (tenant_id, provider, number, waba_id, account_sid,
                                             messaging_service_sid, secret_encrypted)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                """,
                (owner["id"], provider, key, waba_id or None, account_sid or None,  # type: ignore[call-overload]
                 messaging_service_sid or None, vault.encrypt(secret) if secret else None),
            )
        except psycopg.errors.UniqueViolation:
            raise TenantError(f"the {provider} number {key} is already a channel of a tenant") from None
    tenant_changes.announce(redis_conn)
    return Channel(provider=provider, number=key, waba_id=waba_id or None, account_sid=account_sid or None,
                   messaging_service_sid=messaging_service_sid or None, has_secret=bool(secret), verified_at=None)


def remove_channel(pool: ConnectionPool, redis_conn: redis.Redis | None, slug: str, *, provider: str,
                   number: str) -> None:
    """Take a receiving number from the tenant (its events become unroutable). TenantError if it has no such one."""
    with pool.connection() as conn:
        removed = conn.execute(
            "DELETE FROM tenant_channels WHERE provider = %s AND number = %s"
            " AND tenant_id = (SELECT id FROM tenants WHERE slug = %s)",
            (provider, channel_key(provider, number), slug),
        ).rowcount
    if not removed:
        raise TenantError(f"tenant {slug!r} has no {provider} number {number}")
    tenant_changes.announce(redis_conn)


def channel_secret(pool: ConnectionPool, vault: Vault, provider: str, number: str) -> str | None:
    """The access/auth token of one channel in clear, for the code that calls its provider (None: none set)."""
    with pool.connection() as conn:
        row = conn.execute("SELECT secret_encrypted FROM tenant_channels WHERE provider = %s AND number = %s",
                           (provider, channel_key(provider, number))).fetchone()
    sealed = row["secret_encrypted"] if row is not None else None  # type: ignore[call-overload]
    return vault.decrypt(sealed) if sealed else None


def list_tenants(pool: ConnectionPool) -> list[TenantListing]:
    """Every tenant with its channels, by slug. No secret leaves the database, only whether it is set."""
    with pool.connection() as conn:
        tenants = conn.execute(
            f"SELECT {TENANT_COLUMNS}, t.core_api_url, t.core_api_key_encrypted IS NOT NULL AS has_core_api_key,"  # noqa: S608
            " t.events_secret_encrypted IS NOT NULL AS has_events_secret FROM tenants t ORDER BY t.slug"
        ).fetchall()
        channels = conn.execute(
            "SELECT tenant_id, provider, number, waba_id, account_sid, messaging_service_sid, verified_at,"
            " secret_encrypted IS NOT NULL AS has_secret FROM tenant_channels ORDER BY provider, number"
        ).fetchall()
    by_tenant: dict[int, list[Channel]] = {}
    for row in channels:
        values: dict[str, Any] = dict(row)
        by_tenant.setdefault(values.pop("tenant_id"), []).append(Channel(**values))
    return [TenantListing(tenant=tenant_from_row(row), core_api_url=row["core_api_url"],  # type: ignore[arg-type,call-overload]
                          has_core_api_key=row["has_core_api_key"],  # type: ignore[call-overload]
                          has_events_secret=row["has_events_secret"],  # type: ignore[call-overload]
                          channels=by_tenant.get(row["id"], []))  # type: ignore[call-overload]
            for row in tenants]


def _update(conn: psycopg.Connection[Any], vault: Vault, slug: str, changes: Mapping[str, str | None]) -> Tenant:
    unknown = set(changes) - set(TEXT_FIELDS) - set(SECRET_FIELDS)
    if unknown:
        raise TenantError(f"unknown field(s): {', '.join(sorted(unknown))}")
    assignments: list[str] = []
    values: list[object] = []
    for name, value in changes.items():
        if name in ("name", "timezone") and not (value or "").strip():
            raise TenantError(f"{name} cannot be empty")
        if name == "timezone":
            _check_time_zone(str(value))
        if name == "core_api_url" and value and not re.match(r"^https?://[^\s/]+", value):
            raise TenantError("core_api_url must be an http(s) URL")
        if name in SECRET_FIELDS:
            assignments.append(f"{SECRET_FIELDS[name]} = %s")
            values.append(vault.encrypt(value) if value else None)
        else:
            assignments.append(f"{name} = %s")
            values.append(value.strip() if value and value.strip() else None)
    row = conn.execute(
        f"UPDATE tenants t SET {', '.join([*assignments, 'updated_at = now()'])} WHERE slug = %s"  # noqa: S608
        f" RETURNING {TENANT_COLUMNS}",  # (column names from the fixed tables above)
        (*values, slug),
    ).fetchone()
    if row is None:
        raise TenantError(f"no tenant {slug!r}")
    return tenant_from_row(row)


def _check_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise TenantError(f"{value!r} is not a known time zone") from None
