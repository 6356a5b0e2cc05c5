"""Console sessions: login, logout, the CSRF token, who is asking, the client's address.

The browser holds Flask's signed cookie (HttpOnly, SameSite=Lax, Secure when
CONSOLE_SECURE_COOKIES) with a session token, the agent's tenant and a CSRF
token. The session itself lives on the server (handoff/sessions.py): each
request looks the token up, so logging out, a password change or reset and
deactivating the agent end it for every copy of the cookie at once. Every
state-changing request of the console (any method but GET/HEAD) must carry
the CSRF token, as the `csrf_token` form field or the `X-CSRF-Token` header;
without it the answer is 403. The login rate limit is console/login_limit.py.

The client's address is the request's remote address; behind TRUSTED_PROXY_HOPS
proxies app.py's ProxyFix has already taken it from X-Forwarded-For.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import redis
from flask import Flask, Request, abort, current_app, jsonify, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from config import Settings
from console.database import get_pool
from handoff import agents, sessions
from handoff.agents import Agent

log = logging.getLogger(__name__)

RESET_KEY = "console:reset:{agent_id}"
RESET_INTERVAL_S = 60
CACHE_KEY = "encargo.console_agent"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

F = TypeVar("F", bound=Callable[..., Any])


def session_secret(settings: Settings) -> str:
    """CONSOLE_SESSION_SECRET, or in development a key derived from PHONE_HASH_KEY."""
    if settings.console_session_secret:
        return settings.console_session_secret
    return hmac.new(settings.phone_hash_key.encode(), b"encargo-console-session", hashlib.sha256).hexdigest()


CONSOLE_PATH = "/console"  # the blueprint's url_prefix


class ConsoleSessions(SecureCookieSessionInterface):
    """The signed session cookie, opened only for the console's pages.

    Webhooks, health checks and the simulator never use it; skipping it spares every webhook the
    cookie's signing serializer (~0.05 ms of the acknowledgement).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(CONSOLE_PATH):
            return None  # Flask falls back to a null session; nothing is read or written
        return super().open_session(app, request)


def init_app(app: Flask, settings: Settings) -> None:
    app.session_interface = ConsoleSessions()
    app.config.update(
        SECRET_KEY=session_secret(settings),
        SESSION_COOKIE_NAME="encargo_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.console_secure_cookies,
        PERMANENT_SESSION_LIFETIME=sessions.LIFETIME_S,
    )


# -- the CSRF token --------------------------------------------------------------------------------


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf() -> None:
    """Abort with 403 when a state-changing request lacks the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    if not expected or not hmac.compare_digest(str(expected), given):
        log.warning("console request without a valid CSRF token", extra={"path": request.path})
        abort(403, description="Falta el token de seguridad (CSRF) o ya no es válido: recarga la página.")


# -- who is asking ---------------------------------------------------------------------------------


def current_agent() -> Agent | None:
    """The agent of this request's open server-side session, if still active (loaded once per request).

    A cookie whose session was revoked or expired, or whose agent was deactivated, is cleared.
    """
    cache = request.environ  # per request (an app context, and so `g`, may outlive a request in tests)
    if CACHE_KEY in cache:
        return cast(Agent | None, cache[CACHE_KEY])
    agent = None
    token = session.get("sid")
    if isinstance(token, str) and token:
        with get_pool().connection() as conn:
            row = sessions.agent_of(conn, token, agents.SESSION_COLUMNS)
        agent = agents.from_row(row) if row is not None else None
        if agent is None or not agent.active or agent.tenant_id != session.get("tenant_id"):
            session.clear()
            agent = None
    cache[CACHE_KEY] = agent
    return agent


def session_token() -> str:
    """This request's session token ('' without one); for `session_is_open` later in a long response."""
    token = session.get("sid")
    return token if isinstance(token, str) else ""


def session_is_open(token: str) -> bool:
    """Whether the session still counts (not revoked or expired, its agent active): a long response such as
    the live stream asks again as it goes, so logging out ends it too."""
    if not token:
        return False
    with get_pool().connection() as conn:
        row = sessions.agent_of(conn, token, agents.SESSION_COLUMNS)
    return row is not None and bool(row["active"])


def _wants_json() -> bool:
    return request.path.startswith("/console/api/") or request.accept_mimetypes.best == "application/json"


def login_required(view: F) -> F:
    """No session: JSON endpoints answer 401, pages redirect to the login form."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_agent() is None:
            if _wants_json():
                return jsonify(error="log in first"), 401
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def require_agent() -> Agent:
    agent = current_agent()
    if agent is None:
        abort(401)
    return agent


def log_in(agent: Agent) -> None:
    """Start a server-side session for the agent and put its token in a fresh cookie."""
    with get_pool().connection() as conn:
        token = sessions.start(conn, agent.id)
    session.clear()
    session.permanent = True
    session["sid"] = token
    session["tenant_id"] = agent.tenant_id
    session["csrf"] = secrets.token_urlsafe(32)
    request.environ.pop(CACHE_KEY, None)


def log_out() -> None:
    """End this session on the server (every copy of the cookie stops working) and clear the cookie."""
    token = session.get("sid")
    if isinstance(token, str) and token:
        with get_pool().connection() as conn:
            sessions.end(conn, token)
    session.clear()
    request.environ.pop(CACHE_KEY, None)


# -- the reset link limit ------------------------------------------------------------------------------


def reset_allowed(conn: redis.Redis, agent_id: int) -> bool:
    """At most one password reset link per agent a minute: nobody can flood an agent's inbox with them."""
    try:
        return bool(conn.set(RESET_KEY.format(agent_id=agent_id), 1, nx=True, ex=RESET_INTERVAL_S))
    except redis.RedisError as exc:  # no Redis: the link is still made (the reset must keep working)
        log.warning("reset limit unavailable: %s", type(exc).__name__)
        return True


def client_address() -> str:
    return request.remote_addr or "unknown"


def settings_of_app() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings
