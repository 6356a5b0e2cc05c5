"""The `messages` table: what customers sent and what we sent them, with delivery status.

Outbound rows are written *before* sending (status `pending`) with an
idempotency key, so a retried job finds them instead of composing and sending
the reply again. A row is claimed (`pending` -> `sending`) by exactly one
sender. Delivery status only moves forward (sent < delivered < read; failed is
final), whatever order the provider's callbacks arrive in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from channels.events import DeliveryStatus
from channels.outbound import OutboundMessage, message_from_dict, message_to_dict, preview_text

_TIMESTAMP_COLUMN = {
    DeliveryStatus.SENT: "sent_at",
    DeliveryStatus.DELIVERED: "delivered_at",
    DeliveryStatus.READ: "read_at",
    DeliveryStatus.FAILED: "failed_at",
}


@dataclass(frozen=True)
class OutboundRow:
    id: int
    tenant_id: int
    conversation_id: int
    contact_id: int
    channel: str
    idempotency_key: str
    status: str
    attempts: int
    message: OutboundMessage
    correlation_id: str | None


def insert_inbound(
    conn: Connection[Any], *, tenant_id: int, conversation_id: int, channel: str, provider_message_id: str,
    webhook_event_id: int | None, kind: str, body: str | None, payload: dict[str, Any], correlation_id: str,
) -> int | None:
    """Store a customer's message; None when it was stored before (a retried job)."""
    row = conn.execute(
        """
        INSERT INTO messages (tenant_id, conversation_id, direction, channel, provider_message_id,
                              webhook_event_id, kind, body, payload, status, correlation_id)
        VALUES (%s, %s, 'in', %s, %s, %s, %s, %s, %s, 'received', %s)
        ON CONFLICT (channel, provider_message_id) DO NOTHING
        RETURNING id
        """,
        (tenant_id, conversation_id, channel, provider_message_id, webhook_event_id, kind, body,
         Jsonb(payload), correlation_id),
    ).fetchone()
    return None if row is None else int(row["id"])


def event_answered(conn: Connection[Any], webhook_event_id: int) -> bool:
    """Whether the message of this event was answered already: a reply is stored, or its routing (a silent answer)."""
    row = conn.execute(
        "SELECT 1 FROM messages WHERE webhook_event_id = %s AND (direction = 'out' OR route IS NOT NULL) LIMIT 1",
        (webhook_event_id,),
    ).fetchone()
    return row is not None


def create_outbound(
    conn: Connection[Any], *, tenant_id: int, conversation_id: int, channel: str, idempotency_key: str,
    message: OutboundMessage, webhook_event_id: int | None, correlation_id: str | None,
) -> int | None:
    """Write a reply to send; None when a row with this idempotency key exists already."""
    row = conn.execute(
        """
        INSERT INTO messages (tenant_id, conversation_id, direction, channel, idempotency_key,
                              webhook_event_id, kind, body, payload, status, status_rank, correlation_id)
        VALUES (%s, %s, 'out', %s, %s, %s, %s, %s, %s, 'pending', 0, %s)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """,
        (tenant_id, conversation_id, channel, idempotency_key, webhook_event_id, message.kind,
         preview_text(message), Jsonb(message_to_dict(message)), correlation_id),
    ).fetchone()
    return None if row is None else int(row["id"])


def pending_outbound_ids(conn: Connection[Any], webhook_event_id: int) -> list[int]:
    rows = conn.execute(
        "SELECT id FROM messages WHERE webhook_event_id = %s AND direction = 'out' AND status IN ('pending', 'sending')"
        " ORDER BY id",
        (webhook_event_id,),
    ).fetchall()
    return [int(r["id"]) for r in rows]


def claim_for_sending(conn: Connection[Any], message_id: int) -> OutboundRow | None:
    """Move a pending reply to `sending` and return it; None when it is not pending (sent, failed or in flight)."""
    # The contact comes from a scalar subquery, not a join: a join planned while `conversations` is small
    # (a new deployment) scans it on every send.
    row = conn.execute(
        """
        UPDATE messages m SET status = 'sending', status_rank = 1, attempts = attempts + 1, updated_at = now()
        WHERE m.id = %s AND m.status = 'pending'
        RETURNING m.id, m.tenant_id, m.conversation_id,
                  (SELECT c.contact_id FROM conversations c WHERE c.id = m.conversation_id) AS contact_id,
                  m.channel, m.idempotency_key, m.status, m.attempts, m.payload, m.correlation_id
        """,
        (message_id,),
    ).fetchone()
    return None if row is None else _outbound_row(row)


@dataclass(frozen=True)
class Route:
    """Where a pending reply goes: its tenant, the contact, and the number the customer last wrote to."""

    tenant_id: int
    contact_id: int
    provider: str | None  # of the conversation's last customer message; None: the customer never wrote
    number: str | None  # the receiving number of that message (kept in its payload); None: not known


