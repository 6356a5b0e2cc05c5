"""The `webhook_events` table: every provider event, stored before the webhook answers 200.

(provider, event_id) is unique, so a re-delivered event is recognised by the
database itself (`INSERT ... ON CONFLICT DO NOTHING`), never by a read-then-write.
The payload is stored encrypted: it carries phone numbers.

The payload is the event's envelope, `{"kind", "event"}` as JSON, encrypted
with the vault (`seal`/`unseal`): what the webhook stores is what a worker reads.

Status: `received` (stored; the event waits in its inbox from here on),
`queued` (an event stored while Redis was down and queued by the recovery
loop, or queued on its own), then `processed`, `unroutable` or
`failed`. Whether an unfinished event is still held in Redis is Redis's to
say (worker.recovery asks it), not this column's. `quarantined`: a part of a
delivery that cannot be processed, kept with the reason in `error` (issue 12);
it is never queued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from channels.events import InboundEvent, event_from_dict, event_kind
from storage.crypto import Vault

# After this many processing attempts an event is marked failed instead of being re-enqueued.
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class StoredEvent:
    id: int
    provider: str
    event_id: str
    kind: str
    payload_encrypted: str
    correlation_id: str
    status: str
    attempts: int
    tenant_id: int | None


def record(
    pool: ConnectionPool, *, provider: str, event_id: str, kind: str, payload_encrypted: str, correlation_id: str
) -> int | None:
    """Store an event; returns its id, or None when (provider, event_id) was stored before. Raises on DB errors."""
    with pool.connection() as conn:
        row = conn.execute(
            """
            INSERT INTO webhook_events (provider, event_id, kind, payload_encrypted, correlation_id)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (provider, event_id) DO NOTHING
            RETURNING id
            """,
            (provider, event_id, kind, payload_encrypted, correlation_id),
        ).fetchone()
    return None if row is None else int(_get(row, "id"))


def quarantine(
    pool: ConnectionPool, *, provider: str, event_id: str, kind: str, payload_encrypted: str, correlation_id: str,
    reason: str,
) -> int | None:
    """Keep a part that cannot be processed, with the reason; its id, or None when kept before. Raises on DB errors."""
    with pool.connection() as conn:
        row = conn.execute(
            """
            INSERT INTO webhook_events (provider, event_id, kind, payload_encrypted, correlation_id, status, error,
                                        processed_at)
            VALUES (%s, %s, %s, %s, %s, 'quarantined', %s, now())
            ON CONFLICT (provider, event_id) DO NOTHING
            RETURNING id
            """,
            (provider, event_id, kind, payload_encrypted, correlation_id, reason),
        ).fetchone()
    return None if row is None else int(_get(row, "id"))


def mark_queued(pool: ConnectionPool, event_ids: list[int]) -> None:
    if not event_ids:
        return
    with pool.connection() as conn:
        # Not prepared: a plan cached before the table had statistics scans every pending row.
        conn.execute(
            "UPDATE webhook_events SET status = 'queued' WHERE id = ANY(%s) AND status = 'received'", (event_ids,),
            prepare=False,
        )


def load(conn: Connection[Any], event_pk: int) -> StoredEvent | None:
    row = conn.execute(
        "SELECT id, provider, event_id, kind, payload_encrypted, correlation_id, status, attempts, tenant_id"
        " FROM webhook_events WHERE id = %s",
        (event_pk,),
    ).fetchone()
    return None if row is None else StoredEvent(**row)


FINISHED = ("processed", "unroutable", "failed", "quarantined")


def begin_attempt(conn: Connection[Any], event_pk: int) -> StoredEvent | None:
    """Count a processing attempt and return the event (its `attempts` includes this one), in one statement.

    A finished event (processed, unroutable, failed) is returned unchanged, not counted; None if it does not exist.
    """
    row = conn.execute(
        "UPDATE webhook_events SET attempts = attempts + 1 WHERE id = %s AND status <> ALL(%s)"
        " RETURNING id, provider, event_id, kind, payload_encrypted, correlation_id, status, attempts, tenant_id",
        (event_pk, list(FINISHED)),
    ).fetchone()
    return StoredEvent(**row) if row is not None else load(conn, event_pk)


def finish(conn: Connection[Any], event_pk: int, status: str, *, tenant_id: int | None = None,
           error: str | None = None, channel_number: str | None = None) -> None:
    """`channel_number`: the receiving number, kept for an unroutable event (the operator groups them by it)."""
    conn.execute(
        """
        UPDATE webhook_events
        SET status = %s, error = %s, tenant_id = COALESCE(%s, tenant_id), processed_at = now(),
            channel_number = COALESCE(%s, channel_number)
        WHERE id = %s
        """,
        (status, error, tenant_id, channel_number, event_pk),
    )


def pending(pool: ConnectionPool, *, received_older_than_s: float, queued_older_than_s: float,
            limit: int = 500) -> list[StoredEvent]:
    """Events stored but never enqueued (Redis was down), or enqueued long ago and never finished."""
    with pool.connection() as conn:
        rows = conn.execute(
            """
            SELECT id, provider, event_id, kind, payload_encrypted, correlation_id, status, attempts, tenant_id
            FROM webhook_events
            WHERE (status = 'received' AND received_at < now() - make_interval(secs => %s))
               OR (status = 'queued' AND received_at < now() - make_interval(secs => %s))
            ORDER BY id
            LIMIT %s
            """,
            (received_older_than_s, queued_older_than_s, limit),
        ).fetchall()
    return [StoredEvent(**row) for row in rows]  # type: ignore[arg-type]


def _get(row: Any, key: str) -> Any:
    return row[key]


def seal(vault: Vault, event: InboundEvent) -> str:
    """The encrypted envelope of an event. Raises UnicodeEncodeError for text UTF-8 cannot hold (a lone surrogate)."""
    return vault.encrypt(json.dumps({"kind": event_kind(event), "event": event.to_dict()}, ensure_ascii=False))


def unseal(vault: Vault, sealed: str) -> InboundEvent:
    """The event in an envelope made by `seal`."""
    envelope = json.loads(vault.decrypt(sealed))
    return event_from_dict(str(envelope["kind"]), dict(envelope["event"]))
