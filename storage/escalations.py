"""Escalations: a conversation handed to a person, with its case number, priority and reason.

Opening one moves the conversation to `escalated` (the bot then stays quiet,
design 2.3.3); the agents' side later moves the escalation through taken /
callback / resolved / returned. Callers hold the transaction: opening an
escalation is stored together with the replies that announce its case number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection

OPEN_STATUSES = ("waiting", "taken", "callback")


@dataclass(frozen=True)
class Escalation:
    id: int
    conversation_id: int
    case_number: str
    priority: str  # high | normal
    reason: str
    status: str  # waiting | taken | callback | resolved | returned
    created_at: datetime


_COLUMNS = "id, conversation_id, case_number, priority, reason, status, created_at"


def open_escalation(
    conn: Connection[Any], *, tenant_id: int, conversation_id: int, case_number: str, priority: str, reason: str,
    callback: bool,
) -> Escalation | None:
    """Record the hand-over and mark the conversation `escalated`; None when this case number exists already.

    A callback (outside support hours) starts as `callback`, otherwise `waiting` for an agent.
    """
    row = conn.execute(
        f"""
        INSERT INTO escalations (tenant_id, conversation_id, case_number, priority, reason, status)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (case_number) DO NOTHING
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - fixed column list
        (tenant_id, conversation_id, case_number, priority, reason[:200], "callback" if callback else "waiting"),
    ).fetchone()
    conn.execute(
        "UPDATE conversations SET status = 'escalated', last_message_at = now() WHERE id = %s AND status = 'bot'",
        (conversation_id,),
    )
    return None if row is None else Escalation(**row)


def open_case(conn: Connection[Any], conversation_id: int) -> Escalation | None:
    """The latest escalation of the conversation that is not resolved or returned yet."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM escalations WHERE conversation_id = %s AND status = ANY(%s)"  # noqa: S608
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        (conversation_id, list(OPEN_STATUSES)),
    ).fetchone()
    return None if row is None else Escalation(**row)


def for_conversation(conn: Connection[Any], conversation_id: int) -> list[Escalation]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM escalations WHERE conversation_id = %s ORDER BY id",  # noqa: S608
        (conversation_id,),
    ).fetchall()
    return [Escalation(**row) for row in rows]
