"""What the console shows: the queue with its SLA timers, and one case with transcript, facts and notes.

The queue holds the open cases of one tenant (waiting, taken, callback; the
resolved and returned ones of the last day when asked), ordered: callbacks
whose time came first, then high priority, then the longest waiting. The SLA
is the first-response target for the priority, counted from the escalation
(from the opening time for a callback) to the first agent message.
Read-only; every query is limited to the agent's tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection

from config import Settings
from console import words
from console.summary import reason_text

OPEN = ("waiting", "taken", "callback")
CLOSED = ("resolved", "returned")
STATUS_FILTERS = ("open", "waiting", "taken", "callback", "mine", "closed")
PRIORITIES = ("high", "normal")
STATUS_LABELS = {"waiting": "Esperando", "taken": "Atendido", "callback": "Devolver llamada",
                 "resolved": "Resuelto", "returned": "Devuelto al bot"}
PAGE = 200


def sla_target_s(settings: Settings, priority: str) -> int:
    return settings.console_sla_high_s if priority == "high" else settings.console_sla_normal_s


@dataclass(frozen=True)
class QueueItem:
    id: int
    case_number: str
    priority: str
    reason: str
    status: str
    customer_name: str | None
    taken_by: int | None
    taken_by_name: str | None
    created_at: datetime
    sla_start: datetime
    sla_deadline: datetime
    first_response_at: datetime | None
    callback_due: bool
    last_customer_at: datetime | None

    def as_json(self, now: datetime) -> dict[str, Any]:
        waited_until = self.first_response_at or now
        return {
            "id": self.id, "case_number": self.case_number, "priority": self.priority, "reason": self.reason,
            "reason_text": reason_text(self.reason),
            "status": self.status, "status_label": self.label, "customer_name": self.customer_name,
            "taken_by": self.taken_by, "taken_by_name": self.taken_by_name,
            "created_at": self.created_at.isoformat(), "sla_start": self.sla_start.isoformat(),
            "sla_deadline": self.sla_deadline.isoformat(),
            "first_response_at": self.first_response_at.isoformat() if self.first_response_at else None,
            "waiting_s": max(0, int((waited_until - self.sla_start).total_seconds())),
            "sla_breached": waited_until > self.sla_deadline,
            "callback_due": self.callback_due,
            "last_customer_at": self.last_customer_at.isoformat() if self.last_customer_at else None,
        }

    @property
    def label(self) -> str:
        if self.status == "taken" and self.taken_by_name:
            return f"Atendido por {self.taken_by_name}"
        if self.status == "callback":
            return "Devolver llamada" if self.callback_due else "Devolver llamada (fuera de horario)"
        return STATUS_LABELS.get(self.status, self.status)


def queue(conn: Connection[Any], settings: Settings, tenant_id: int, *, status: str = "open",
          priority: str | None = None, agent_id: int | None = None, now: datetime) -> list[QueueItem]:
    """The tenant's cases for the queue page, in working order."""
    if status not in STATUS_FILTERS:
        raise ValueError(f"status must be one of {', '.join(STATUS_FILTERS)}")
    if priority is not None and priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
    where = ["e.tenant_id = %(tenant)s"]
    if status == "open":
        where.append("e.status = ANY(%(open)s)")
    elif status == "closed":
        where.append("e.status = ANY(%(closed)s) AND e.resolved_at > %(now)s - interval '1 day'")
    elif status == "mine":
        where.append("e.status = 'taken' AND e.taken_by = %(agent)s")
    else:
        where.append("e.status = %(status)s")
    if priority:
        where.append("e.priority = %(priority)s")
    rows = conn.execute(
        f"""
        SELECT e.id, e.case_number, e.priority, e.reason, e.status, ct.profile_name AS customer_name,
               e.taken_by, a.name AS taken_by_name, e.created_at, e.first_response_at, e.callback_due_at,
               (SELECT max(m.created_at) FROM messages m
                WHERE m.conversation_id = e.conversation_id AND m.direction = 'in') AS last_customer_at
        FROM escalations e
        JOIN conversations c ON c.id = e.conversation_id
        JOIN contacts ct ON ct.id = c.contact_id
        LEFT JOIN agents a ON a.id = e.taken_by
        WHERE {" AND ".join(where)}
        ORDER BY (e.status = 'callback' AND e.callback_due_at IS NOT NULL AND e.callback_due_at <= %(now)s) DESC,
                 (e.status = 'callback' AND e.callback_due_at IS NULL) ASC,
                 (e.priority = 'high') DESC, COALESCE(e.callback_due_at, e.created_at) ASC, e.id ASC
        LIMIT {PAGE}
        """,  # noqa: S608 - fixed clauses chosen above; values are parameters
        {"tenant": tenant_id, "open": list(OPEN), "closed": list(CLOSED), "agent": agent_id, "status": status,
         "priority": priority, "now": now},
    ).fetchall()
    items = []
    for r in rows:
        due = r["callback_due_at"]
        start = due or r["created_at"]
        items.append(QueueItem(
            id=r["id"], case_number=r["case_number"], priority=r["priority"], reason=r["reason"],
            status=r["status"], customer_name=r["customer_name"], taken_by=r["taken_by"],
            taken_by_name=r["taken_by_name"], created_at=r["created_at"], sla_start=start,
            sla_deadline=start + timedelta(seconds=sla_target_s(settings, r["priority"])),
            first_response_at=r["first_response_at"], callback_due=due is not None and due <= now,
            last_customer_at=r["last_customer_at"],
        ))
    return items


def transcript(conn: Connection[Any], conversation_id: int, *, after: int = 0) -> list[dict[str, Any]]:
    """The conversation's messages, oldest first: who wrote it, text, kind and delivery status."""
    rows = conn.execute(
        """
        SELECT m.id, m.direction, m.kind, m.body, m.status, m.created_at, m.agent_id, a.name AS agent_name,
               m.error_title, m.idempotency_key
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
                    "error": r["error_title"] if r["status"] == "failed" else None,
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
