"""The hand-over state machine: an escalation worked by a person from the console.

    waiting / callback --claim--> taken --take_over (another agent, recorded)--> taken
    taken --hand_back--> returned (the bot answers again)
    taken --resolve--> resolved (conversation closed; optional CSAT question, 1-10)

A claim is one conditional UPDATE (`status IN ('waiting','callback')`), so of
two agents claiming at once exactly one wins; the other gets `Conflict`
naming the winner. A take-over names the agent it takes from and fails if the
chat changed hands meanwhile. Only the agent who has the chat replies, hands it
back or resolves it (supervisors and admins may also hand back or resolve).

Every message to the customer goes through the real outbound path: stored in
`messages` (status pending, with the agent's id) in the same transaction as the
state change, then a delivery job is queued; the worker sends it through the
transport and the status shows in the console. Outside WhatsApp's 24-hour
window free text is refused with `WindowClosed` (the console offers the
approved templates instead). Every action is recorded in `handoff_events` and
announced live. Failure policy: `HandoffError`s are the caller's answer (4xx);
database errors raise.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import redis
import yaml
from psycopg import Connection
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from rq import Queue

from channels.outbound import Buttons, Choice, OutboundMessage, Template, Text
from config import Settings
from handoff import live
from handoff.agents import Agent
from runtime.enqueue import DELIVERY_RETRY, FAILED_TTL_S
from storage import contacts, messages

log = logging.getLogger(__name__)

TEXTS_PATH = Path(__file__).resolve().parent / "texts.yaml"
CLAIMABLE = ("waiting", "callback")
REPLY_MAX = 4096
REASON_MAX = 300


class HandoffError(Exception):
    """An action that cannot be done now; `status` is the HTTP status the console answers with."""

    status = 400


class NotFound(HandoffError):
    """No such case for this agent's company (another company's case looks the same)."""

    status = 404


class Conflict(HandoffError):
    """The case is in another state or another agent has it."""

    status = 409


class Forbidden(HandoffError):
    status = 403


class WindowClosed(HandoffError):
    """The customer's 24-hour window is closed: only an approved template may be sent."""

    status = 409

    def __init__(self, closes_at: datetime | None) -> None:
        super().__init__(error_text("window_closed"))
        self.closes_at = closes_at


@dataclass(frozen=True)
class Desk:
    """What the console's actions need: settings, the database, Redis (live events) and the queue."""

    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    queue: Queue

    @property
    def channel(self) -> str:
        return self.settings.whatsapp_provider


@dataclass(frozen=True)
class Case:
    id: int
    tenant_id: int
    conversation_id: int
    contact_id: int
    case_number: str
    priority: str
    reason: str
    status: str
    taken_by: int | None
    taken_by_name: str | None
    conversation_status: str
    customer_name: str | None
    created_at: datetime


@cache
def wording() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TEXTS_PATH.read_text(encoding="utf-8"))
    return data


def error_text(key: str, **values: Any) -> str:
    """What the agent reads when an action cannot be done (handoff/texts.yaml `errors`)."""
    return str(wording()["errors"][key]).format(**values)


def status_text(status: str) -> str:
    """A case status in the agent's words ("en espera"), never the stored id."""
    return str(wording()["case_statuses"].get(status, status))


def name_part(customer_name: str | None) -> str:
    first = (customer_name or "").strip().split(" ")[0]
    return f" {first}" if first and len(first) <= 20 and first.replace("-", "").isalpha() else ""


