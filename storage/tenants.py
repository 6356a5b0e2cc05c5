"""Tenants: which company a receiving WhatsApp number belongs to.

A single-company deployment configures one tenant from the environment
(TENANT_SLUG, TENANT_NAME, META_PHONE_NUMBER_ID, TWILIO_WHATSAPP_NUMBER,
INTERNAL_EVENTS_SECRET); `ensure_configured_tenant` creates or updates it at
migration time.

Each tenant has its own secret for the events its logistics core signs
(`POST /internal/events`), stored encrypted with the phone encryption key;
the configured tenant's is INTERNAL_EVENTS_SECRET, another tenant's is set
with `set_events_secret`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from config import Settings
from storage.crypto import Vault


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str
    timezone: str


def ensure_configured_tenant(pool: ConnectionPool, settings: Settings) -> int:
    """Upsert the tenant of this deployment (its events secret too: none refuses its events); returns its id."""
    secret = settings.internal_events_secret
    sealed = Vault(settings.phone_encryption_keys, settings.phone_hash_key).encrypt(secret) if secret else None
    with pool.connection() as conn:
        row = conn.execute(
            """
            INSERT INTO tenants (slug, name, timezone, meta_phone_number_id, twilio_number, events_secret_encrypted)
            VALUES (%s, %s, %s, NULLIF(%s, ''), NULLIF(%s, ''), %s)
            ON CONFLICT (slug) DO UPDATE SET
                name = EXCLUDED.name, timezone = EXCLUDED.timezone,
                meta_phone_number_id = EXCLUDED.meta_phone_number_id,
                twilio_number = EXCLUDED.twilio_number,
                events_secret_encrypted = EXCLUDED.events_secret_encrypted
            RETURNING id
            """,
            (
                settings.tenant_slug,
                settings.tenant_name,
                settings.tenant_timezone,
                settings.meta_phone_number_id,
                _bare_number(settings.twilio_whatsapp_number),
                sealed,
            ),
        ).fetchone()
    assert row is not None
    return int(row["id"])  # type: ignore[call-overload]


@dataclass(frozen=True)
class EventsKey:
    """Who may sign core events as a tenant: its id, slug and secret (None: its events are refused)."""

    tenant_id: int
    slug: str
    secret: str | None = field(repr=False)


def events_key(pool: ConnectionPool, vault: Vault, slug: str) -> EventsKey | None:
    """The events key of the tenant `slug`, None for an unknown tenant. Raises on database and decryption errors."""
    with pool.connection() as conn:
        row = conn.execute("SELECT id, slug, events_secret_encrypted FROM tenants WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        return None
    sealed = row["events_secret_encrypted"]  # type: ignore[call-overload]
    return EventsKey(tenant_id=row["id"], slug=row["slug"],  # type: ignore[call-overload]
                     secret=vault.decrypt(sealed) if sealed else None)


def set_events_secret(pool: ConnectionPool, vault: Vault, slug: str, secret: str | None) -> bool:
    """Give the tenant `slug` the secret its core signs events with (None: refuse them); False if no such tenant."""
    with pool.connection() as conn:
        updated = conn.execute(
            "UPDATE tenants SET events_secret_encrypted = %s WHERE slug = %s",
            (vault.encrypt(secret) if secret else None, slug),
        ).rowcount
    return bool(updated)


def tenant_for_channel_number(pool: ConnectionPool, provider: str, channel_number: str) -> Tenant | None:
    """The tenant that owns a receiving number (Meta phone_number_id or Twilio `To`), if any."""
    column = "meta_phone_number_id" if provider == "meta" else "twilio_number"
    key = channel_number if provider == "meta" else _bare_number(channel_number)
    with pool.connection() as conn:
        row = conn.execute(
            f"SELECT id, slug, name, timezone FROM tenants WHERE {column} = %s",  # noqa: S608 - column from a fixed pair
            (key,),
        ).fetchone()
    if row is None:
        return None
    return Tenant(id=row["id"], slug=row["slug"], name=row["name"], timezone=row["timezone"])  # type: ignore[call-overload]


def _bare_number(number: str) -> str:
    """'whatsapp:+15558675310' and '+15558675310' both become '+15558675310'."""
    return number.removeprefix("whatsapp:").strip()
