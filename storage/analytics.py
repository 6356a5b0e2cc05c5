"""Analytics events: one `events` row per thing worth counting, and the routing decision of each message.

Kinds written by the worker: `route` (stage, intent, confidence of every
customer message), `escalation`, `rate_limited`, `not_understood`,
`repeated`, `opt_out`, `opt_in`, `csat`, `engine_error`. `data` never holds
message text or phone numbers; `not_understood` and `escalation` name the
customer message of their turn by its webhook event id (`message_event`,
storage/unanswered.py). Callers hold the transaction.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb


def record(conn: Connection[Any], *, tenant_id: int, conversation_id: int | None, kind: str,
           data: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO events (tenant_id, conversation_id, kind, data) VALUES (%s, %s, %s, %s)",
        (tenant_id, conversation_id, kind, Jsonb(data)),
    )


def record_route(conn: Connection[Any], *, tenant_id: int, conversation_id: int, webhook_event_id: int,
                 routing: dict[str, Any]) -> None:
    """Keep the routing decision on the customer's stored message and count it as a `route` event."""
    conn.execute(
        "UPDATE messages SET route = %s WHERE webhook_event_id = %s AND direction = 'in'",
        (Jsonb(routing), webhook_event_id),
    )
    record(conn, tenant_id=tenant_id, conversation_id=conversation_id, kind="route", data=routing)


def count(conn: Connection[Any], tenant_id: int, kind: str) -> int:
    row = conn.execute("SELECT count(*) AS n FROM events WHERE tenant_id = %s AND kind = %s",
                       (tenant_id, kind)).fetchone()
    return int(row["n"]) if row else 0
