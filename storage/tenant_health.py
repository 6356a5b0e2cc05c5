"""How every tenant is doing, for the operator's landing page: a fixed number of grouped queries per page.

- `activity`: each tenant's last customer message and last reply the provider took (one statement; each
  tenant's newest rows are found by walking `messages_tenant_time` backwards, never by counting);
- `provider_errors`: sends that failed in the last 24 hours, by tenant and error code (`messages.error_code`,
  the provider's code or ours: `runtime.delivery` and the receipts write it; index `messages_failed_time`);
- `unroutable`: events stored `unroutable` (no tenant owns the number, or its tenant is suspended), by
  provider, receiving number and reason, in the last 24 hours and 7 days (index `webhook_events_unroutable`);
- `mark_verified`: a channel proved to work (its first signed event routed to it, or a test message the
  provider took) gets `tenant_channels.verified_at`, once; `ChannelProofs` is the worker's memory of the
  numbers it has already recorded, so a routed message costs no statement for it.

Read-only except `mark_verified`; database errors raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from psycopg import Connection
from psycopg_pool import ConnectionPool

from storage.tenant_changes import TenantCache
from storage.tenants import channel_key

SENT = ("accepted", "sent", "delivered", "read")


@dataclass(frozen=True)
class Activity:
    last_inbound: datetime | None
    last_reply: datetime | None


@dataclass(frozen=True)
class UnroutableGroup:
    provider: str
    number: str  # '' when the event was stored before numbers were kept with it
    reason: str
    last_day: int
    last_week: int
    last_seen: datetime


def activity(conn: Connection[Any]) -> dict[int, Activity]:
    """Each tenant's newest customer message and newest reply that left (any sender: bot, agent, notice)."""
    rows = conn.execute(
        """
        SELECT t.id,
               (SELECT m.created_at FROM messages m WHERE m.tenant_id = t.id AND m.direction = 'in'
                ORDER BY m.created_at DESC LIMIT 1) AS last_inbound,
               (SELECT m.created_at FROM messages m WHERE m.tenant_id = t.id AND m.direction = 'out'
                AND m.status = ANY(%s) ORDER BY m.created_at DESC LIMIT 1) AS last_reply
        FROM tenants t
        """,
        (list(SENT),),
    ).fetchall()
    return {int(r["id"]): Activity(r["last_inbound"], r["last_reply"]) for r in rows}


def provider_errors(conn: Connection[Any], hours: int = 24) -> dict[int, dict[str, int]]:
    """tenant id -> {error code: failed sends} over the last `hours`, most frequent code first."""
    rows = conn.execute(
        """
        SELECT tenant_id, coalesce(error_code, '') AS code, count(*) AS n FROM messages
        WHERE status = 'failed' AND failed_at > now() - make_interval(hours => %s)
        GROUP BY tenant_id, code ORDER BY tenant_id, n DESC, code
        """,
        (hours,),
    ).fetchall()
    found: dict[int, dict[str, int]] = {}
    for row in rows:
        found.setdefault(int(row["tenant_id"]), {})[str(row["code"])] = int(row["n"])
    return found


def unroutable(conn: Connection[Any]) -> list[UnroutableGroup]:
    """Unroutable events of the last 7 days by provider, number and reason, the most recent group first."""
    rows = conn.execute(
        """
        SELECT provider, coalesce(channel_number, '') AS number, coalesce(error, '') AS reason,
               count(*) FILTER (WHERE received_at > now() - interval '24 hours') AS last_day,
               count(*) AS last_week, max(received_at) AS last_seen
        FROM webhook_events
        WHERE status = 'unroutable' AND received_at > now() - interval '7 days'
        GROUP BY provider, number, reason ORDER BY last_seen DESC
        """
    ).fetchall()
    return [UnroutableGroup(**row) for row in rows]


def mark_verified(conn: Connection[Any], provider: str, number: str) -> bool:
    """Record that the channel works (the first proof only); True when this call recorded it."""
    cursor = conn.execute(
        "UPDATE tenant_channels SET verified_at = now() WHERE provider = %s AND number = %s AND verified_at IS NULL",
        (provider, channel_key(provider, number)),
    )
    return cursor.rowcount > 0


class ChannelProofs:
    """Records, once per receiving number and process, that a signed event was routed to it.

    Every routed message asks; the number is written (`mark_verified`) only when this process has not
    done so since tenants last changed (a `TenantCache`: a removed and re-added number is proved again),
    so a message costs no database round trip for it. Database errors raise (the job is retried).
    """

    def __init__(self, pool: ConnectionPool, redis_conn: redis.Redis) -> None:
        self._pool = pool
        self._recorded: TenantCache[tuple[str, str], bool] = TenantCache(redis_conn, self._record)

    def routed(self, provider: str, number: str) -> None:
        self._recorded.get((provider, number))

    def _record(self, key: tuple[str, str]) -> bool:
        with self._pool.connection() as conn:
            return mark_verified(conn, *key)
