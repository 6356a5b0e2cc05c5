"""The console's pages and API for working as a team: searching cases, assigning them, tagging them.

Page: `/console/search` (closed cases too; console.search). API (JSON, session + CSRF header):
`GET /console/api/cases/<id>/team` (the case's tags and who it can go to), `POST .../assign`,
`POST .../tags`, `POST .../tags/remove`. Every query is limited to the logged-in agent's tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify, render_template, request

from console import assignment, auth, search, tags
from console.blueprint import bp, state
from console.case_queue import PRIORITIES, priority_text
from console.database import get_pool
from console.team_texts import text
from handoff import cases


@bp.get("/search")
@auth.login_required
def search_page() -> tuple[str, int]:
    agent = auth.require_agent()
    console = state()
    args = {k: v for k, v in request.args.items() if isinstance(v, str)}
    error, results, wanted = None, search.Results(), search.Search()
    try:
        wanted = search.Search.from_args(args)
    except search.SearchError as exc:
        error = str(exc)
    with get_pool().connection() as conn:
        if error is None and wanted.asked:
            results = search.search(conn, console.vault, agent.tenant_id, wanted, now=datetime.now(UTC),
                                    retention_days=console.settings.retention_escalated_days)
        team = assignment.assignees(conn, agent.tenant_id)
        vocabulary = tags.vocabulary(conn, agent.tenant_id)
    statuses = [("", "Todos"), ("open", "Abiertos"), ("resolved", text("statuses", "resolved")),
                ("returned", text("statuses", "returned"))]
    return render_template(
        "console/search.html", wanted=wanted, args=args, results=results, error=error, statuses=statuses,
        priorities=[(p, priority_text(p)) for p in PRIORITIES], team=team, vocabulary=vocabulary,
        retention_days=console.settings.retention_escalated_days,
    ), 400 if error else 200


@bp.get("/api/cases/<int:case_id>/team")
@auth.login_required
def api_case_team(case_id: int) -> Response:
    agent = auth.require_agent()
    with get_pool().connection() as conn:
        case = cases.load_case(conn, agent.tenant_id, case_id)
        team = assignment.assignees(conn, agent.tenant_id)
        return jsonify(
            tags=tags.for_case(conn, case.id), vocabulary=tags.vocabulary(conn, agent.tenant_id),
            holder=case.taken_by if case.status == "taken" else None,
            holder_name=case.taken_by_name if case.status == "taken" else None,
            can_assign=case.status in assignment.ASSIGNABLE and case.conversation_status != "closed" and (
                agent.can_manage or (case.status == "taken" and case.taken_by == agent.id)),
            agents=[{"id": a.id, "name": a.name} for a in team],
        )


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    return data if isinstance(data, dict) else {}


@bp.post("/api/cases/<int:case_id>/assign")
@auth.login_required
def api_assign(case_id: int) -> Response:
    data = _body()
    to_agent = assignment.parse_agent_id(data.get("agent_id"))
    expected = data.get("from_agent_id")
    holder = None if expected in (None, "") else assignment.parse_agent_id(expected)
    assignment.assign(state().desk, auth.require_agent(), case_id, to_agent, holder)
    return jsonify(ok=True, status="taken", taken_by=to_agent)


@bp.post("/api/cases/<int:case_id>/tags")
@auth.login_required
def api_tag(case_id: int) -> Response:
    tag = _body().get("tag")
    current = tags.add(state().desk, auth.require_agent(), case_id, tag if isinstance(tag, str) else "")
    return jsonify(ok=True, tags=current)


@bp.post("/api/cases/<int:case_id>/tags/remove")
@auth.login_required
def api_untag(case_id: int) -> Response:
    tag = _body().get("tag")
    current = tags.remove(state().desk, auth.require_agent(), case_id, tag if isinstance(tag, str) else "")
    return jsonify(ok=True, tags=current)
