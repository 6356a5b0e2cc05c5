"""The company admin's pages for its own rules: "Horario" (support hours, holidays, quiet hours, reminder
days) and "Plantillas" (the approved WhatsApp templates of its notifications).

Admins only (403 for other roles). Every read and write is scoped to the admin's own tenant: another
company's template or holiday id answers 404, the same answer as an id nobody has. Each save is
announced (`storage.tenant_changes`), so the workers use it within about a second.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from config import Settings
from console import auth, limits_view, whatsapp_notices
from console.blueprint import bp, core, state, tenant_slug
from console.database import get_pool
from core_api_client import CoreError
from handoff.agents import Agent
from notifications import tenant_templates as templates
from notifications.templates import MAX_BUTTON_TITLE, MAX_BUTTONS
from services import business
from storage import tenant_hours
from storage import tenant_templates as template_rows
from storage.tenant_hours import WEEKDAYS, HoursError, Span

log = logging.getLogger(__name__)

DAY_NAMES = dict(zip(WEEKDAYS, ("Lunes", "Martes", "Miércoles", "Jueves", "Viernes", "Sábado", "Domingo"),
                     strict=True))
REMINDER_FIELDS = tenant_hours.REMINDER_DAYS_MAX


def _admin() -> Agent:
    agent = auth.require_agent()
    if agent.role != "admin":
        abort(403, description="Solo los administradores pueden cambiar el horario y las plantillas.")
    return agent


# -- Horario ---------------------------------------------------------------------------------------------------


def _core_hours(tenant_id: int) -> dict[str, Span] | None:
    """The hours the company's core gives, by weekday (None when it cannot answer)."""
    try:
        hours = core(tenant_id).company().support_hours
    except CoreError as exc:
        log.warning("core hours unavailable for the hours page: %s", type(exc).__name__)
        return None
    by_day: dict[str, Span] = {}
    for weekday, key in enumerate(WEEKDAYS):
        span = business.span_on(hours, weekday)
        by_day[key] = (f"{span[0]:%H:%M}", f"{span[1]:%H:%M}") if span else None
    return by_day


def _hours_from_form(form: Any) -> dict[str, Span]:
    return {key: None if form.get(f"{key}_closed") else (form.get(f"{key}_opens", ""), form.get(f"{key}_closes", ""))
            for key in WEEKDAYS}


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


def _reminder_days(form: Any) -> list[int]:
    days = []
    for n in range(REMINDER_FIELDS):
        raw = (form.get(f"reminder_{n}") or "").strip()
        if not raw:
            continue
        if not raw.isdigit():
            raise HoursError("Los días de recordatorio son números enteros, por ejemplo 3.")
        days.append(int(raw))
    return days


def _save_hours(action: str, form: Any, tenant_id: int, settings: Settings) -> str:
    """Apply one of the hours page's forms; returns what to tell the admin. Raises HoursError."""
    pool, redis_conn = get_pool(), state().desk.redis
    if action == "hours":
        tenant_hours.set_support_hours(pool, redis_conn, tenant_id, _hours_from_form(form))
        return "Horario guardado. El bot lo usa en unos segundos."
    if action == "core_hours":
        tenant_hours.set_support_hours(pool, redis_conn, tenant_id, None)
        return "Listo: se usa otra vez el horario del sistema."
    if action == "holiday_add":
        tenant_hours.add_holiday(pool, redis_conn, tenant_id, _day(form.get("day", "")), form.get("name", ""))
        return "Feriado agregado."
    if action == "rules":
        quiet = None if form.get("quiet_default") else (form.get("quiet_start", ""), form.get("quiet_end", ""))
        days = None if form.get("reminders_default") else _reminder_days(form)
        tenant_hours.set_notification_rules(pool, redis_conn, tenant_id, quiet_hours=quiet, reminder_days=days,
                                            unclaimed_days=settings.unclaimed_days)
        return "Avisos guardados."
    abort(400, description="No entendimos qué querías guardar.")


@bp.route("/hours", methods=["GET", "POST"])
@auth.login_required
def hours_page() -> Any:
    """The company's support hours per weekday (or its core's), holidays, quiet hours and reminder days."""
    agent = _admin()
    settings = state().settings
    error, form_values = None, None
    if request.method == "POST":
        action = request.form.get("action", "")
        try:
            if action == "holiday_remove":
                holiday_id = request.form.get("holiday_id", "")
                if not holiday_id.isdigit() or not tenant_hours.remove_holiday(
                        get_pool(), state().desk.redis, agent.tenant_id, int(holiday_id)):
                    abort(404, description="No encontramos ese feriado.")
                flash("Feriado quitado.")
            else:
                flash(_save_hours(action, request.form, agent.tenant_id, settings))
            log.info("company hours changed", extra={"agent_id": agent.id, "action": action})
            return redirect(url_for(".hours_page"))
        except HoursError as exc:
            error, form_values = str(exc), request.form
    schedule = tenant_hours.read(get_pool(), agent.tenant_id)
    core_hours = _core_hours(agent.tenant_id)
    shown = schedule.support_hours or core_hours or dict.fromkeys(WEEKDAYS)
    if form_values is not None and form_values.get("action") == "hours":
        shown = {key: None if form_values.get(f"{key}_closed") else
                 (form_values.get(f"{key}_opens", ""), form_values.get(f"{key}_closes", "")) for key in WEEKDAYS}
    reminders = list(schedule.reminder_days or settings.reminder_days)
    return render_template(
        "console/hours.html", error=error, days=[(key, DAY_NAMES[key], shown.get(key)) for key in WEEKDAYS],
        own_hours=schedule.support_hours is not None, core_hours=core_hours,
        core_lines=[(DAY_NAMES[k], v) for k, v in core_hours.items()] if core_hours else [],
        holidays=schedule.holidays, today=date.today().isoformat(),  # noqa: DTZ011 - a form's minimum only
        quiet=schedule.quiet_hours or (settings.quiet_hours_start, settings.quiet_hours_end),
        own_quiet=schedule.quiet_hours is not None,
        default_quiet=(settings.quiet_hours_start, settings.quiet_hours_end),
        reminders=reminders + [None] * (REMINDER_FIELDS - len(reminders)), own_reminders=schedule.reminder_days
        is not None, default_reminders=settings.reminder_days, unclaimed_days=settings.unclaimed_days,
    ), 400 if error else 200