def load_case(conn: Connection[Any], tenant_id: int, case_id: int, *, lock: bool = False) -> Case:
    """The case of this tenant (NotFound otherwise); `lock` holds its row until the transaction ends."""
    row = conn.execute(
        """
        SELECT e.id, e.tenant_id, e.conversation_id, c.contact_id, e.case_number, e.priority, e.reason, e.status,
               e.taken_by, a.name AS taken_by_name, c.status AS conversation_status,
               ct.profile_name AS customer_name, e.created_at
        FROM escalations e
        JOIN conversations c ON c.id = e.conversation_id
        JOIN contacts ct ON ct.id = c.contact_id
        LEFT JOIN agents a ON a.id = e.taken_by
        WHERE e.id = %s AND e.tenant_id = %s
        """ + (" FOR UPDATE OF e" if lock else ""),  # noqa: S608 - a fixed clause
        (case_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound(error_text("not_found"))
    return Case(**row)


def _record(conn: Connection[Any], case: Case, agent: Agent | None, action: str, **data: Any) -> None:
    conn.execute(
        "INSERT INTO handoff_events (tenant_id, escalation_id, agent_id, action, data) VALUES (%s, %s, %s, %s, %s)",
        (case.tenant_id, case.id, agent.id if agent else None, action, Jsonb(data)),
    )


def store_message(conn: Connection[Any], desk: Desk, case: Case, agent: Agent | None, message: OutboundMessage,
                   key: str) -> int | None:
    """A message for the customer as a pending row (None when this key was stored already)."""
    message_id = messages.create_outbound(
        conn, tenant_id=case.tenant_id, conversation_id=case.conversation_id, channel=desk.channel,
        idempotency_key=key, message=message, webhook_event_id=None, correlation_id=f"console-{case.id}",
    )
    if message_id is not None and agent is not None:
        conn.execute("UPDATE messages SET agent_id = %s WHERE id = %s", (agent.id, message_id))
        conn.execute("UPDATE escalations SET first_response_at = COALESCE(first_response_at, now()) WHERE id = %s",
                     (case.id,))
    return message_id


def enqueue_send(desk: Desk, message_id: int, correlation_id: str | None) -> None:
    """Queue the delivery job (the worker sends through the transport; transient failures are retried)."""
    desk.queue.enqueue_call(
        "worker.jobs.deliver_message",
        args=(message_id, correlation_id),
        job_id=f"console{message_id:015d}",
        timeout=desk.settings.job_timeout_s,
        result_ttl=0,
        failure_ttl=FAILED_TTL_S,
        retry=DELIVERY_RETRY,
    )


def _after(desk: Desk, case: Case, sent: list[int], event: dict[str, Any]) -> None:
    for message_id in sent:
        enqueue_send(desk, message_id, f"console-{case.id}")
    if sent:
        live.publish(desk.redis, case.tenant_id, "message", case_id=case.id, conversation_id=case.conversation_id)
    live.publish(desk.redis, case.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                 **event)


def _window_open(conn: Connection[Any], case: Case) -> bool:
    return contacts.service_window_open(conn, case.contact_id)


# -- the actions -----------------------------------------------------------------------------------


def claim(desk: Desk, agent: Agent, case_id: int) -> Case:
    """Take a waiting chat. Exactly one of several concurrent claims wins; the others get Conflict."""
    with desk.pool.connection() as conn, conn.transaction():
        row = conn.execute(
            "UPDATE escalations SET status = 'taken', taken_by = %s, taken_at = now()"
            " WHERE id = %s AND tenant_id = %s AND status = ANY(%s) RETURNING id",
            (agent.id, case_id, agent.tenant_id, list(CLAIMABLE)),
        ).fetchone()
        case = load_case(conn, agent.tenant_id, case_id)
        if row is None:
            if case.status == "taken":
                if case.taken_by == agent.id:
                    raise Conflict(error_text("taken_by_you"))
                raise Conflict(error_text("taken_by", who=case.taken_by_name))
            raise Conflict(error_text("not_claimable", case=case.case_number, status=status_text(case.status)))
        if case.conversation_status == "closed":
            raise Conflict(error_text("conversation_closed", case=case.case_number))
        conn.execute("UPDATE conversations SET status = 'agent' WHERE id = %s", (case.conversation_id,))
        _record(conn, case, agent, "claim")
        sent = _greet(conn, desk, case, agent, "agent_joined")
    _after(desk, case, sent, {"action": "claim", "agent": agent.name, "agent_id": agent.id})
    return case


def take_over(desk: Desk, agent: Agent, case_id: int, from_agent_id: int) -> Case:
    """Deliberately take a chat another agent has; fails if it changed hands (or state) meanwhile."""
    with desk.pool.connection() as conn, conn.transaction():
        row = conn.execute(
            "UPDATE escalations SET taken_by = %s, taken_at = now()"
            " WHERE id = %s AND tenant_id = %s AND status = 'taken' AND taken_by = %s AND taken_by <> %s"
            " RETURNING id",
            (agent.id, case_id, agent.tenant_id, from_agent_id, agent.id),
        ).fetchone()
        case = load_case(conn, agent.tenant_id, case_id)
        if row is None:
            if case.status == "taken" and case.taken_by == agent.id:
                raise Conflict(error_text("taken_by_you"))
            status = status_text(case.status) + (f", con {case.taken_by_name}" if case.taken_by_name else "")
            raise Conflict(error_text("changed", case=case.case_number, status=status))
        _record(conn, case, agent, "takeover", from_agent_id=from_agent_id)
        sent = _greet(conn, desk, case, agent, "agent_took_over")
    _after(desk, case, sent, {"action": "takeover", "agent": agent.name, "agent_id": agent.id,
                              "from_agent_id": from_agent_id})
    return case


def _greet(conn: Connection[Any], desk: Desk, case: Case, agent: Agent, key: str) -> list[int]:
    """"Hola, soy Carlos del equipo de soporte" (only inside the 24-hour window; outside it a template is needed)."""
    if not _window_open(conn, case):
        return []
    body = wording()[key].format(agent=agent.first_name, name_part=name_part(case.customer_name),
                                 case=case.case_number)
    message_id = store_message(conn, desk, case, agent, Text(body), f"console:{case.id}:{key}:{uuid.uuid4().hex}")
    return [message_id] if message_id is not None else []


def _holding(conn: Connection[Any], agent: Agent, case_id: int, *, supervisors_too: bool = False) -> Case:
    case = load_case(conn, agent.tenant_id, case_id, lock=True)
    if case.status != "taken":
        raise Conflict(error_text("claim_first", case=case.case_number, status=status_text(case.status)))
    if case.taken_by != agent.id and not (supervisors_too and agent.can_manage):
        raise Forbidden(error_text("someone_else_has", who=case.taken_by_name, case=case.case_number))
    return case


def reply(desk: Desk, agent: Agent, case_id: int, text: str, client_key: str | None = None) -> int:
    """Send the agent's text to the customer; returns the message id (the same one for a repeated client_key)."""
    body = text.strip()
    if not body:
        raise HandoffError(error_text("reply_empty"))
    if len(body) > REPLY_MAX:
        raise HandoffError(error_text("reply_too_long", max=REPLY_MAX))
    key = f"console:{case_id}:reply:{client_key or uuid.uuid4().hex}"[:200]
    with desk.pool.connection() as conn, conn.transaction():
        case = _holding(conn, agent, case_id)
        if not _window_open(conn, case):
            raise WindowClosed(contacts.service_window_closes_at(conn, case.contact_id))
        message_id = store_message(conn, desk, case, agent, Text(body), key)
        if message_id is None:
            row: Any = conn.execute("SELECT id FROM messages WHERE idempotency_key = %s", (key,)).fetchone()
            assert row is not None
            return int(row["id"])
        _record(conn, case, agent, "reply", message_id=message_id)
    enqueue_send(desk, message_id, f"console-{case.id}")
    live.publish(desk.redis, case.tenant_id, "message", case_id=case.id, conversation_id=case.conversation_id,
                 message_id=message_id)
    return message_id


def send_template(desk: Desk, agent: Agent, case_id: int, template: Template, preview: str) -> int:
    """Send an approved template (allowed outside the 24-hour window); `preview` is what the customer reads."""
    with desk.pool.connection() as conn, conn.transaction():
        case = _holding(conn, agent, case_id)
        message_id = store_message(conn, desk, case, agent, template,
                                    f"console:{case.id}:template:{uuid.uuid4().hex}")
        assert message_id is not None
        conn.execute("UPDATE messages SET body = %s WHERE id = %s", (preview[:REPLY_MAX], message_id))
        _record(conn, case, agent, "template", message_id=message_id, name=template.name)
    enqueue_send(desk, message_id, f"console-{case.id}")
    live.publish(desk.redis, case.tenant_id, "message", case_id=case.id, conversation_id=case.conversation_id,
                 message_id=message_id)
    return message_id


def hand_back(desk: Desk, agent: Agent, case_id: int) -> Case:
    """Give the conversation back to the bot (the customer is told when the window allows)."""
    with desk.pool.connection() as conn, conn.transaction():
        case = _holding(conn, agent, case_id, supervisors_too=True)
        conn.execute("UPDATE escalations SET status = 'returned', resolved_at = now(), resolved_by = %s"
                     " WHERE id = %s", (agent.id, case.id))
        conn.execute("UPDATE conversations SET status = 'bot' WHERE id = %s AND status <> 'closed'",
                     (case.conversation_id,))
        _record(conn, case, agent, "hand_back")
        sent = []
        if _window_open(conn, case):
            body = wording()["handed_back"].format(agent=agent.first_name)
            message_id = store_message(conn, desk, case, agent, Text(body), f"console:{case.id}:hand_back")
            sent = [message_id] if message_id is not None else []
    _after(desk, case, sent, {"action": "hand_back", "agent": agent.name, "agent_id": agent.id})
    return case


def resolve(desk: Desk, agent: Agent, case_id: int, reason: str, *, ask_csat: bool) -> Case:
    """Close the case with a reason; the customer is thanked and, if asked, rates the attention 1-10."""
    reason = " ".join(reason.split())
    if not reason:
        raise HandoffError(error_text("resolve_reason"))
    with desk.pool.connection() as conn, conn.transaction():
        case = _holding(conn, agent, case_id, supervisors_too=True)
        window = _window_open(conn, case)
        conn.execute(
            "UPDATE escalations SET status = 'resolved', resolved_at = now(), resolved_by = %s,"
            " resolution_reason = %s, csat_asked_at = CASE WHEN %s THEN now() END WHERE id = %s",
            (agent.id, reason[:REASON_MAX], ask_csat and window, case.id),
        )
        conn.execute("UPDATE conversations SET status = 'closed' WHERE id = %s", (case.conversation_id,))
        _record(conn, case, agent, "resolve", reason=reason[:REASON_MAX], csat=ask_csat and window)
        sent: list[int] = []
        if window:
            w = wording()
            texts = [w["resolved"].format(case=case.case_number)]
            if ask_csat:
                texts.append(w["csat_question"].format(agent=agent.first_name))
            for index, body in enumerate(texts):
                message_id = store_message(conn, desk, case, agent, Text(body), f"console:{case.id}:resolve:{index}")
                if message_id is not None:
                    sent.append(message_id)
    _after(desk, case, sent, {"action": "resolve", "agent": agent.name, "agent_id": agent.id})
    return case


def add_note(desk: Desk, agent: Agent, case_id: int, body: str) -> int:
    """A private note between agents on the case's conversation (never sent to the customer)."""
    body = body.strip()
    if not body:
        raise HandoffError(error_text("note_empty"))
    with desk.pool.connection() as conn, conn.transaction():
        case = load_case(conn, agent.tenant_id, case_id)
        row: Any = conn.execute(
            "INSERT INTO agent_notes (tenant_id, conversation_id, agent_id, body) VALUES (%s, %s, %s, %s)"
            " RETURNING id",
            (case.tenant_id, case.conversation_id, agent.id, body[:2000]),
        ).fetchone()
        assert row is not None
    live.publish(desk.redis, case.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                 action="note", agent=agent.name, agent_id=agent.id)
    return int(row["id"])


def wait_buttons(case: Case) -> Buttons:
    """The honest "nobody is free yet" message with the callback offer (sent by the timers)."""
    w = wording()
    choices = tuple(Choice(b["id"], b["title"]) for b in w["wait_buttons"])
    return Buttons(body=w["wait_notice"].format(case=case.case_number), buttons=choices)
