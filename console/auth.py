"""Console sessions: login, logout, the CSRF token, the login rate limit, who is asking.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure when
CONSOLE_SECURE_COOKIES) holding the agent id, the agent's tenant and a CSRF
token. Every state-changing request of the console (any method but GET/HEAD)
must carry that token, as the `csrf_token` form field or the `X-CSRF-Token`
header; without it the answer is 403. Failed logins are counted in Redis per
e-mail and per client address for 15 minutes; past the limit the answer is
429 even for the right password.
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
from console import agents
from console.agents import Agent
from storage.db import get_pool

log = logging.getLogger(__name__)

LOGIN_WINDOW_S = 15 * 60
RESET_KEY = "console:reset:{agent_id}"
RESET_INTERVAL_S = 60
FAIL_KEY = "console:login-fail:{kind}:{who}"
CACHE_KEY = "encargo.console_agent"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Client addresses get this many times the per-e-mail allowance (an office shares one address).
ADDRESS_FACTOR = 4

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
        PERMANENT_SESSION_LIFETIME=12 * 3600,
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
        abort(403, description="missing or invalid CSRF token; reload the page")


# -- who is asking ---------------------------------------------------------------------------------


def current_agent() -> Agent | None:
    """The logged-in, still active agent of this request (loaded once per request)."""
    cache = request.environ  # per request (an app context, and so `g`, may outlive a request in tests)
    if CACHE_KEY in cache:
        return cast(Agent | None, cache[CACHE_KEY])
    agent = None
    agent_id = session.get("agent_id")
    if isinstance(agent_id, int):
        with get_pool().connection() as conn:
            agent = agents.get(conn, agent_id)
        if (agent is None or not agent.active or agent.tenant_id != session.get("tenant_id")
                or agent.stamp != session.get("stamp")):
            session.clear()
            agent = None
    cache[CACHE_KEY] = agent
    return agent


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
    session.clear()
    session.permanent = True
    session["agent_id"] = agent.id
    session["tenant_id"] = agent.tenant_id
    session["stamp"] = agent.stamp
    session["csrf"] = secrets.token_urlsafe(32)


def log_out() -> None:
    session.clear()


# -- the login rate limit ------------------------------------------------------------------------------


def _keys(email: str, address: str) -> tuple[str, str]:
    who = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return FAIL_KEY.format(kind="email", who=who), FAIL_KEY.format(kind="ip", who=address)


def login_blocked(conn: redis.Redis, settings: Settings, email: str, address: str) -> bool:
    """Whether this e-mail or this client address failed too often in the last 15 minutes."""
    email_key, ip_key = _keys(email, address)
    try:
        by_email, by_ip = conn.mget([email_key, ip_key])
    except redis.RedisError as exc:  # no Redis: the hash's cost still slows guessing down
        log.warning("login limit unavailable: %s", type(exc).__name__)
        return False
    limit = settings.console_login_attempts
    return int(by_email or 0) >= limit or int(by_ip or 0) >= limit * ADDRESS_FACTOR


def record_failure(conn: redis.Redis, email: str, address: str) -> None:
    try:
        pipe = conn.pipeline()
        for key in _keys(email, address):
            pipe.incr(key)
            pipe.expire(key, LOGIN_WINDOW_S, nx=True)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("login failure not counted: %s", type(exc).__name__)


def clear_failures(conn: redis.Redis, email: str) -> None:
    try:
        conn.delete(_keys(email, "")[0])
    except redis.RedisError as exc:
        log.warning("login failures not cleared: %s", type(exc).__name__)


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
