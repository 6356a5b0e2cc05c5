"""The company admin's "Mejoras" page: the messages the bot did not answer well, grouped, and what to do about them.

Admins only (others get 403). For a date range (by default the last 30 days,
in the company's time zone) the page lists the groups of similar messages the
bot did not understand or that led to a case (services.unanswered_groups),
each with its count in the range and in the range of the same length before,
examples (masked), first and last time seen, and three short forms that turn
it into a new FAQ answer, a new phrase for an intent, or a canned answer for
agents (console.improvement_actions). The history lists every change with
who made it and when, how many similar messages came before and after it
(the same length of time on each side), and "Deshacer". A change is named by
its row id: another company's answers 404, as an id nobody has.
Message bodies are the company's customers' data: this page is its admins' only, and nothing here logs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from psycopg import Connection

from console import auth
from console.blueprint import bp, state
from console.database import get_pool
from console.improvement_actions import ImprovementError, add_canned, add_faq, add_phrase, undo
from handoff.agents import Agent
from services import unanswered_groups
from storage import improvement_changes, intent_phrases, unanswered
from storage.improvement_changes import Change
from storage.unanswered import Unanswered

log = logging.getLogger(__name__)

NOT_ADMIN = "Solo los administradores pueden ver y usar la página de mejoras."
DEFAULT_DAYS, MAX_DAYS = 30, 366
GROUPS_SHOWN = 30
ACTIONS = ("faq", "phrase", "canned")


def _admin() -> Agent:
    agent = auth.require_agent()
    if agent.role != "admin":
        abort(403, description=NOT_ADMIN)
    return agent


@dataclass(frozen=True)
class Period:
    first: date  # both days included, in the company's time zone
    last: date
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def _zone(conn: Connection[Any], tenant_id: int) -> ZoneInfo:
    row: Any = conn.execute("SELECT timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    try:
        return ZoneInfo(row["timezone"]) if row else ZoneInfo("UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _period(zone: ZoneInfo) -> Period:
    """The range the admin asked for (?desde=&hasta=, ISO days; a form carries them too), else the last
    DEFAULT_DAYS days up to today."""
    today = datetime.now(zone).date()
    asked = request.form if request.method == "POST" else request.args
    last = _day(asked.get("hasta")) or today
    first = _day(asked.get("desde")) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        first, last = last, first
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    start = datetime.combine(first, time.min, zone)
    return Period(first, last, start, datetime.combine(last + timedelta(days=1), time.min, zone))


def _effect(change: Change, rows: list[Unanswered], now: datetime, period: Period) -> dict[str, int] | None:
    """Messages like the change's group in the same length of time before and after it (within what was read)."""
    after_end = min(now, period.end)
    span = after_end - change.created_at
    if span <= timedelta(0) or change.created_at - span < period.start - (period.end - period.start):
        return None
    like = unanswered_groups.count_like
    return {"before": like(rows, change.group_text, since=change.created_at - span, until=change.created_at),
            "after": like(rows, change.group_text, since=change.created_at, until=after_end)}


def _when(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%d/%m/%Y %H:%M") if at else ""


@bp.get("/improvements")
@auth.login_required
def improvements_page() -> Any:
    return _page(_admin())


def _page(agent: Agent, *, error: str | None = None, form: dict[str, str] | None = None, status: int = 200) -> Any:
    """The page; after a refused form, with the reason and the admin's values in that group's open form."""
    with get_pool().connection() as conn:
        zone = _zone(conn, agent.tenant_id)
        period = _period(zone)
        current = unanswered.between(conn, agent.tenant_id, period.start, period.end)
        before = unanswered.between(conn, agent.tenant_id, period.start - (period.end - period.start), period.start)
        changes = improvement_changes.history(conn, agent.tenant_id)
    grouping = unanswered_groups.group(current, before)
    now = datetime.now(zone)
    history = [{"change": c, "who": c.author or "Un agente que ya no está", "when": _when(c.created_at, zone),
                "undone_when": _when(c.undone_at, zone), "effect": _effect(c, [*current, *before], now, period)}
               for c in changes]
    groups = [{"group": g, "first": _when(g.first_seen, zone), "last": _when(g.last_seen, zone)}
              for g in grouping.groups[:GROUPS_SHOWN]]
    return render_template(
        "console/improvements.html", period=period, grouping=grouping, groups=groups, history=history,
        intents=intent_phrases.INTENT_LABELS, error=error, form=form or {}), status


@bp.post("/improvements")
@auth.login_required
def improvements_make() -> Any:
    """One of the three changes from a group (`action` faq / phrase / canned, `group_text` the group's text)."""
    agent = _admin()
    form = request.form
    action = form.get("action", "")
    if action not in ACTIONS:
        abort(400, description="No entendimos qué querías hacer.")
    group_text = " ".join(form.get("group_text", "").split())[:300]
    if not group_text:
        abort(400, description="Falta el grupo de mensajes.")
    redis_conn = state().desk.redis
    try:
        with get_pool().connection() as conn:
            if action == "faq":
                add_faq(conn, redis_conn, tenant_id=agent.tenant_id, agent_id=agent.id, group_text=group_text,
                        question=form.get("question", ""), answer=form.get("answer", ""),
                        keywords=form.get("keywords", ""))
                flash("Listo: el asistente ya responde esa pregunta. La verás en «Preguntas frecuentes».")
            elif action == "phrase":
                add_phrase(conn, redis_conn, tenant_id=agent.tenant_id, agent_id=agent.id, group_text=group_text,
                           intent=form.get("intent", ""), phrase=form.get("phrase", ""))
                flash("Listo: el asistente ya entiende esa frase.")
            else:
                add_canned(conn, tenant_id=agent.tenant_id, agent_id=agent.id, group_text=group_text,
                           title=form.get("title", ""), body=form.get("body", ""))
                flash("Listo: los agentes ya tienen esa respuesta rápida.")
    except ImprovementError as exc:  # the page again, the form open with what the admin wrote
        return _page(agent, error=f"No se guardó: {exc}", form={**form, "group_text": group_text}, status=400)
    return redirect(_back())


@bp.post("/improvements/changes/<int:change_id>/undo")
@auth.login_required
def improvements_undo(change_id: int) -> Any:
    """Undo one of the company's changes (a new FAQ version without the entry, the phrase or answer deleted)."""
    agent = _admin()
    with get_pool().connection() as conn:
        change = improvement_changes.by_id(conn, agent.tenant_id, change_id)
        if change is None:
            abort(404, description="No encontramos ese cambio.")
        try:
            flash(undo(conn, state().desk.redis, change, agent.id))
        except ImprovementError as exc:
            flash(str(exc))
    return redirect(_back())


def _back() -> str:
    """The page, at the range the admin was looking at (forms carry it)."""
    kept: dict[str, Any] = {key: value for key in ("desde", "hasta")
                            if _day(value := request.form.get(key, "")) is not None}
    return url_for(".improvements_page", **kept)
