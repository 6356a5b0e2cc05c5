"""Assigning a case to an agent: a supervisor gives any open case to someone, an agent hands their own on.

    waiting / callback --assign(to)--> taken by `to`
    taken by A --assign(to)--> taken by `to`

Who may: supervisors and admins assign or reassign any open case of their
company; an agent may hand a case they hold to a colleague. The assignee must
be an active agent of the same company. The caller says who held the case when
they decided (`expected_holder`, None for a case nobody had): if it changed
hands meanwhile the assignment is refused, like a take-over.

The assignee then has the chat as if they had taken it: the customer is told
who continues (inside the 24-hour window), the case shows in the assignee's
"Míos" at once (live event), and the history records who assigned it to whom.
Failure policy: `HandoffError`s are the agent's answer (4xx); database errors raise.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import Connection

from channels.outbound import Text
from console.team_texts import text
from handoff import agents, cases, live
from handoff.agents import Agent
from handoff.cases import Case, Conflict, Desk, Forbidden, HandoffError
from storage import contacts

ASSIGNABLE = ("waiting", "callback", "taken")


def assignees(conn: Connection[Any], tenant_id: int) -> list[Agent]:
    """Who a case can go to: the company's active agents, by name."""
    return [a for a in agents.for_tenant(conn, tenant_id) if a.active]


def assign(desk: Desk, actor: Agent, case_id: int, to_agent_id: int, expected_holder: int | None) -> Case:
    """Give the case to `to_agent_id`; returns the case as it was before."""
    with desk.pool.connection() as conn, conn.transaction():
        case = cases.load_case(conn, actor.tenant_id, case_id, lock=True)
        target = agents.get(conn, to_agent_id)
        if target is None or target.tenant_id != actor.tenant_id or not target.active:
            raise HandoffError(text("assign_errors", "unknown_agent"))
        if case.status not in ASSIGNABLE or case.conversation_status == "closed":
            raise Conflict(text("assign_errors", "closed", case=case.case_number,
                                status=cases.status_text(case.status)))
        holder = case.taken_by if case.status == "taken" else None
        if holder != expected_holder:
            status = cases.status_text(case.status) + (f", con {case.taken_by_name}" if holder else "")
            raise Conflict(text("assign_errors", "changed", case=case.case_number, status=status))
        if not actor.can_manage and not (holder is not None and holder == actor.id):
            raise Forbidden(text("assign_errors", "not_allowed"))
        if holder == target.id:
            raise Conflict(text("assign_errors", "same_agent", who=target.name, case=case.case_number))
        conn.execute("UPDATE escalations SET status = 'taken', taken_by = %s, taken_at = now() WHERE id = %s",
                     (target.id, case.id))
        conn.execute("UPDATE conversations SET status = 'agent' WHERE id = %s", (case.conversation_id,))
        conn.execute(
            "INSERT INTO handoff_events (tenant_id, escalation_id, agent_id, action, data)"
            " VALUES (%s, %s, %s, 'assign', jsonb_build_object('to_agent_id', %s::int, 'to_agent', %s::text,"
            " 'from_agent_id', %s::int, 'from_agent', %s::text))",
            (case.tenant_id, case.id, actor.id, target.id, target.name, holder,
             case.taken_by_name if holder else None),
        )
        sent = _greet(conn, desk, case, target, "agent_took_over" if holder else "agent_joined")
    for message_id in sent:
        cases.enqueue_send(desk, message_id, f"console-{case.id}")
    if sent:
        live.publish(desk.redis, case.tenant_id, "message", case_id=case.id, conversation_id=case.conversation_id)
    live.publish(desk.redis, case.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                 action="assign", agent=actor.name, agent_id=actor.id, to_agent_id=target.id,
                 to_agent=target.name, from_agent_id=holder)
    return case


def parse_agent_id(value: object) -> int:
    """The assignee's id from the request body; HandoffError when missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise HandoffError(text("assign_errors", "no_agent"))
    return int(value)


def _greet(conn: Connection[Any], desk: Desk, case: Case, target: Agent, key: str) -> list[int]:
    """The assignee introduces themself to the customer (only inside the 24-hour window)."""
    if not contacts.service_window_open(conn, case.contact_id):
        return []
    body = cases.wording()[key].format(agent=target.first_name, name_part=cases.name_part(case.customer_name),
                                         case=case.case_number)
    message_id = cases.store_message(conn, desk, case, target, Text(body),
                                       f"console:{case.id}:assign:{uuid.uuid4().hex}")
    return [message_id] if message_id is not None else []
