"""The queue page's cases in working order, and why each one sits where it does.

Order: cases whose first response is overdue (past the SLA target and not
answered yet) first; then priority (high, normal, low); then the longest
waiting. A callback requested out of hours has no clock running until the
company opens (`callback_due_at`, set by handoff.timers): it waits at the
bottom, marked as such.

The SLA is the first-response target for the priority (CONSOLE_SLA_HIGH_S,
CONSOLE_SLA_NORMAL_S), counted from the escalation (from the opening time for
a callback) to the first agent message. The SQL ordering and the flags each
item carries (`overdue`, `sla_breached`) come from the same targets, so a row
marked "Fuera de tiempo" is always among the top ones.
Read-only; every query is limited to the agent's tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection

from config import Settings
from console.summary import reason_text
from console.team_texts import text

OPEN = ("waiting", "taken", "callback")
CLOSED = ("resolved", "returned")
STATUS_FILTERS = ("open", "waiting", "taken", "callback", "mine", "closed")
PRIORITIES = ("high", "normal")
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
STATUS_LABELS = {"waiting": "Esperando", "taken": "Atendido", "callback": "Devolver llamada",
                 "resolved": "Resuelto", "returned": "Devuelto al bot"}
PAGE = 200


def sla_target_s(settings: Settings, priority: str) -> int:
    """Seconds to the first agent message for a case of this priority."""
    return settings.console_sla_high_s if priority == "high" else settings.console_sla_normal_s


def duration_text(seconds: float) -> str:
    """'menos de 1 min', '25 min', '1 h 5 min' (what an agent reads beside a case)."""
    minutes = int(max(0, seconds) // 60)
    if minutes < 1:
        return text("queue", "under_a_minute")
    if minutes < 60:
        return text("queue", "minutes", n=minutes)
    return text("queue", "hours", h=minutes // 60, n=minutes % 60)


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
    scheduled: bool  # a callback whose opening time has not come: no clock yet
    last_customer_at: datetime | None
    tags: tuple[str, ...]

    @property
    def callback_due(self) -> bool:
        return self.status == "callback" and not self.scheduled

    def overdue(self, now: datetime) -> bool:
        """Not answered yet and past the first-response target: these cases lead the queue."""
        return not self.scheduled and self.first_response_at is None and now > self.sla_deadline

    def sla_breached(self, now: datetime) -> bool:
        """The first response missed its target (still missing it, or came late)."""
        if self.first_response_at is not None:
            return self.first_response_at > self.sla_deadline
        return self.overdue(now)

    def why(self, now: datetime) -> str:
        """Why the case is where it is, in the agent's words ("⚠ Fuera de tiempo · 25 min esperando")."""
        if self.scheduled:
            return text("queue", "scheduled")
        if self.first_response_at is not None:
            took = duration_text((self.first_response_at - self.sla_start).total_seconds())
            return text("queue", "answered_late" if self.sla_breached(now) else "answered", took=took)
        waited = duration_text((now - self.sla_start).total_seconds())
        if self.overdue(now):
            return text("queue", "overdue", waited=waited)
        left = duration_text((self.sla_deadline - now).total_seconds())
        return text("queue", "waiting_high" if self.priority == "high" else "waiting", waited=waited, left=left)

    def as_json(self, now: datetime) -> dict[str, Any]:
        waited_until = self.first_response_at or now
        return {
            "id": self.id, "case_number": self.case_number, "priority": self.priority,
            "priority_label": priority_text(self.priority), "reason": self.reason,
            "reason_text": reason_text(self.reason),
            "status": self.status, "status_label": self.label, "customer_name": self.customer_name,
            "taken_by": self.taken_by, "taken_by_name": self.taken_by_name,
            "created_at": self.created_at.isoformat(), "sla_start": self.sla_start.isoformat(),
            "sla_deadline": self.sla_deadline.isoformat(),
            "first_response_at": self.first_response_at.isoformat() if self.first_response_at else None,
            "waiting_s": 0 if self.scheduled else max(0, int((waited_until - self.sla_start).total_seconds())),
            "overdue": self.overdue(now), "sla_breached": self.sla_breached(now), "why": self.why(now),
            "callback_due": self.callback_due, "scheduled": self.scheduled, "tags": list(self.tags),
            "last_customer_at": self.last_customer_at.isoformat() if self.last_customer_at else None,
        }

    @property
    def label(self) -> str:
        if self.status == "taken" and self.taken_by_name:
            return f"Atendido por {self.taken_by_name}"
        if self.status == "callback":
            return "Devolver llamada (fuera de horario)" if self.scheduled else "Devolver llamada"
        return STATUS_LABELS.get(self.status, self.status)


def priority_text(priority: str) -> str:
    """'Alta', 'Normal', 'Baja': never the stored id."""
    return text("priorities", priority)


def queue(conn: Connection[Any], settings: Settings, tenant_id: int, *, status: str = "open",
          priority: str | None = None, agent_id: int | None = None, now: datetime) -> list[QueueItem]:
    """The tenant's cases for the queue page, in working order (see the module docstring)."""
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
        SELECT q.* FROM (
            SELECT e.id, e.case_number, e.priority, e.reason, e.status, ct.profile_name AS customer_name,
                   e.taken_by, a.name AS taken_by_name, e.created_at, e.first_response_at, e.callback_due_at,
                   (SELECT max(m.created_at) FROM messages m
                    WHERE m.conversation_id = e.conversation_id AND m.direction = 'in') AS last_customer_at,
                   ARRAY(SELECT t.tag FROM case_tags t WHERE t.escalation_id = e.id ORDER BY t.tag) AS tags,
                   (e.status = 'callback' AND (e.callback_due_at IS NULL OR e.callback_due_at > %(now)s))
                       AS scheduled,
                   COALESCE(e.callback_due_at, e.created_at) AS sla_start,
                   CASE e.priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END AS priority_rank,
                   CASE e.priority WHEN 'high' THEN %(sla_high)s ELSE %(sla_normal)s END AS target_s
            FROM escalations e
            JOIN conversations c ON c.id = e.conversation_id
            JOIN contacts ct ON ct.id = c.contact_id
            LEFT JOIN agents a ON a.id = e.taken_by
            WHERE {" AND ".join(where)}
        ) q
        ORDER BY q.scheduled ASC,
                 (NOT q.scheduled AND q.first_response_at IS NULL
                  AND %(now)s > q.sla_start + q.target_s * interval '1 second') DESC,
                 q.priority_rank ASC, q.sla_start ASC, q.id ASC
        LIMIT {PAGE}
        """,  # noqa: S608 - fixed clauses chosen above; values are parameters
        {"tenant": tenant_id, "open": list(OPEN), "closed": list(CLOSED), "agent": agent_id, "status": status,
         "priority": priority, "now": now, "sla_high": settings.console_sla_high_s,
         "sla_normal": settings.console_sla_normal_s},
    ).fetchall()
    return [QueueItem(
        id=r["id"], case_number=r["case_number"], priority=r["priority"], reason=r["reason"],
        status=r["status"], customer_name=r["customer_name"], taken_by=r["taken_by"],
        taken_by_name=r["taken_by_name"], created_at=r["created_at"], sla_start=r["sla_start"],
        sla_deadline=r["sla_start"] + timedelta(seconds=sla_target_s(settings, r["priority"])),
        first_response_at=r["first_response_at"], scheduled=r["scheduled"],
        last_customer_at=r["last_customer_at"], tags=tuple(r["tags"] or ()),
    ) for r in rows]