# -- Plantillas ------------------------------------------------------------------------------------------------


def _shown(row: template_rows.TemplateRow) -> dict[str, Any]:
    labels = dict(templates.VALUE_LABELS)
    actions = dict(templates.ACTIONS_BY_KIND.get(row.kind, ()))
    return {"id": row.id, "kind": row.kind, "label": templates.KIND_LABELS.get(row.kind, row.kind),
            "name": row.name, "language": templates.LANGUAGES.get(row.language, row.language), "body": row.body,
            "params": [(n, labels.get(p, p)) for n, p in enumerate(row.params, 1)],
            "buttons": [(title, actions.get(payload, "")) for title, payload in row.buttons],
            "content_sid": row.twilio_content_sid, "enabled": row.enabled}


@bp.get("/templates")
@auth.login_required
def templates_page() -> Any:
    """Every notification's approved template (seeded from templates.yaml the first time)."""
    agent = _admin()
    pool = get_pool()
    templates.seed(pool, state().desk.redis, agent.tenant_id, tenant_slug(agent.tenant_id))
    rows = template_rows.for_tenant(pool, agent.tenant_id)
    order = list(templates.KIND_LABELS)
    rows = tuple(sorted(rows, key=lambda r: order.index(r.kind) if r.kind in order else len(order)))
    with pool.connection() as conn:  # issue 17: each template's state at Meta and Meta's notices
        whatsapp = whatsapp_notices.templates_context(conn, agent.tenant_id, tenant_slug(agent.tenant_id), rows)
    return render_template("console/templates.html", templates=[_shown(r) for r in rows],
                           limit=limits_view.limit_context(agent.tenant_id), whatsapp=whatsapp)


@dataclass
class _Draft:
    """What the edit form shows: the row, or what the admin typed when it was refused."""

    name: str
    language: str
    body: str
    params: list[str]
    buttons: list[tuple[str, str]]
    content_sid: str
    enabled: bool


@bp.route("/templates/<int:template_id>", methods=["GET", "POST"])
@auth.login_required
def template_edit(template_id: int) -> Any:
    """Edit one template: its name, language, text, the value of each {{n}}, its buttons, Twilio's ContentSid."""
    agent = _admin()
    pool = get_pool()
    row = template_rows.get(pool, agent.tenant_id, template_id)
    if row is None:
        abort(404, description="No encontramos esa plantilla.")
    error = None
    value_count = len(templates.VALUES_BY_KIND.get(row.kind, ()))
    draft = _Draft(row.name, row.language, row.body, list(row.params), list(row.buttons),
                   row.twilio_content_sid or "", row.enabled)
    if request.method == "POST":
        form = request.form
        draft = _Draft(form.get("name", ""), form.get("language", ""), form.get("body", ""),
                       [form.get(f"param_{n}", "") for n in range(1, value_count + 1)],
                       [(form.get(f"button_{n}_title", ""), form.get(f"button_{n}_action", ""))
                        for n in range(MAX_BUTTONS)],
                       form.get("content_sid", ""), bool(form.get("enabled")))
        try:
            fields = templates.checked(row, name=draft.name, language=draft.language, body=draft.body,
                                       params=draft.params, buttons=draft.buttons,
                                       twilio_content_sid=draft.content_sid, enabled=draft.enabled)
        except templates.TemplateFormError as exc:
            error = str(exc)
        else:
            if not template_rows.update(pool, state().desk.redis, agent.tenant_id, row.id, fields):
                abort(404, description="No encontramos esa plantilla.")
            log.info("notification template changed", extra={"agent_id": agent.id, "template_id": row.id})
            flash("Plantilla guardada. El próximo aviso ya sale con este texto.")
            return redirect(url_for(".templates_page"))
    params = (draft.params + [""] * value_count)[:value_count]
    buttons = (draft.buttons + [("", "")] * MAX_BUTTONS)[:MAX_BUTTONS]
    return render_template(
        "console/template_edit.html", template=row, label=templates.KIND_LABELS.get(row.kind, row.kind),
        shown=draft, params=params, buttons=buttons, error=error, values=templates.value_labels(row.kind),
        actions=templates.ACTIONS_BY_KIND.get(row.kind, ()), languages=templates.LANGUAGES,
        max_title=MAX_BUTTON_TITLE,
    ), 400 if error else 200
