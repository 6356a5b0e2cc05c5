"""The console's blueprint and what every console request shares: the per-app state, the CSRF check,
security headers, error answers (JSON for the API, pages otherwise) and the values every template gets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from config import Settings
from console import auth
from console.database import get_pool
from console.mailer import Mailer
from console.summary import Summarizer
from core_api_client import CoreClient
from handoff.cases import Desk, HandoffError, WindowClosed
from runtime.cores import TenantCores
from storage.crypto import Vault

# Only our own scripts, styles and connections; no inline script (the page's data is a JSON <script> block).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

bp = Blueprint("console", __name__, url_prefix=auth.CONSOLE_PATH, template_folder="templates",
               static_folder="static", static_url_path="/static")


@dataclass
class ConsoleState:
    desk: Desk
    vault: Vault
    settings: Settings
    summarizer: Summarizer | None = None
    cores: TenantCores | None = None  # each tenant's own logistics core
    tenant_slugs: dict[int, str] = field(default_factory=dict)
    # hands password reset links on: by e-mail when SMTP_URL is set, else to the log
    mailer: Mailer | None = None
    # one slot per open live event stream of this web process (Settings.console_max_streams)
    streams: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(4))


def state() -> ConsoleState:
    """This app's console state (set by `console.views.init_app`)."""
    found: ConsoleState = current_app.extensions["console"]
    return found


def core(tenant_id: int) -> CoreClient:
    """The client of the agent's company's own logistics core (short timeout: a page is waiting)."""
    console = state()
    if console.cores is None:
        console.cores = TenantCores(console.settings, console.desk.pool, console.desk.redis, console.vault,
                                    timeout_s=2.0)
    return console.cores.client(tenant_id)


def mailer() -> Mailer:
    console = state()
    if console.mailer is None:
        console.mailer = Mailer(console.settings)
    return console.mailer


def tenant_slug(tenant_id: int) -> str:
    console = state()
    if tenant_id not in console.tenant_slugs:
        with get_pool().connection() as conn:
            row = conn.execute("SELECT slug FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
        console.tenant_slugs[tenant_id] = str(row["slug"]) if row else ""  # type: ignore[call-overload]
    return console.tenant_slugs[tenant_id]


@bp.before_request
def _csrf() -> None:
    auth.check_csrf()


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


@bp.errorhandler(HandoffError)
def _handoff_error(exc: HandoffError) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, WindowClosed):
        body["window_closed"] = True
        body["closes_at"] = exc.closes_at.isoformat() if exc.closes_at else None
    return jsonify(body), exc.status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    if request.path.startswith("/console/api/") or request.method != "GET":
        return jsonify(error=exc.description), exc.code or 500
    return exc


@bp.context_processor
def _template_values() -> dict[str, Any]:
    return {"csrf_token": auth.csrf_token, "agent": auth.current_agent()}


