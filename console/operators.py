"""The operator's login and session: a cookie of its own, apart from the agents' console.

The operator area lives under /operator. Its requests get their own signed
cookie (`encargo_operator`, path /operator, another signing salt), so an
agent's console cookie never opens it and an operator's cookie is never even
sent to /console: the two sessions cannot stand in for each other. The cookie
holds a random token of a server-side session (`storage.operators`) and a
CSRF token; every request looks the token up, so logging out ends the session
for every copy of the cookie at once. State-changing requests need the CSRF
token (the console's own check, `console.auth.check_csrf`, reads this cookie
here). Failed logins are limited as the agents' are (`console.login_limit`),
counted apart from any agent account with the same address.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Request, Response, abort, jsonify, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionInterface, SessionMixin

from console.database import get_pool
from storage import operators
from storage.operators import Operator

OPERATOR_PATH = "/operator"
COOKIE_NAME = "encargo_operator"
CACHE_KEY = "encargo.operator"
LIMIT_PREFIX = "operator:"  # failed logins are counted apart from an agent account with the same address

F = TypeVar("F", bound=Callable[..., Any])


def _is_operator_path(path: str) -> bool:
    return path == OPERATOR_PATH or path.startswith(OPERATOR_PATH + "/")


class OperatorCookie(SecureCookieSessionInterface):
    """The operator area's signed cookie: its own name, path and salt."""

    salt = "encargo-operator-session"

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME

    def get_cookie_path(self, app: Flask) -> str:
        return OPERATOR_PATH


class AreaSessions(SessionInterface):
    """Hands /operator requests to `OperatorCookie` and every other request to the app's own interface."""

    def __init__(self, others: SessionInterface) -> None:
        self.others = others
        self.operator = OperatorCookie()

    def _for(self, path: str) -> SessionInterface:
        return self.operator if _is_operator_path(path) else self.others

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self._for(request.path).open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        self._for(request.path).save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Give the app the operator area's sessions (after `console.auth.init_app` set the console's)."""
    app.session_interface = AreaSessions(app.session_interface)


def current_operator() -> Operator | None:
    """The operator of this request's open session (looked up once per request); a dead cookie is cleared."""
    cache = request.environ
    if CACHE_KEY in cache:
        return cast(Operator | None, cache[CACHE_KEY])
    found = None
    if isinstance(session, SecureCookieSession) and _is_operator_path(request.path):
        token = session.get("operator_sid")
        if isinstance(token, str) and token:
            with get_pool().connection() as conn:
                found = operators.of_session(conn, token)
            if found is None:
                session.clear()
    cache[CACHE_KEY] = found
    return found


def operator_required(view: F) -> F:
    """No operator session: pages go to the operator's login, anything else answers 403."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_operator() is None:
            if request.method == "GET" and not request.path.startswith(OPERATOR_PATH + "/api/"):
                return redirect(url_for("operator.login", next=request.full_path.rstrip("?")))
            if request.path.startswith(OPERATOR_PATH + "/api/"):
                return jsonify(error="Entra primero como operador."), 403
            abort(403, description="Entra primero como operador.")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def require_operator() -> Operator:
    found = current_operator()
    if found is None:
        abort(403)
    return found


def log_in(operator: Operator) -> None:
    """A new server-side session for the operator, in a fresh cookie (a new CSRF token too)."""
    with get_pool().connection() as conn:
        token = operators.start_session(conn, operator.id)
    session.clear()
    session.permanent = True
    session["operator_sid"] = token
    session["csrf"] = secrets.token_urlsafe(32)
    request.environ.pop(CACHE_KEY, None)


def log_out() -> None:
    token = session.get("operator_sid")
    if isinstance(token, str) and token:
        with get_pool().connection() as conn:
            operators.end_session(conn, token)
    session.clear()
    request.environ.pop(CACHE_KEY, None)
