"""Tenants: which company a receiving WhatsApp number belongs to.

A single-company deployment configures one tenant from the environment
(TENANT_SLUG, TENANT_NAME, META_PHONE_NUMBER_ID, TWILIO_WHATSAPP_NUMBER);
`ensure_configured_tenant` creates or updates it at migration time.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from config import Settings


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str
    timezone: str


def ensure_configured_tenant(pool: ConnectionPool, settings: Settings) -> int:
    """Upsert the tenant of this deployment; returns its id."""
    with pool.connection() as conn:
        row = conn.execute(
            """
            INSERT INTO tenants (slug, name, timezone, meta_phone_number_id, twilio_number)
            VALUES (%s, %s, %s, NULLIF(%s, ''), NULLIF(%s, ''))
            ON CONFLICT (slug) DO UPDATE SET
                name = EXCLUDED.name, timezone = EXCLUDED.timezone,
                meta_phone_number_id = EXCLUDED.meta_phone_number_id,
                twilio_number = EXCLUDED.twilio_number
            RETURNING id
            """,
            (
                settings.tenant_slug,
                settings.tenant_name,
                settings.tenant_timezone,
                settings.meta_phone_number_id,
                _bare_number(settings.twilio_whatsapp_number),
            ),
        ).fetchone()
    assert row is not None
    return int(row["id"])  # type: ignore[call-overload]


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
