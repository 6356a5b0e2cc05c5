"""Retention: conversation content is deleted after RETENTION_DAYS (escalated: RETENTION_ESCALATED_DAYS).

Design 9.2: what customers wrote and what we answered is kept only as long as
needed. For each conversation whose last message is older than its limit
(a conversation with an escalation keeps the longer one):
- message text, payloads and routing details are erased (the rows stay, so
  counts by day, direction, kind and status — the anonymous aggregates the
  dashboard uses — are unchanged);
- the raw webhook payloads behind those messages are erased;
- the agents' notes on the conversation are deleted;
- the files of the conversation (photos, voice notes, documents; issue 17) are deleted from the media store,
  then their `media` rows;
and the template values (names, amounts) of notifications older than the
limit are erased. Each pass records one anonymous `events` row (kind
`retention`) with how much it erased.

Failure policy: database errors raise (the pass is retried on the next tick).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from runtime.resources import Runtime
from storage import media

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionResult:
    conversations: int
    messages: int
    webhook_payloads: int
    agent_notes: int
    notification_values: int
    media_files: int = 0  # issue 17: files of the purged conversations deleted from the media store


def apply_retention(rt: Runtime, now: datetime | None = None) -> RetentionResult:
    """Erase content past its retention limit at `now`; returns what was erased."""
    now = now or datetime.now(UTC)
    normal = now - timedelta(days=rt.settings.retention_days)
    escalated = now - timedelta(days=rt.settings.retention_escalated_days)
    with rt.pool.connection() as conn, conn.transaction():
        ids = _expired_conversations(conn, normal, escalated)
        files = _delete_media(rt, conn, ids)
        result = RetentionResult(
            conversations=len(ids),
            messages=_count(conn, """
                UPDATE messages SET body = NULL, payload = '{}'::jsonb, route = NULL
                WHERE conversation_id = ANY(%s) AND (body IS NOT NULL OR payload <> '{}'::jsonb OR route IS NOT NULL)
                RETURNING id""", (ids,)),
            webhook_payloads=_count(conn, """
                UPDATE webhook_events SET payload_encrypted = ''
                WHERE payload_encrypted <> '' AND (
                    id IN (SELECT webhook_event_id FROM messages WHERE conversation_id = ANY(%s))
                    OR (received_at < %s AND status IN ('processed', 'failed', 'unroutable', 'quarantined')))
                RETURNING id""", (ids, normal)),
            agent_notes=_count(conn, "DELETE FROM agent_notes WHERE conversation_id = ANY(%s) RETURNING id", (ids,))
            if _table_exists(conn, "agent_notes") else 0,
            notification_values=_count(conn, """
                UPDATE notification_log SET values_encrypted = NULL
                WHERE values_encrypted IS NOT NULL AND created_at < %s AND status NOT IN ('pending', 'deferred', 'held')
                RETURNING id""", (normal,)),
            media_files=files,
        )
        if any(asdict(result).values()):
            _record(conn, result)
    if result.conversations:
        log.info("retention applied", extra=asdict(result))
    return result


def _delete_media(rt: Runtime, conn: Connection[Any], conversation_ids: list[int]) -> int:
    """The conversations' files: the stored objects first, then their rows (issue 17). A store failure raises:
    the pass is rolled back and tried again on the next tick (deleting an object twice is harmless)."""
    if not conversation_ids:
        return 0
    keys = media.stored_keys(conn, conversation_ids)
    for tenant_id, key in keys:
        rt.media_store.delete(tenant_id, key)
    media.delete_for_conversations(conn, conversation_ids)
    return len(keys)


def _expired_conversations(conn: Connection[Any], normal: datetime, escalated: datetime) -> list[int]:
    rows = conn.execute(
        """
        SELECT c.id FROM conversations c
        WHERE c.last_message_at < %s
          AND (c.last_message_at < %s OR NOT EXISTS (SELECT 1 FROM escalations e WHERE e.conversation_id = c.id))
        """,
        (normal, escalated),
    ).fetchall()
    return [int(r["id"]) for r in rows]


def _count(conn: Connection[Any], sql: str, params: tuple[Any, ...]) -> int:
    return len(conn.execute(sql, params).fetchall())


def _record(conn: Connection[Any], result: RetentionResult) -> None:
    """One anonymous row per tenant saying how much this pass erased (no conversation, no customer)."""
    for tenant in conn.execute("SELECT id FROM tenants").fetchall():
        conn.execute("INSERT INTO events (tenant_id, kind, data) VALUES (%s, 'retention', %s)",
                     (tenant["id"], Jsonb(asdict(result))))


def _table_exists(conn: Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) AS t", (name,)).fetchone()
    return row is not None and row["t"] is not None
