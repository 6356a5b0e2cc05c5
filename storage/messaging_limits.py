"""The `messaging_limits` table: WhatsApp's messaging-limit tier per company and business account.

Meta caps how many unique customers a business portfolio may reach outside the 24-hour service window
(templates) in a rolling 24 hours: 250, 2,000, 10,000, 100,000 or unlimited, shared by every number of the
portfolio. We keep the tier per (tenant, account): `account_id` is Meta's WhatsApp Business Account id
(`tenant_channels.waba_id`, the `entry[].id` of Meta's account webhooks); '' stands for the company's numbers
whose WABA is not known (Twilio senders, the local transport, a channel registered without one). A tier comes
from the configuration (`source='config'`) or from Meta's `business_capability_update` webhook (`'webhook'`).

Who has no row gets the deployment's MESSAGING_LIMIT_TIER (see `notifications.limits`). The count of
customers reached is not here: it lives in Redis (`notifications.limits`).

Failure policy: database errors raise; a tier that is not one of Meta's raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection

# Meta's tiers; None is "unlimited".
TIERS: tuple[int | None, ...] = (250, 2000, 10000, 100000, None)
SOURCES = ("config", "webhook")
# The account of a company's numbers without a known WABA id (and the company-wide fallback).
DEFAULT_ACCOUNT = ""

_NAMED = {"TIER_250": 250, "TIER_2K": 2000, "TIER_10K": 10000, "TIER_100K": 100000, "TIER_UNLIMITED": None,
          "UNLIMITED": None, "-1": None}


@dataclass(frozen=True)
class AccountTier:
    tenant_id: int
    account_id: str
    tier: int | None  # None: unlimited
    previous_tier: int | None
    source: str
    updated_at: datetime


def parse_tier(value: object) -> int | None:
    """Meta's ways of writing a tier -> ours: 2000, "2000", "TIER_2K" -> 2000; -1, "TIER_UNLIMITED",
    "unlimited" -> None. Anything else raises ValueError (the tiers are Meta's fixed values)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a messaging-limit tier: {value!r}")
    if isinstance(value, int):
        if value == -1:
            return None
        if value in TIERS:
            return value
        raise ValueError(f"not a messaging-limit tier: {value!r}")
    text = str(value).strip().upper().replace(",", "").replace(".", "")
    if text in _NAMED:
        return _NAMED[text]
    if text.isdigit() and int(text) in TIERS:
        return int(text)
    raise ValueError(f"not a messaging-limit tier: {value!r}")


def set_tier(conn: Connection[Any], *, tenant_id: int, account_id: str, tier: int | None, source: str) -> bool:
    """Record the tier of a company's business account; True when it changed (or is new).

    `tier`: 250 | 2000 | 10000 | 100000 | None (unlimited); `source`: 'config' | 'webhook'. The previous value is
    kept in `previous_tier` when the tier changes. Raises ValueError for anything else.
    """
    if tier not in TIERS:
        raise ValueError(f"not a messaging-limit tier: {tier!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown tier source: {source!r}")
    before = conn.execute(
        "SELECT tier FROM messaging_limits WHERE tenant_id = %s AND account_id = %s",
        (tenant_id, account_id),
    ).fetchone()
    conn.execute(
        """
        INSERT INTO messaging_limits AS m (tenant_id, account_id, tier, source) VALUES (%s, %s, %s, %s)
        ON CONFLICT (tenant_id, account_id) DO UPDATE
            SET previous_tier = CASE WHEN m.tier IS DISTINCT FROM EXCLUDED.tier THEN m.tier ELSE m.previous_tier END,
                tier = EXCLUDED.tier, source = EXCLUDED.source, updated_at = now()
        """,
        (tenant_id, account_id, tier, source),
    )
    return before is None or before["tier"] != tier


def tier_of(conn: Connection[Any], tenant_id: int, account_id: str) -> AccountTier | None:
    """The account's own tier, else the company-wide one (account ''); None when neither is recorded."""
    row = conn.execute(
        """
        SELECT tenant_id, account_id, tier, previous_tier, source, updated_at FROM messaging_limits
        WHERE tenant_id = %s AND account_id IN (%s, '')
        ORDER BY (account_id = '') LIMIT 1
        """,
        (tenant_id, account_id),
    ).fetchone()
    return None if row is None else AccountTier(**row)


def tiers_of_tenant(conn: Connection[Any], tenant_id: int) -> list[AccountTier]:
    """Every tier recorded for a company, the company-wide one ('') first."""
    rows = conn.execute(
        "SELECT tenant_id, account_id, tier, previous_tier, source, updated_at FROM messaging_limits"
        " WHERE tenant_id = %s ORDER BY account_id",
        (tenant_id,),
    ).fetchall()
    return [AccountTier(**row) for row in rows]


def tenants_of_account(conn: Connection[Any], account_id: str) -> list[int]:
    """The companies with a number in this WhatsApp Business Account (whom Meta's account webhook concerns)."""
    rows = conn.execute(
        "SELECT DISTINCT tenant_id FROM tenant_channels WHERE waba_id = %s ORDER BY tenant_id", (account_id,)
    ).fetchall()
    return [int(row["tenant_id"]) for row in rows]


def account_of_channel(conn: Connection[Any], tenant_id: int, provider: str, number: str) -> str:
    """The business account a company's sending number belongs to: its WABA id, else '' (DEFAULT_ACCOUNT)."""
    row = conn.execute(
        "SELECT waba_id FROM tenant_channels WHERE tenant_id = %s AND provider = %s AND number = %s",
        (tenant_id, provider, number),
    ).fetchone()
    return str(row["waba_id"]) if row is not None and row["waba_id"] else DEFAULT_ACCOUNT