def route_of_pending(conn: Connection[Any], message_id: int) -> Route | None:
    """The route of a still pending reply; None when the reply is not pending."""
    # The conversation's last customer message (by the messages_conversation index): its provider and number.
    row = conn.execute(
        """
        SELECT m.tenant_id, (SELECT c.contact_id FROM conversations c WHERE c.id = m.conversation_id) AS contact_id,
               (SELECT ARRAY[i.channel, i.payload->>'channel_number'] FROM messages i
                WHERE i.conversation_id = m.conversation_id AND i.direction = 'in' ORDER BY i.id DESC LIMIT 1)
               AS inbound
        FROM messages m WHERE m.id = %s AND m.status = 'pending'
        """,
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    provider, number = row["inbound"] or (None, None)
    return Route(tenant_id=int(row["tenant_id"]), contact_id=int(row["contact_id"]), provider=provider,
                 number=number)


def conversation_channel(conn: Connection[Any], conversation_id: int) -> tuple[str | None, str | None]:
    """(provider, number) the customer last wrote to in this conversation; (None, None) when never, or not known."""
    row = conn.execute(
        "SELECT channel, payload->>'channel_number' AS number FROM messages"
        " WHERE conversation_id = %s AND direction = 'in' ORDER BY id DESC LIMIT 1",
        (conversation_id,),
    ).fetchone()
    return (row["channel"], row["number"]) if row is not None else (None, None)


def status_of(conn: Connection[Any], message_id: int) -> str | None:
    row = conn.execute("SELECT status FROM messages WHERE id = %s", (message_id,)).fetchone()
    return None if row is None else str(row["status"])


# mark_sent replaces the row's status unless a receipt got there first with a later one (`reconcile`); a
# failed/interrupted verdict of another job is replaced too: the provider's answer says it was sent.
_SEND_WINS = "(status_rank < %(rank)s OR (status = 'failed' AND error_code = 'interrupted'))"


def mark_sent(conn: Connection[Any], message_id: int, provider_message_id: str, status: DeliveryStatus,
              channel: str | None = None) -> None:
    """The provider accepted the reply: record its id and status (a later status from a receipt stays), and
    when (`accepted_at`: the end of the bot's response time, docs/METRICS.md).

    `channel`: the transport that sent it (meta, twilio, local), when it may differ from the one the row was
    written with (the conversation's channel is only known when sending); its receipts are matched by it.
    """
    conn.execute(
        f"""
        UPDATE messages SET provider_message_id = %(id)s, updated_at = now(), channel = COALESCE(%(channel)s, channel),
               status = CASE WHEN {_SEND_WINS} THEN %(status)s ELSE status END,
               status_rank = CASE WHEN {_SEND_WINS} THEN %(rank)s ELSE status_rank END,
               error_code = CASE WHEN {_SEND_WINS} THEN NULL ELSE error_code END,
               error_title = CASE WHEN {_SEND_WINS} THEN NULL ELSE error_title END,
               failed_at = CASE WHEN {_SEND_WINS} THEN NULL ELSE failed_at END,
               sent_at = CASE WHEN %(rank)s >= 3 THEN COALESCE(sent_at, now()) ELSE sent_at END,
               accepted_at = COALESCE(accepted_at, now())
        WHERE id = %(message_id)s
        """,  # noqa: S608 - a fixed condition
        {"id": provider_message_id, "status": status.value, "rank": status.rank, "message_id": message_id,
         "channel": channel},
    )


def add_extra_part(conn: Connection[Any], parent: OutboundRow, part: int, provider_message_id: str,
                   message: OutboundMessage, status: DeliveryStatus, channel: str | None = None) -> None:
    """A reply split to fit WhatsApp's limits went out as several messages: one row per extra part."""
    conn.execute(
        """
        INSERT INTO messages (tenant_id, conversation_id, direction, channel, provider_message_id, idempotency_key,
                              kind, body, payload, status, status_rank, correlation_id, sent_at)
        VALUES (%s, %s, 'out', %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
        ON CONFLICT (idempotency_key) DO NOTHING
        """,
        (parent.tenant_id, parent.conversation_id, channel or parent.channel, provider_message_id,
         f"{parent.idempotency_key}/part{part}", message.kind, preview_text(message),
         Jsonb(message_to_dict(message)), status.value, status.rank, parent.correlation_id),
    )


def release_for_retry(conn: Connection[Any], message_id: int, error_code: str, error_title: str) -> None:
    """A transient failure (or a send that must wait): `pending` with the error visible, to be retried."""
    conn.execute(
        "UPDATE messages SET status = 'pending', status_rank = 0, error_code = %s, error_title = %s, updated_at = now()"
        " WHERE id = %s AND status IN ('pending', 'sending')",
        (error_code, error_title[:500], message_id),
    )


def mark_failed(conn: Connection[Any], message_id: int, error_code: str, error_title: str) -> None:
    conn.execute(
        "UPDATE messages SET status = 'failed', status_rank = %s, error_code = %s, error_title = %s,"
        " failed_at = now(), updated_at = now() WHERE id = %s AND status <> 'failed'",
        (DeliveryStatus.FAILED.rank, error_code, error_title[:500], message_id),
    )


def set_aside(conn: Connection[Any], message_id: int, error_code: str, error_title: str) -> None:
    """A send the provider refused for a reason that is not the message's (its template was paused): failed,
    with its idempotency key renamed so the same notification can be written and sent again later."""
    conn.execute(
        "UPDATE messages SET status = 'failed', status_rank = %s, error_code = %s, error_title = %s,"
        " failed_at = now(), updated_at = now(), idempotency_key = idempotency_key || ':refused:' || id"
        " WHERE id = %s",
        (DeliveryStatus.FAILED.rank, error_code, error_title[:500], message_id),
    )


def apply_status(
    conn: Connection[Any], *, channel: str, provider_message_id: str, status: DeliveryStatus,
    error_code: str | None, error_title: str | None, reference: str | None = None,
) -> str:
    """Apply a delivery receipt. Returns 'applied', 'stale' (older than what we know) or 'unknown'.

    `reference` is our idempotency key echoed back by the provider (Meta's
    biz_opaque_callback_data): it finds a message whose send response was lost.
    """
    column = _TIMESTAMP_COLUMN.get(status)
    stamp = f", {column} = COALESCE({column}, now())" if column else ""
    row = conn.execute(
        f"""
        UPDATE messages SET status = %s, status_rank = %s, updated_at = now(),
               error_code = COALESCE(%s, error_code), error_title = COALESCE(%s, error_title){stamp}
        WHERE channel = %s AND provider_message_id = %s AND status_rank < %s
        RETURNING id
        """,  # noqa: S608 - column comes from a fixed mapping
        (status.value, status.rank, error_code, error_title, channel, provider_message_id, status.rank),
    ).fetchone()
    if row is not None:
        return "applied"
    exists = conn.execute(
        "SELECT 1 FROM messages WHERE channel = %s AND provider_message_id = %s", (channel, provider_message_id)
    ).fetchone()
    if exists:
        return "stale"
    if reference and reconcile(conn, reference=reference, provider_message_id=provider_message_id, status=status,
                               error_code=error_code, error_title=error_title):
        return "applied"
    return "unknown"


def reconcile(
    conn: Connection[Any], *, reference: str, provider_message_id: str, status: DeliveryStatus,
    error_code: str | None, error_title: str | None,
) -> bool:
    """A receipt for a reply whose send response we never stored, found by its idempotency key.

    The reply was `sending` (the receipt beat the response), `failed/interrupted` (its worker died
    mid-send: we could not know the provider had it) or failed without an answer: the provider's word wins.
    The provider id is recorded and the status becomes the receipt's; a receipt that is not a failure clears
    our guessed error. Returns whether such a reply was found.
    """
    if status == DeliveryStatus.FAILED:
        errors = "error_code = COALESCE(%(code)s, error_code), error_title = COALESCE(%(title)s, error_title)," \
                 " failed_at = COALESCE(failed_at, now())"
    else:
        errors = "error_code = NULL, error_title = NULL, failed_at = NULL, sent_at = COALESCE(sent_at, now())"
        column = _TIMESTAMP_COLUMN.get(status)
        if column and column != "sent_at":
            errors += f", {column} = COALESCE({column}, now())"
    row = conn.execute(
        f"""
        UPDATE messages SET provider_message_id = %(id)s, status = %(status)s, status_rank = %(rank)s,
               updated_at = now(), {errors}
        WHERE idempotency_key = %(ref)s AND direction = 'out' AND provider_message_id IS NULL
        RETURNING id
        """,  # noqa: S608 - the column names come from fixed mappings
        {"id": provider_message_id, "status": status.value, "rank": status.rank, "code": error_code,
         "title": error_title, "ref": reference},
    ).fetchone()
    return row is not None


def _outbound_row(row: Any) -> OutboundRow:
    payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
    return OutboundRow(
        id=row["id"], tenant_id=row["tenant_id"], conversation_id=row["conversation_id"],
        contact_id=row["contact_id"], channel=row["channel"], idempotency_key=row["idempotency_key"],
        status=row["status"], attempts=row["attempts"], message=message_from_dict(payload),
        correlation_id=row["correlation_id"],
    )
