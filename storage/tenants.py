"""Tenants: the companies one deployment serves, and which one a receiving number belongs to.

A tenant is a row of `tenants` (name, slug, time zone, status, the bot's name
and greeting, its logistics core); its receiving WhatsApp numbers are rows of
`tenant_channels` (provider + number: Meta's phone_number_id or a Twilio
sender). Operators manage them with `storage.tenant_admin` (`encargo-admin
tenant-*`); every change bumps `storage.tenant_changes`, which the processes'
tenant caches watch.

A single-company deployment still configures its tenant from the environment
(TENANT_SLUG, TENANT_NAME, TENANT_TIMEZONE, META_PHONE_NUMBER_ID with
META_ACCESS_TOKEN, TWILIO_WHATSAPP_NUMBER with TWILIO_ACCOUNT_SID and
TWILIO_AUTH_TOKEN, CORE_API_URL, CORE_API_KEY, INTERNAL_EVENTS_SECRET);
`ensure_configured_tenant` creates or updates it at migration time.

Each tenant has its own secret for the events its logistics core signs
(`POST /internal/events`). Every secret is stored encrypted with the phone
encryption key (`storage.crypto.Vault`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from storage import tenant_changes
from storage.crypto import Vault

ACTIVE = "active"
SUSPENDED = "suspended"


class TenantError(ValueError):
    """A tenant change that is refused: unknown tenant, a slug or number already taken, a bad value."""


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str
    timezone: str
    status: str = ACTIVE
    bot_name: str | None = None  # None: the texts' default name
    greeting: str | None = None  # None: the texts' default greeting

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


TENANT_COLUMNS = "t.id, t.slug, t.name, t.timezone, t.status, t.bot_name, t.greeting"


def tenant_from_row(row: dict[str, object]) -> Tenant:
    return Tenant(**{name: row[name] for name in ("id", "slug", "name", "timezone", "status", "bot_name",
                                                   "greeting")})  # type: ignore[arg-type]


def ensure_configured_tenant(pool: ConnectionPool, settings: Settings, redis_conn: redis.Redis | None = None) -> int:
    """Create or update the tenant of the environment and its channels; returns its id.

    Its status is left as it is (a suspended tenant stays suspended across restarts). A configured
    number that already belongs to another tenant raises TenantError; database errors raise.
    """
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)

    def seal(value: str) -> str | None:
        return vault.encrypt(value) if value else None

    channels = [
        ("meta", settings.meta_phone_number_id, settings.meta_access_token, None),
        ("twilio", bare_number(settings.twilio_whatsapp_number), settings.twilio_auth_token,
         settings.twilio_account_sid or None),
    ]
    with pool.connection() as conn, conn.transaction():
        row = conn.execute(
            """
            INSERT INTO tenants (slug, name, timezone, events_secret_encrypted, core_api_url, core_api_key_encrypted)
            VALUES (%s, %s, %s, %s, NULLIF(%s, ''), %s)
            ON CONFLICT (slug) DO UPDATE SET
                name = EXCLUDED.name, timezone = EXCLUDED.timezone,
                events_secret_encrypted = EXCLUDED.events_secret_encrypted,
                core_api_url = EXCLUDED.core_api_url, core_api_key_encrypted = EXCLUDED.core_api_key_encrypted,
                updated_at = now()
            RETURNING id
            """,
            (settings.tenant_slug, settings.tenant_name, settings.tenant_timezone,
             seal(settings.internal_events_secret), settings.core_api_url, seal(settings.core_api_key)),
        ).fetchone()
        assert row is not None
        tenant_id = int(row["id"])  # type: ignore[call-overload]
        for provider, number, secret, account_sid in channels:
            if not number:
                continue
            kept = conn.execute(
                """
                INSERT INTO tenant_channels (tenant_id, provider, number, secret_encrypted, account_sid)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (provider, number) DO UPDATE SET
                    secret_encrypted = EXCLUDED.secret_encrypted, account_sid = EXCLUDED.account_sid
                WHERE tenant_channels.tenant_id = EXCLUDED.tenant_id
                RETURNING id
                """,
                (tenant_id, provider, number, seal(secret), account_sid),
            ).fetchone()
            if kept is None:
                raise TenantError(f"the configured {provider} number {number} belongs to another tenant")
    tenant_changes.announce(redis_conn)
    return tenant_id


def tenant_for_channel_number(pool: ConnectionPool, provider: str, channel_number: str) -> Tenant | None:
    """The tenant (whatever its status) that owns a receiving number (Meta phone_number_id or Twilio `To`)."""
    with pool.connection() as conn:
        row = conn.execute(
            f"SELECT {TENANT_COLUMNS} FROM tenant_channels c JOIN tenants t ON t.id = c.tenant_id"  # noqa: S608
            " WHERE c.provider = %s AND c.number = %s",  # (the column list is a constant)
            (provider, channel_key(provider, channel_number)),
        ).fetchone()
    return tenant_from_row(row) if row is not None else None  # type: ignore[arg-type]


@dataclass(frozen=True)
class EventsKey:
    """Who may sign core events as a tenant: its id, slug, status and secret (None: its events are refused)."""

    tenant_id: int
    slug: str
    secret: str | None = field(repr=False)
    status: str = ACTIVE


def events_key(pool: ConnectionPool, vault: Vault, slug: str) -> EventsKey | None:
    """The events key of the tenant `slug`, None for an unknown tenant. Raises on database and decryption errors."""
    with pool.connection() as conn:
        row = conn.execute("SELECT id, slug, status, events_secret_encrypted FROM tenants WHERE slug = %s",
                           (slug,)).fetchone()
    if row is None:
        return None
    sealed = row["events_secret_encrypted"]  # type: ignore[call-overload]
    return EventsKey(tenant_id=row["id"], slug=row["slug"], status=row["status"],  # type: ignore[call-overload]
                     secret=vault.decrypt(sealed) if sealed else None)


def set_events_secret(pool: ConnectionPool, vault: Vault, slug: str, secret: str | None) -> bool:
    """Give the tenant `slug` the secret its core signs events with (None: refuse them); False if no such tenant."""
    with pool.connection() as conn:
        updated = conn.execute(
            "UPDATE tenants SET events_secret_encrypted = %s, updated_at = now() WHERE slug = %s",
            (vault.encrypt(secret) if secret else None, slug),
        ).rowcount
    return bool(updated)


def channel_key(provider: str, number: str) -> str:
    """How a receiving number is stored: Meta's phone_number_id as is, a Twilio sender bare E.164."""
    return bare_number(number) if provider == "twilio" else number.strip()


def bare_number(number: str) -> str:
    """'whatsapp:+15558675310' and '+15558675310' both become '+15558675310'."""
    return number.removeprefix("whatsapp:").strip()
