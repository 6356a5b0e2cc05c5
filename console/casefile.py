"""What the console shows of one case: transcript, notes, history, routing decisions and resolution.

The queue and its order live in console.case_queue. Read-only; callers have
checked that the case belongs to the agent's tenant.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from console import words


def transcript(conn: Connection[Any], conversation_id: int, *, after: int = 0) -> list[dict[str, Any]]:
    """The conversation's messages, oldest first: who wrote it, text, kind and delivery status."""
    rows = conn.execute(
        """
        SELECT m.id, m.direction, m.kind, m.body, m.status, m.created_at, m.agent_id, a.name AS agent_name,
               m.error_code, m.idempotency_key
        FROM messages m LEFT JOIN agents a ON a.id = m.agent_id
        WHERE m.conversation_id = %s AND m.id > %s
          AND (m.idempotency_key IS NULL OR m.idempotency_key NOT LIKE '%%/part%%')
        ORDER BY m.id
        """,
        (conversation_id, after),
    ).fetchall()
    out = []
    for r in rows:
        who = "cliente" if r["direction"] == "in" else (r["agent_name"] or "bot")
        out.append({"id": r["id"], "direction": r["direction"], "who": who, "is_agent": r["agent_id"] is not None,
                    "kind": r["kind"], "body": r["body"] or words.message_kind(r["kind"]), "status": r["status"],
                    "error": words.delivery_error(r["error_code"]) if r["status"] == "failed" else None,
                    "created_at": r["created_at"].isoformat()})
    return out


def conversations_of_case(conn: Connection[Any], case_id: int) -> int:
    row = conn.execute("SELECT conversation_id FROM escalations WHERE id = %s", (case_id,)).fetchone()
    return int(row["conversation_id"]) if row else 0


def notes(conn: Connection[Any], conversation_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT n.id, n.body, n.created_at, a.name AS agent_name FROM agent_notes n JOIN agents a ON a.id = n.agent_id"
        " WHERE n.conversation_id = %s ORDER BY n.id",
        (conversation_id,),
    ).fetchall()
    return [{"id": r["id"], "body": r["body"], "agent": r["agent_name"], "created_at": r["created_at"].isoformat()}
            for r in rows]


def history(conn: Connection[Any], case_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT h.action, h.data, h.created_at, a.name AS agent_name FROM handoff_events h"
        " LEFT JOIN agents a ON a.id = h.agent_id WHERE h.escalation_id = %s ORDER BY h.id",
        (case_id,),
    ).fetchall()
    return [{"action": r["action"], "agent": r["agent_name"], "data": r["data"],
             "created_at": r["created_at"].isoformat()} for r in rows]


def routes(conn: Connection[Any], conversation_id: int) -> list[dict[str, Any]]:
    """The routing decisions stored with the customer's messages (intent, entities), oldest first."""
    rows = conn.execute(
        "SELECT route FROM messages WHERE conversation_id = %s AND direction = 'in' AND route IS NOT NULL ORDER BY id",
        (conversation_id,),
    ).fetchall()
    return [dict(r["route"]) for r in rows if isinstance(r["route"], dict)]


def case_extra(conn: Connection[Any], case_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT e.resolution_reason, e.csat_score, e.csat_asked_at, e.first_response_at, e.callback_due_at,"
        " e.resolved_at, r.name AS resolved_by_name FROM escalations e LEFT JOIN agents r ON r.id = e.resolved_by"
        " WHERE e.id = %s",
        (case_id,),
    ).fetchone()
    return dict(row) if row else {}
