"""The `core_events` table: events from the logistics core, stored before we answer 202.

(tenant_id, event_id) is unique, so a POST the core retries finds its row and
is acknowledged again without a second notification. `state` moves
received -> queued -> processed (or failed after MAX_ATTEMPTS); the
scheduler's recovery queues rows left `received` (Redis was down) or `queued`
without a job (Redis lost its queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from notifications.events import CoreEvent

MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class StoredEvent:
    id: int
    tenant_id: int
    event_id: str
    type: str
    tracking_code: str
    status: str | None
    payload: dict[str, Any]
    occurred_at: datetime
    state: str
    attempts: int


@dataclass(frozen=True)
class TenantInfo:
    slug: str
    timezone: str
    status: str = "active"  # storage.tenants.ACTIVE or SUSPENDED


def tenant_info(conn: Connection[Any], tenant_id: int) -> TenantInfo:
    row = conn.execute("SELECT slug, timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    if row is None:
        raise LookupError(f"tenant {tenant_id} does not exist")
    return TenantInfo(slug=row["slug"], timezone=row["timezone"])


def tenant_id_for(pool: ConnectionPool, slug: str) -> int | None:
    with pool.connection() as conn:
        row = conn.execute("SELECT id FROM tenants WHERE slug = %s", (slug,)).fetchone()
    return None if row is None else int(row["id"])  # type: ignore[call-overload]


def record(pool: ConnectionPool, tenant_id: int, event: CoreEvent) -> tuple[int, bool]:
    """Store the event; returns (row id, True) when new, (existing row id, False) for a repeat."""
    with pool.connection() as conn:
        row = conn.execute(
            """
            INSERT INTO core_events (tenant_id, event_id, type, tracking_code, status, payload, occurred_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (tenant_id, event_id) DO NOTHING
            RETURNING id
            """,
            (tenant_id, event.event_id, event.type, event.tracking_code, event.status, Jsonb(event.raw),
             event.occurred_at),
        ).fetchone()
        if row is not None:
            return int(row["id"]), True  # type: ignore[call-overload]
        existing = conn.execute(
            "SELECT id FROM core_events WHERE tenant_id = %s AND event_id = %s", (tenant_id, event.event_id)
        ).fetchone()
    assert existing is not None
    return int(existing["id"]), False  # type: ignore[call-overload]


def mark_queued(pool: ConnectionPool, pks: list[int]) -> None:
    if not pks:
        return
    with pool.connection() as conn:
        conn.execute(
            "UPDATE core_events SET state = 'queued', queued_at = now() WHERE id = ANY(%s) AND state = 'received'",
            (pks,),
        )


def begin_attempt(conn: Connection[Any], pk: int) -> tuple[StoredEvent, TenantInfo] | None:
    """Count an attempt at an unfinished event and return it with its tenant (finished: returned as is)."""
    row = conn.execute(
        """
        UPDATE core_events SET attempts = attempts + CASE WHEN state IN ('processed', 'failed') THEN 0 ELSE 1 END
        WHERE id = %s
        RETURNING id, tenant_id, event_id, type, tracking_code, status, payload, occurred_at, state, attempts,
                  (SELECT t.slug FROM tenants t WHERE t.id = tenant_id) AS slug,
                  (SELECT t.timezone FROM tenants t WHERE t.id = tenant_id) AS timezone,
                  (SELECT t.status FROM tenants t WHERE t.id = tenant_id) AS tenant_status
        """,
        (pk,),
    ).fetchone()
    if row is None:
        return None
    tenant = TenantInfo(slug=row.pop("slug"), timezone=row.pop("timezone"), status=row.pop("tenant_status"))
    return StoredEvent(**row), tenant


def finish(conn: Connection[Any], pk: int, state: str, error: str | None = None) -> None:
    conn.execute(
        "UPDATE core_events SET state = %s, error = %s, processed_at = now() WHERE id = %s",
        (state, error[:500] if error else None, pk),
    )


def pending(pool: ConnectionPool, *, older_than_s: float, limit: int = 500) -> list[tuple[int, str, int]]:
    """(id, state, attempts) of events not processed yet and older than `older_than_s`, oldest first."""
    with pool.connection() as conn:
        rows = conn.execute(
            """
            SELECT id, state, attempts FROM core_events
            WHERE state IN ('received', 'queued')
              AND COALESCE(queued_at, received_at) < now() - make_interval(secs => %s)
            ORDER BY id LIMIT %s
            """,
            (older_than_s, limit),
        ).fetchall()
    return [(int(r["id"]), str(r["state"]), int(r["attempts"])) for r in rows]  # type: ignore[call-overload]
