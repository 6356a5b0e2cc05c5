"""HTTP endpoints of the sandbox core: the read API the bot consumes, plus demo controls.

`core_api` mirrors the logistics core's endpoints of design section 3.3.1
(tracking, search, points, pricing, company, policies, notification log).
`sandbox_control` has what only a demo needs: changing a package's status so
the proactive notifications can be shown, which the real core does on its own.
Every endpoint works on the company the request's API key selected (app.py puts
it in `flask.g`): its packages, points, prices, log and event sink, never another's.
Errors are JSON `{"error": <code>, "message": ..., "parameter": ...}`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from sandbox_core.companies import ServedCompany
from sandbox_core.pricing import QuoteError, quote
from sandbox_core.state import CoreState

core_api = Blueprint("core_api", __name__, url_prefix="/api")
sandbox_control = Blueprint("sandbox_control", __name__, url_prefix="/sandbox")

COMPANIES_KEY = "sandbox_core.companies"  # app.extensions: the ServedCompany list
COMPANY_ATTR = "sandbox_company"  # flask.g: the company the request's API key selected
MAX_SEARCH_LIMIT = 100
_STATUS_PATTERN = re.compile(r"^[A-Z][A-Z_]{1,63}$")


def _company() -> ServedCompany:
    company: ServedCompany = getattr(g, COMPANY_ATTR)
    return company


def _state() -> CoreState:
    """The state of the company this request is for (never another's)."""
    return _company().state


def error_response(
    status: int, error: str, message: str, parameter: str | None = None
) -> tuple[Response, int]:
    """A JSON error body; `parameter` names the request field at fault, when there is one."""
    body: dict[str, Any] = {"error": error, "message": message}
    if parameter:
        body["parameter"] = parameter
    return jsonify(body), status


def _not_found(what: str) -> tuple[Response, int]:
    return error_response(404, "not_found", f"{what} not found")


def _bad(parameter: str, message: str) -> tuple[Response, int]:
    return error_response(400, "bad_request", message, parameter)


def _json_object() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


@core_api.get("/packages/track/<path:code>")
def track(code: str) -> Any:
    package = _state().track(code)
    return package if package is not None else _not_found("package")


@core_api.get("/packages/search")
def search() -> Any:
    args = request.args
    phone, sender_phone, name = args.get("phone"), args.get("sender_phone"), args.get("name")
    if not (phone or sender_phone or name):
        return _bad("phone", "phone, sender_phone or name is required")
    try:
        limit = int(args.get("limit", "10"))
    except ValueError:
        return _bad("limit", "limit must be a whole number")
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        return _bad("limit", f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
    status = args.get("status", "all").strip()
    statuses = None if status in ("", "all") else frozenset(s.strip().upper() for s in status.split(","))
    packages = _state().search(
        phone=phone,
        sender_phone=sender_phone,
        name=name,
        destination=args.get("destination") or None,
        statuses=statuses,
        limit=limit,
    )
    return {"packages": packages}


@core_api.get("/points")
def points() -> Any:
    return {"points": _state().points()}


@core_api.get("/points/<point_id>")
def point(point_id: str) -> Any:
    found = _state().point(point_id)
    return found if found is not None else _not_found("point")


@core_api.get("/pricing")
def pricing() -> Any:
    args = request.args
    try:
        return quote(
            args.get("origin"), args.get("destination"), args.get("weight"), _state().pricing_inputs()
        )
    except QuoteError as exc:
        return _bad(exc.parameter, exc.message)


@core_api.get("/pricing/table")
def pricing_table() -> Any:
    state = _state()
    return {"pricing": state.block("pricing"), "delivery_times": state.block("delivery_times")}


@core_api.get("/company")
def company() -> Any:
    block = _state().block("company")
    return {key: block.get(key) for key in ("name", "timezone", "support_hours", "emergency_phone")}


@core_api.get("/policies")
def policies() -> Any:
    return _state().block("policies")


@core_api.post("/notifications/log")
def log_notification() -> Any:
    body = _json_object()
    if body is None:
        return _bad("body", "body must be a JSON object")
    code = body.get("tracking_code") or body.get("package_id")
    if not isinstance(code, str) or not code.strip():
        return _bad("tracking_code", "tracking_code or package_id is required")
    for field in ("channel", "type"):
        if not isinstance(body.get(field), str) or not body[field].strip():
            return _bad(field, f"{field} is required")
    state = _state()
    sent_at = body.get("sent_at") or state.now()
    try:
        datetime.fromisoformat(str(sent_at))
    except ValueError:
        return _bad("sent_at", "sent_at must be an ISO 8601 date-time")
    package = state.track(code)
    if package is None:
        return _not_found("package")
    entry = {
        "tracking_code": package["tracking_code"],
        "channel": body["channel"],
        "type": body["type"],
        "sent_at": str(sent_at),
        "logged_at": state.now(),
    }
    # issue 7: the bot's own id of the notification (makes retries idempotent) and how it went out
    for optional in ("notification_id", "recipient_role", "mode", "template", "status"):
        if optional in body:
            if not isinstance(body[optional], str):
                return _bad(optional, f"{optional} must be text")
            entry[optional] = body[optional]
    stored = state.log_notification(entry)
    return {"id": stored["id"]}, 201


@core_api.get("/notifications/log")
def list_notifications() -> Any:
    return {"notifications": _state().notifications()}


@sandbox_control.post("/packages/<path:code>/status")
def change_status(code: str) -> Any:
    """Set a package's status as the core's staff would; pushes a signed event when configured."""
    body = _json_object()
    if body is None:
        return _bad("body", "body must be a JSON object")
    status = body.get("status")
    if not isinstance(status, str) or not _STATUS_PATTERN.match(status):
        return _bad("status", "status must be an upper-case status name such as ARRIVED_AT_DESTINATION")
    note, point_id = body.get("note", ""), body.get("point")
    if not isinstance(note, str):
        return _bad("note", "note must be text")
    state = _state()
    if point_id is not None and (not isinstance(point_id, str) or state.point(point_id) is None):
        return _bad("point", "point must be the id of a service point")
    package = state.set_status(code, status, note, point_id)
    if package is None:
        return _not_found("package")
    sink = _company().events  # this company's own secret and key id
    delivered = None
    if sink is not None:
        occurred_at = package["history"][-1]["at"]
        delivered = sink.deliver_status_changed(package["tracking_code"], status, occurred_at)
    return {**package, "event_delivered": delivered}
