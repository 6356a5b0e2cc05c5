"""Timed console work, run by the scheduler (leader only):

- a waiting chat nobody took within CONSOLE_WAIT_NOTICE_S: the customer is told
  honestly that every agent is still busy and offered a call back (buttons;
  the answer is handled by `chatbot.customer_side`). Once per case.
- a callback requested out of hours becomes due at the company's opening time
  (support hours from the company's own logistics core): it is marked due, its SLA clock
  starts (console.case_queue ranks it from then on), and the consoles are told.

Failure policy: a case's database error raises (the next run tries again);
the core being unreachable only postpones the callbacks; live events never raise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core_api_client import CoreError
from handoff import cases, live
from handoff.cases import Desk
from runtime.leader import Leader
from runtime.resources import Runtime
from services import ServiceContext, business
from storage import contacts

log = logging.getLogger(__name__)

INTERVAL_S = 30
BATCH = 50


@dataclass(frozen=True)
class Ran:
    wait_notices: int
    callbacks_due: int


def register_jobs(scheduler: Any, rt: Runtime, leader: Leader) -> None:
    """Add the console's timers to the scheduler process (they run only where the leader lease is held)."""

    def tick() -> None:
        if leader.holds():
            run_due(rt)

    scheduler.add_job(tick, "interval", seconds=INTERVAL_S, id="console_timers", max_instances=1, coalesce=True)


def run_due(rt: Runtime, now: datetime | None = None) -> Ran:
    now = now or datetime.now(UTC)
    desk = Desk(settings=rt.settings, pool=rt.pool, redis=rt.redis, queue=rt.queue)
    return Ran(_wait_notices(desk, now), _callbacks_due(rt, desk, now))


def _wait_notices(desk: Desk, now: datetime) -> int:
    cutoff = now - timedelta(seconds=desk.settings.console_wait_notice_s)
    told = 0
    with desk.pool.connection() as conn:
        due: list[Any] = conn.execute(
            "SELECT id, tenant_id FROM escalations WHERE status = 'waiting' AND wait_notice_at IS NULL"
            " AND created_at < %s ORDER BY created_at LIMIT %s",
            (cutoff, BATCH),
        ).fetchall()
    for row in due:
        sent: list[int] = []
        with desk.pool.connection() as conn, conn.transaction():
            case = cases.load_case(conn, row["tenant_id"], row["id"], lock=True)
            marked: Any = conn.execute(
                "UPDATE escalations SET wait_notice_at = %s WHERE id = %s AND status = 'waiting'"
                " AND wait_notice_at IS NULL RETURNING id", (now, case.id),
            ).fetchone()
            if marked is None:
                continue
            if contacts.service_window_open(conn, case.contact_id, now):
                message_id = cases.store_message(conn, desk, case, None, cases.wait_buttons(case),
                                                   f"console:{case.id}:wait_notice")
                sent = [message_id] if message_id is not None else []
            conn.execute("INSERT INTO handoff_events (tenant_id, escalation_id, action, data)"
                         " VALUES (%s, %s, 'wait_notice', jsonb_build_object('told', %s))",
                         (case.tenant_id, case.id, bool(sent)))
        for message_id in sent:
            cases.enqueue_send(desk, message_id, f"console-{case.id}")
        live.publish(desk.redis, case.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                     action="wait_notice")
        told += 1
    return told


def _callbacks_due(rt: Runtime, desk: Desk, now: datetime) -> int:
    with desk.pool.connection() as conn:
        pending: list[Any] = conn.execute(
            "SELECT e.id, e.tenant_id, e.conversation_id, t.slug, t.name, t.timezone FROM escalations e"
            " JOIN tenants t ON t.id = e.tenant_id WHERE e.status = 'callback' AND e.callback_due_at IS NULL"
            " ORDER BY e.created_at LIMIT %s",
            (BATCH,),
        ).fetchall()
    due = 0
    open_now: dict[int, bool] = {}  # per tenant: each company's own hours, from its own core
    for row in pending:
        if row["tenant_id"] not in open_now:
            open_now[row["tenant_id"]] = _support_open(rt, row, now)
        if not open_now[row["tenant_id"]]:
            continue
        with desk.pool.connection() as conn, conn.transaction():
            marked = conn.execute(
                "UPDATE escalations SET callback_due_at = %s WHERE id = %s AND callback_due_at IS NULL"
                " AND status = 'callback' RETURNING id", (now, row["id"]),
            ).fetchone()
            if marked is None:
                continue
            conn.execute("INSERT INTO handoff_events (tenant_id, escalation_id, action)"
                         " VALUES (%s, %s, 'callback_due')", (row["tenant_id"], row["id"]))
        live.publish(desk.redis, row["tenant_id"], "handoff", case_id=row["id"],
                     conversation_id=row["conversation_id"], action="callback_due")
        due += 1
    return due


def _support_open(rt: Runtime, tenant: Any, now: datetime) -> bool:
    """Whether the company's support hours (its admin's, else its own core's; holidays closed) cover `now`;
    False when nobody can say."""
    settings = rt.settings
    try:
        zone = ZoneInfo(tenant["timezone"])
    except (KeyError, ValueError):
        zone = ZoneInfo(settings.tenant_timezone)
    core = rt.cores.client(tenant["tenant_id"])
    schedule = rt.rules.schedule(tenant["tenant_id"])  # the hours its admin set, else its own core's
    ctx = ServiceContext(core=core, redis=rt.redis, tenant_slug=tenant["slug"], company_name=tenant["name"],
                         timezone=zone, now=now, support_hours=schedule.support_hours, holidays=schedule.closed_days)
    try:
        hours = business.support_hours(ctx, None if schedule.support_hours else core.company().support_hours)
    except CoreError as exc:
        log.warning("support hours unavailable; callbacks wait: %s", type(exc).__name__)
        return False
    return hours is not None and business.is_open(ctx, hours, now)
