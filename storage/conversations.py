"""Conversations: the open thread between a customer and the company (bot, waiting, with an agent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection


@dataclass(frozen=True)
class Conversation:
    id: int
    tenant_id: int
    contact_id: int
    status: str  # bot | escalated | agent | closed


def open_for(conn: Connection[Any], *, tenant_id: int, contact_id: int) -> Conversation:
    """The customer's open conversation, created when there is none; touches last_message_at."""
    row = conn.execute(
        """
        INSERT INTO conversations (tenant_id, contact_id) VALUES (%s, %s)
        ON CONFLICT (tenant_id, contact_id) WHERE status <> 'closed'
        DO UPDATE SET last_message_at = now()
        RETURNING id, tenant_id, contact_id, status
        """,
        (tenant_id, contact_id),
    ).fetchone()
    assert row is not None
    return Conversation(**row)
