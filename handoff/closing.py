"""When support closes with customers still waiting: each is told once, honestly, what happens next.

Run by the scheduler every `INTERVAL_S` (leader only). Once the company's support hours have ended
(the hours its admin set in the console, else its own logistics core's; holidays closed), every case
still waiting for a person (status `waiting` or `callback`: no agent took it) that was opened before
that closing gets one message with the case number: a call at the next opening when the customer
asked to be called back (the "📞 Que me llamen" button of the waiting notice), otherwise a message in
this chat at the next opening. Cases opened after the closing are not told again: the bot's hand-over
message already said the team was closed and when it opens.

Exactly once per case per closing: the case row is locked, a `closing_notice` line in its history
(holding the closing's time) marks it told, and the message's idempotency key names the closing, so
two runs or two schedulers send one message. Only within `NOTICE_WITHIN` of the closing: a scheduler
that was down does not write to customers in the middle of the night. Through the normal outbound
path: inside WhatsApp's 24-hour window a free text; outside it only an approved template may go and
none exists for this notice, so it is skipped (recorded with told=false, and logged).

Failure policy: a case's database error raises (the next run tries again); the core being
unreachable postpones the notices (logged); live events never raise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from channels.outbound import Text
from core_api_client import CoreError
from handoff import cases, live
from handoff.cases import Desk
from runtime.leader import Leader
from runtime.resources import Runtime
from services import ServiceContext, business, clock, relative_day
from services.business import HoursSpec
from storage import contacts

log = logging.getLogger(__name__)

INTERVAL_S = 120
BATCH = 100
NOTICE_WITHIN = timedelta(hours=2)
WAITING = ("waiting", "callback")


@dataclass(frozen=True)
class Closing:
    """The support hours' last end before `now` and the next opening after it, on the company's clock."""

    closed_at: datetime
    opens_at: datetime


def register_jobs(scheduler: Any, rt: Runtime, leader: Leader) -> None:
    """Add the closing notices to the scheduler process (they run only where the leader lease is held)."""

    def tick() -> None:
        if leader.holds():
            run_due(rt)

    scheduler.add_job(tick, "interval", seconds=INTERVAL_S, id="closing_notices", max_instances=1, coalesce=True)


def closing(ctx: ServiceContext, hours: HoursSpec, now: datetime) -> Closing | None:
    """The closing `now` follows (None while support is open, or when the hours never open)."""
    if business.is_open(ctx, hours, now):
        return None
    local = now.astimezone(ctx.timezone)
    opens_at = business.next_opening(ctx, hours, now)
    if opens_at is None:
        return None
    for offset in range(8):
        day = local.date() - timedelta(days=offset)
        span = business.span_on_date(hours, day)
        if span is None:
            continue
        closed_at = datetime.combine(day, span[1], tzinfo=ctx.timezone)
        if closed_at <= local:
            return Closing(closed_at, opens_at)
    return None


def run_due(rt: Runtime, now: datetime | None = None) -> int:
    """Tell the waiting customers of every company whose support just closed; returns how many were told."""
    now = now or datetime.now(UTC)
    desk = Desk(settings=rt.settings, pool=rt.pool, redis=rt.redis, queue=rt.queue)
    with desk.pool.connection() as conn:
        tenants: list[Any] = conn.execute(
            "SELECT DISTINCT t.id, t.slug, t.name, t.timezone FROM escalations e JOIN tenants t ON t.id = e.tenant_id"
            " WHERE e.status = ANY(%s)",
            (list(WAITING),),
        ).fetchall()
    if not tenants:
        return 0
    settings = rt.settings
    told = 0
    for tenant in tenants:
        core = rt.cores.client(int(tenant["id"]))
        schedule = rt.rules.schedule(int(tenant["id"]))  # the hours its admin set, else its own core's
        ctx = ServiceContext(core=core, redis=rt.redis, tenant_slug=tenant["slug"], company_name=tenant["name"],
                             timezone=_zone(tenant["timezone"], settings.tenant_timezone), now=now,
                             support_hours=schedule.support_hours, holidays=schedule.closed_days)
        try:
            hours = business.support_hours(ctx, None if schedule.support_hours else core.company().support_hours)
        except CoreError as exc:
            log.warning("support hours unavailable; closing notices wait: %s", type(exc).__name__,
                        extra={"tenant_id": tenant["id"]})
            continue
        found = closing(ctx, hours, now) if hours else None
        if found is None or now - found.closed_at > NOTICE_WITHIN:
            continue
        told += _tell_waiting(desk, ctx, int(tenant["id"]), found)
    return told


def _zone(name: str | None, fallback: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or fallback)
    except (KeyError, ValueError):
        return ZoneInfo(fallback)


def _tell_waiting(desk: Desk, ctx: ServiceContext, tenant_id: int, found: Closing) -> int:
    mark = found.closed_at.isoformat()
    with desk.pool.connection() as conn:
        due: list[Any] = conn.execute(
            "SELECT e.id FROM escalations e WHERE e.tenant_id = %s AND e.status = ANY(%s) AND e.created_at < %s"
            " AND NOT EXISTS (SELECT 1 FROM handoff_events h WHERE h.escalation_id = e.id"
            "                 AND h.action = 'closing_notice' AND h.data->>'closing' = %s)"
            " ORDER BY e.created_at LIMIT %s",
            (tenant_id, list(WAITING), found.closed_at, mark, BATCH),
        ).fetchall()
    told = 0
    for row in due:
        if _tell(desk, ctx, tenant_id, int(row["id"]), found):
            told += 1
    return told


def _tell(desk: Desk, ctx: ServiceContext, tenant_id: int, case_id: int, found: Closing) -> bool:
    """One case: its notice stored and queued (True), or nothing when another run told it or it moved on."""
    mark = found.closed_at.isoformat()
    sent: list[int] = []
    with desk.pool.connection() as conn, conn.transaction():
        case = cases.load_case(conn, tenant_id, case_id, lock=True)
        already = conn.execute(
            "SELECT 1 FROM handoff_events WHERE escalation_id = %s AND action = 'closing_notice'"
            " AND data->>'closing' = %s",
            (case.id, mark),
        ).fetchone()
        if case.status not in WAITING or already is not None:
            return False
        window = contacts.service_window_open(conn, case.contact_id, ctx.now)
        if window:
            asked_for_call = case.status == "callback" and conn.execute(
                "SELECT 1 FROM handoff_events WHERE escalation_id = %s AND action = 'callback_requested'", (case.id,),
            ).fetchone() is not None
            body = notice_text(ctx, case, found, asked_for_call=asked_for_call)
            message_id = cases.store_message(conn, desk, case, None, Text(body),
                                               f"console:{case.id}:closing:{found.closed_at:%Y%m%dT%H%M}")
            sent = [message_id] if message_id is not None else []
        else:
            log.info("closing notice skipped: outside the 24-hour window and no approved template",
                     extra={"case_id": case.id})
        conn.execute("INSERT INTO handoff_events (tenant_id, escalation_id, action, data)"
                     " VALUES (%s, %s, 'closing_notice', jsonb_build_object('closing', %s::text, 'told', %s))",
                     (case.tenant_id, case.id, mark, bool(sent)))
    for message_id in sent:
        cases.enqueue_send(desk, message_id, f"console-{case.id}")
    if sent:
        live.publish(desk.redis, case.tenant_id, "message", case_id=case.id, conversation_id=case.conversation_id)
    live.publish(desk.redis, case.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                 action="closing_notice")
    return bool(sent)


def notice_text(ctx: ServiceContext, case: cases.Case, found: Closing, *, asked_for_call: bool) -> str:
    """"Nuestro equipo ya cerró por hoy…": a call (when asked for) or a message here, at the next opening."""
    opens = found.opens_at.astimezone(ctx.timezone)
    key = "closing_callback" if asked_for_call else "closing_wait"
    return str(cases.wording()[key]).format(when=relative_day(ctx, opens), time=clock(opens.time()),
                                              case=case.case_number)
