"""The customer messages the bot did not answer well: those it did not understand and those that led to a case.

A `not_understood` event or an `escalation` event (analytics, never holding
text) is linked to the customer message of its turn: the worker writes that
message's webhook event id into the event's data (`message_event`, an id);
an older event without it is linked to the last customer message of its
conversation at or before the event. Escalations of a company without a
chatbot (reason `no_chatbot`: every conversation is a case for its people)
are not the bot's failures and are left out. A message that led to both
counts once. Messages without text (images, locations) are left out.

Message bodies are personal data: callers show them only to the company's
admins, masked (`services.unanswered_groups.mask`), and never log them.
Failure policy: database errors raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection

KINDS = ("not_understood", "escalation")
NOT_THE_BOTS = ("no_chatbot",)  # escalation reasons that are not a failure of the bot
LIMIT = 20_000  # the most recent messages read per call (a month of a busy company; the grouping samples beyond)


@dataclass(frozen=True)
class Unanswered:
    message_id: int
    text: str  # as the customer wrote it: personal data
    at: datetime
    kind: str  # not_understood | escalation
    reason: str | None  # the escalation's reason


def between(conn: Connection[Any], tenant_id: int, start: datetime, end: datetime,
            limit: int = LIMIT) -> list[Unanswered]:
    """The company's unanswered customer messages with an event in [start, end), newest first, at most `limit`."""
    found: list[Any] = conn.execute(
        """
        SELECT DISTINCT ON (m.id) m.id, m.body, e.created_at, e.kind, e.data->>'reason' AS reason
        FROM events e
        JOIN LATERAL (
            SELECT id, body FROM messages
            WHERE conversation_id = e.conversation_id AND tenant_id = e.tenant_id AND direction = 'in'
              AND CASE WHEN e.data ? 'message_event' THEN webhook_event_id = (e.data->>'message_event')::bigint
                       ELSE created_at <= e.created_at END
            ORDER BY id DESC LIMIT 1) m ON true
        WHERE e.tenant_id = %s AND e.kind = ANY(%s) AND e.created_at >= %s AND e.created_at < %s
          AND e.conversation_id IS NOT NULL
          AND NOT (e.kind = 'escalation' AND coalesce(e.data->>'reason', '') = ANY(%s))
          AND m.body IS NOT NULL AND btrim(m.body) <> ''
        ORDER BY m.id DESC, e.kind DESC
        LIMIT %s
        """,
        (tenant_id, list(KINDS), start, end, list(NOT_THE_BOTS), limit)).fetchall()
    return [Unanswered(int(r["id"]), str(r["body"]), r["created_at"], str(r["kind"]), r["reason"]) for r in found]
