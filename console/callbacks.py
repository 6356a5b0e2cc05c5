"""Calls the customer asked for ("📞 Que me llamen"): the number to call and what came of the call.

A case has a call pending from the moment the customer pressed the button (`callback_requested` in
`handoff_events`, written by chatbot/customer_side.py) while the case is open, until a call ends it. The
agent records each call ("Ya llamé") with an outcome and an optional note, stored as a `called` row in
`handoff_events` (so it shows in the case history):

- `resolved` (contestó y se resolvió): the case is resolved and the conversation closed; the customer is
  told the case number was closed (within the 24-hour window).
- `no_answer` (no contestó): the case stays open and the call stays pending; the customer is told we tried.
- `call_later` (pidió que lo llamen después): the case stays open and the call stays pending.
- `wrong_number` (número equivocado): nobody can be called at that number, so the call ends and a waiting
  callback case goes back to the queue as waiting, to be answered by chat; the customer is told so.

Any agent of the company may record a call on a case nobody holds; a case someone holds is theirs (or a
supervisor's). Failure policy: `HandoffError`s are the caller's answer (4xx); database errors raise; live
events never raise.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from channels.outbound import Text
from handoff import cases, live
from handoff.agents import Agent
from handoff.cases import Case, Conflict, Desk, Forbidden, HandoffError, error_text, wording
from storage import contacts

OUTCOMES = ("resolved", "no_answer", "wrong_number", "call_later")
OPEN = ("waiting", "taken", "callback")
NOTE_MAX = 500
# Outcomes after which the customer still waits for a call.
_STILL_PENDING = ("no_answer", "call_later")
_TOLD = {"no_answer": "call_missed", "wrong_number": "call_wrong_number", "resolved": "resolved"}


def pending(conn: Connection[Any], case: Case) -> bool:
    """Whether the customer of this open case is waiting for a call."""
    if case.status not in OPEN:
        return False
    row = conn.execute(
        "SELECT action, data FROM handoff_events WHERE escalation_id = %s"
        " AND action IN ('callback_requested', 'called') ORDER BY id DESC LIMIT 1",
        (case.id,),
    ).fetchone()
    if row is None:
        return False
    return row["action"] == "callback_requested" or (row["data"] or {}).get("outcome") in _STILL_PENDING


def record_call(desk: Desk, agent: Agent, case_id: int, outcome: str, note: str = "") -> Case:
    """Record a call to the customer and do what its outcome means (see the module's docstring)."""
    if outcome not in OUTCOMES:
        raise HandoffError(error_text("call_outcome"))
    note = " ".join(note.split())
    if len(note) > NOTE_MAX:
        raise HandoffError(error_text("note_too_long", max=NOTE_MAX))
    sent: list[int] = []
    with desk.pool.connection() as conn, conn.transaction():
        case = cases.load_case(conn, agent.tenant_id, case_id, lock=True)
        if case.status == "taken" and case.taken_by != agent.id and not agent.can_manage:
            raise Forbidden(error_text("someone_else_has", who=case.taken_by_name, case=case.case_number))
        if not pending(conn, case):
            raise Conflict(error_text("not_a_callback", case=case.case_number))
        data: dict[str, Any] = {"outcome": outcome, **({"note": note} if note else {})}
        conn.execute(
            "INSERT INTO handoff_events (tenant_id, escalation_id, agent_id, action, data)"
            " VALUES (%s, %s, %s, 'called', %s)",
            (case.tenant_id, case.id, agent.id, Jsonb(data)),
        )
        if outcome == "resolved":
            reason = wording()["call_outcomes"]["resolved"] + (f": {note}" if note else "")
            conn.execute(
                "UPDATE escalations SET status = 'resolved', resolved_at = now(), resolved_by = %s,"
                " resolution_reason = %s WHERE id = %s",
                (agent.id, reason[:cases.REASON_MAX], case.id),
            )
            conn.execute("UPDATE conversations SET status = 'closed' WHERE id = %s", (case.conversation_id,))
        elif outcome == "wrong_number" and case.status == "callback":
            conn.execute("UPDATE escalations SET status = 'waiting', callback_due_at = NULL WHERE id = %s",
                         (case.id,))
        told = _TOLD.get(outcome)
        if told and contacts.service_window_open(conn, case.contact_id):
            body = wording()[told].format(case=case.case_number)
            message_id = cases.store_message(conn, desk, case, agent, Text(body),
                                               f"console:{case.id}:called:{uuid.uuid4().hex}")
            sent = [message_id] if message_id is not None else []
    for message_id in sent:
        cases.enqueue_send(desk, message_id, f"console-{case.id}")
    if sent:
        live.publish(desk.redis, case.tenant_id, "message", case_id=case.id, conversation_id=case.conversation_id)
    live.publish(desk.redis, case.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                 action="called", outcome=outcome, agent=agent.name, agent_id=agent.id)
    return case
