"""The `/console` blueprint: pages for support agents and the small JSON API their JavaScript calls.

Pages: the queue and one case (login, password reset, canned answers and agents: `console.account`).
API (JSON, session + CSRF header): queue, case detail (transcript, notes,
facts, summary), claim, takeover, reply, template, hand-back, resolve, notes,
typing, and `/console/api/events` (server-sent events, see `handoff.live`).
Every query is limited to the logged-in agent's tenant; another tenant's case
answers 404. Bad input answers 400 with the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Flask, Response, abort, jsonify, render_template, request, stream_with_context
from rq import Queue

from config import Settings
from console import (
    account,  # noqa: F401 - its routes (login, password, canned answers, agents) join `bp`
    auth,
    callbacks,
    canned,
    case_queue,
    casefile,
    company_rules,  # noqa: F401 - its routes (the admin's "Horario" and "Plantillas") join `bp`
    customer_panel,
    dashboard,  # noqa: F401 - its routes (the "Panel": /console/dashboard, /operator/dashboard) join the blueprints
    faq_page,  # noqa: F401 - its routes (the admin's "Preguntas frecuentes") join `bp`
    improvements,  # noqa: F401 - its routes (the admin's "Mejoras": /console/improvements) join `bp`
    knowledge,
    media_views,  # issue 17: files shown through signed links of ours, an agent's image or PDF sent
    operator_views,
    report_views,  # noqa: F401 - its routes (the monthly report: /console/report, /operator/report) join the blueprints
    team_views,  # noqa: F401 - its routes (search, assignment, tags) join `bp`
    words,
)
from console.blueprint import ConsoleState, bp, core, state, tenant_slug
from console.database import get_pool
from console.summary import Facts, Summarizer, build_summary, reason_text
from console.whatsapp_text import to_html
from handoff import cases, live
from handoff.agents import Agent
from handoff.cases import Desk
from llm import summary as llm_summary
from notifications import templates as approved
from notifications import tenant_templates
from storage import contacts
from storage.crypto import Vault

log = logging.getLogger(__name__)

# `{{ text|whatsapp }}` in the console's templates: escaped, then WhatsApp's *bold*, _italic_, ~strike~, ```mono```.
bp.add_app_template_filter(to_html, "whatsapp")

SUMMARY_KEY = "console:summary:{case_id}:{last}"
SUMMARY_TTL_S = 24 * 3600
STREAM_MAX_S = 300.0  # a browser's event stream is closed after this long; EventSource reconnects at once
STREAM_BUSY_RETRY_MS = 20000  # when this process has no free stream slot, the browser retries after this


def init_app(app: Flask, summarizer: Summarizer | None = None) -> None:
    """Mount the console; `summarizer` writes the case summary (default: the configured LLM's, if any)."""
    settings: Settings = app.extensions["settings"]
    auth.init_app(app, settings)
    redis_conn = app.extensions["redis"]
    if summarizer is None:
        summarizer = llm_summary.summarizer_for(settings, redis_conn, app.extensions["db_pool"])
    desk = Desk(settings=settings, pool=app.extensions["db_pool"], redis=redis_conn,
                queue=Queue(settings.queue_name, connection=redis_conn))
    app.extensions["console"] = ConsoleState(
        desk=desk, vault=Vault(settings.phone_encryption_keys, settings.phone_hash_key), settings=settings,
        summarizer=summarizer, streams=threading.BoundedSemaphore(settings.console_max_streams),
    )
    app.register_blueprint(bp)
    operator_views.init_app(app)  # issue 15: the operator's area at /operator, with its own login


# -- pages -----------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _filters() -> tuple[str, str | None]:
    status = request.args.get("status") or "open"
    priority = request.args.get("priority") or None
    if status not in case_queue.STATUS_FILTERS:
        abort(400, description="Ese filtro de estado no existe.")
    if priority is not None and priority not in case_queue.PRIORITIES:
        abort(400, description="Ese filtro de prioridad no existe.")
    return status, priority


@bp.get("")
@auth.login_required
def queue() -> str:
    agent = auth.require_agent()
    status, priority = _filters()
    with get_pool().connection() as conn:
        items = case_queue.queue(conn, state().settings, agent.tenant_id, status=status, priority=priority,
                                 agent_id=agent.id, now=_now())
    now = _now()
    return render_template("console/queue.html", items=[i.as_json(now) for i in items], status=status,
                           priority=priority or "", filters=case_queue.STATUS_FILTERS)


@bp.get("/cases/<int:case_id>")
@auth.login_required
def case_page(case_id: int) -> str:
    agent = auth.require_agent()
    detail = _case_detail(agent, case_id)
    specs = [{"name": s.name, "body": s.body, "html": str(to_html(s.body)),
              "params": [*s.params, *sorted(s.values_needed() - set(s.params))]}
             for s in tenant_templates.effective(get_pool(), agent.tenant_id, tenant_slug(agent.tenant_id))]
    return render_template("console/case.html", case=detail, canned=detail["canned"], templates=specs)


# -- the JSON API -------------------------------------------------------------------------------------------


@bp.get("/api/queue")
@auth.login_required
def api_queue() -> Response:
    agent = auth.require_agent()
    status, priority = _filters()
    now = _now()
    with get_pool().connection() as conn:
        items = case_queue.queue(conn, state().settings, agent.tenant_id, status=status, priority=priority,
                                 agent_id=agent.id, now=now)
    return jsonify(now=now.isoformat(), cases=[i.as_json(now) for i in items])


def _case_detail(agent: Agent, case_id: int, after: int = 0) -> dict[str, Any]:
    console = state()
    with get_pool().connection() as conn:
        case = cases.load_case(conn, agent.tenant_id, case_id)
        listed = casefile.transcript(conn, case.conversation_id, after=after)
        # issue 17: files with their messages; a voice note's transcript under its audio; an album as one
        messages = media_views.attach(conn, agent.tenant_id, case.conversation_id, listed)
        full = listed if after == 0 else casefile.transcript(conn, case.conversation_id)
        known = knowledge.gather(conn, console.desk.redis, console.vault, core(agent.tenant_id),
                                 conversation_id=case.conversation_id,
                                 case_number=case.case_number, reason=case.reason, priority=case.priority,
                                 customer_name=case.customer_name)
        window_open = contacts.service_window_open(conn, case.contact_id)
        closes_at = contacts.service_window_closes_at(conn, case.contact_id)
        extra = casefile.case_extra(conn, case.id)
        notes = casefile.notes(conn, case.conversation_id)
        history = casefile.history(conn, case.id)
        ctx = customer_panel.service_context(conn, console.desk.redis, core(agent.tenant_id), agent.tenant_id, _now())
        names = customer_panel.point_names(ctx)
        panel = customer_panel.build(conn, ctx, console.vault, agent, case, names,
                                     call_pending=callbacks.pending(conn, case))
    facts = words.named_facts(known.facts, names)
    last_in = max((m["id"] for m in full if m["direction"] == "in"), default=0)
    summary = _summary(case.id, last_in, facts, [(m["who"], m["body"]) for m in full])
    values = {"nombre": cases.name_part(case.customer_name).strip(), "caso": case.case_number,
              "codigo": known.facts.packages[-1][0] if known.facts.packages else "", "agente": agent.first_name}
    with get_pool().connection() as conn:
        answers = [{**a, "body": canned.fill(a["body"], values)} for a in canned.for_tenant(conn, agent.tenant_id)]
    detail = {
        "canned": answers,
        "id": case.id, "case_number": case.case_number, "priority": case.priority, "reason": case.reason,
        "reason_text": reason_text(case.reason),
        "status": case.status, "taken_by": case.taken_by, "taken_by_name": case.taken_by_name,
        "mine": case.status == "taken" and case.taken_by == agent.id,
        "conversation_status": case.conversation_status, "customer_name": case.customer_name,
        "created_at": case.created_at.isoformat(), "messages": messages, "notes": notes, "history": history,
        "summary": summary, "facts": facts.as_dict(), "packages": known.package_lines,
        "dialog_state": known.state, "last_intent": known.last_intent,
        "window_open": window_open, "window_closes_at": closes_at.isoformat() if closes_at else None,
        "values": values, "resolution_reason": extra.get("resolution_reason"),
        "csat_score": extra.get("csat_score"),
        "sla_target_s": case_queue.sla_target_s(console.settings, case.priority),
        "first_response_at": extra["first_response_at"].isoformat() if extra.get("first_response_at") else None,
        "customer": panel.as_json(),
        "taken_notice": cases.error_text("taken_by", who=case.taken_by_name)
        if case.status == "taken" and case.taken_by != agent.id else None,
    }
    words.present_case(detail, names)
    return detail


def _summary(case_id: int, last_customer_message: int, facts: Facts, transcript: list[tuple[str, str]]) -> str:
    """The case summary; an LLM's is kept in Redis until the customer writes again (pages refresh often)."""
    console = state()
    if console.summarizer is None:
        return build_summary(facts, transcript)
    key = SUMMARY_KEY.format(case_id=case_id, last=last_customer_message)
    try:
        cached = console.desk.redis.get(key)
    except redis.RedisError:
        cached = None
    if isinstance(cached, bytes):
        return cached.decode()
    text = build_summary(facts, transcript, console.summarizer)
    try:
        console.desk.redis.set(key, text, ex=SUMMARY_TTL_S)
    except redis.RedisError as exc:
        log.warning("case summary not cached: %s", type(exc).__name__)
    return text


@bp.get("/api/cases/<int:case_id>")
@auth.login_required
def api_case(case_id: int) -> Response:
    agent = auth.require_agent()
    try:
        after = int(request.args.get("after") or 0)
    except ValueError:
        abort(400, description="'after' debe ser el número de un mensaje.")
    return jsonify(_case_detail(agent, case_id, after))


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(data, dict):
        abort(400, description="La solicitud debe ser un objeto JSON.")
    return data


@bp.post("/api/cases/<int:case_id>/claim")
@auth.login_required
def api_claim(case_id: int) -> Response:
    case = cases.claim(state().desk, auth.require_agent(), case_id)
    return jsonify(ok=True, status="taken", case_id=case.id)


@bp.post("/api/cases/<int:case_id>/takeover")
@auth.login_required
def api_takeover(case_id: int) -> Response:
    data = _body()
    from_agent = data.get("from_agent_id")
    if not isinstance(from_agent, int) and not (isinstance(from_agent, str) and from_agent.isdigit()):
        abort(400, description="Falta quién tiene el caso ahora (from_agent_id).")
    cases.take_over(state().desk, auth.require_agent(), case_id, int(from_agent))
    return jsonify(ok=True, status="taken")


@bp.post("/api/cases/<int:case_id>/reply")
@auth.login_required
def api_reply(case_id: int) -> tuple[Response, int]:
    data = _body()
    text = data.get("text")
    if not isinstance(text, str):
        abort(400, description="Escribe el texto.")
    key = data.get("client_key")
    message_id = cases.reply(state().desk, auth.require_agent(), case_id, text,
                               str(key)[:64] if isinstance(key, str) and key else None)
    return jsonify(ok=True, message_id=message_id, status="pending"), 202


@bp.post("/api/cases/<int:case_id>/template")
@auth.login_required
def api_template(case_id: int) -> tuple[Response, int]:
    agent = auth.require_agent()
    with get_pool().connection() as conn:  # another company's case is 404 before any question about the template
        cases.load_case(conn, agent.tenant_id, case_id)
    data = _body()
    values = data.get("values") or {}
    if not isinstance(values, dict):
        abort(400, description="Los valores de la plantilla no son válidos.")
    try:
        spec = tenant_templates.effective_named(get_pool(), agent.tenant_id, tenant_slug(agent.tenant_id),
                                                str(data.get("name") or ""))
        message = approved.build_message(spec, {k: str(v) for k, v in values.items()})
        preview = spec.render({k: str(v) for k, v in values.items()})
    except approved.MissingTemplateValue as exc:
        abort(400, description=f"Falta un valor de la plantilla: {exc.args[0]}")
    except KeyError as exc:
        abort(400, description=str(exc.args[0]))
    message_id = cases.send_template(state().desk, agent, case_id, message, preview)
    return jsonify(ok=True, message_id=message_id, status="pending"), 202


@bp.post("/api/cases/<int:case_id>/hand-back")
@auth.login_required
def api_hand_back(case_id: int) -> Response:
    cases.hand_back(state().desk, auth.require_agent(), case_id)
    return jsonify(ok=True, status="returned")


@bp.post("/api/cases/<int:case_id>/resolve")
@auth.login_required
def api_resolve(case_id: int) -> Response:
    data = _body()
    reason = data.get("reason")
    if not isinstance(reason, str):
        abort(400, description="Cuenta cómo se resolvió el caso.")
    csat = data.get("csat") in (True, "1", "true", "on")
    cases.resolve(state().desk, auth.require_agent(), case_id, reason, ask_csat=csat)
    return jsonify(ok=True, status="resolved")


@bp.post("/api/cases/<int:case_id>/called")
@auth.login_required
def api_called(case_id: int) -> Response:
    """"Ya llamé": the outcome of a call the customer asked for, with an optional note (console.callbacks)."""
    data = _body()
    outcome, note = data.get("outcome"), data.get("note") or ""
    if not isinstance(outcome, str) or not isinstance(note, str):
        abort(400, description=cases.error_text("call_outcome"))
    case = callbacks.record_call(state().desk, auth.require_agent(), case_id, outcome, note)
    return jsonify(ok=True, case_id=case.id, outcome=outcome)


@bp.post("/api/cases/<int:case_id>/notes")
@auth.login_required
def api_note(case_id: int) -> tuple[Response, int]:
    text = _body().get("body")
    if not isinstance(text, str):
        abort(400, description="La nota está vacía.")
    note_id = cases.add_note(state().desk, auth.require_agent(), case_id, text)
    return jsonify(ok=True, note_id=note_id), 201


@bp.post("/api/cases/<int:case_id>/typing")
@auth.login_required
def api_typing(case_id: int) -> Response:
    agent = auth.require_agent()
    with get_pool().connection() as conn:
        cases.load_case(conn, agent.tenant_id, case_id)
    live.publish(state().desk.redis, agent.tenant_id, "typing", case_id=case_id, agent=agent.name,
                 agent_id=agent.id)
    return jsonify(ok=True)


@bp.get("/api/events")
@auth.login_required
def api_events() -> Response:
    agent = auth.require_agent()
    console = state()
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if not console.streams.acquire(blocking=False):
        # Every stream slot of this process is taken: the webhooks keep their threads. The page keeps
        # refreshing every 30 s; EventSource tries again after `retry`.
        log.warning("console live stream refused: all %d slots of this process in use",
                    console.settings.console_max_streams)
        return Response(f"retry: {STREAM_BUSY_RETRY_MS}\n: busy\n\n", mimetype="text/event-stream",
                        headers=headers)

    token = auth.session_token()

    def events() -> Iterator[str]:
        feed = live.stream(console.desk.redis, agent.tenant_id, max_s=STREAM_MAX_S)
        try:
            for chunk in feed:
                if not chunk.startswith("retry:") and not auth.session_is_open(token):
                    return  # logged out (maybe in another tab): a copy of the cookie hears nothing more
                yield chunk
        finally:
            feed.close()  # unsubscribes now, not when the generator is collected
            console.streams.release()

    return Response(stream_with_context(events()), mimetype="text/event-stream", headers=headers)
