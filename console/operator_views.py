"""The operator's area (/operator): the provider that runs the deployment watches and manages its companies.

Pages: login and logout; "Empresas" (the landing page: every tenant's plan,
status, numbers and whether each was verified, last customer message, last
reply, provider errors of the last 24 hours by code; unroutable events apart,
as they have no tenant), suspend and resume; "Uso" (the month's usage per
tenant with its overages, and the same rows as CSV: `encargo-admin usage
--csv`'s own code). Onboarding and editing a tenant are
`console.operator_onboarding`.

An operator sees every tenant by design; an agent's session never opens
these pages (console/operators.py). The landing page costs a fixed number of
queries whatever the number of tenants (storage/tenant_health.py).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from channels.error_meanings import meaning
from console import auth, cli_usage, login_limit, operators, whatsapp_notices
from console.blueprint import CSP, state
from console.database import get_pool
from storage import account_notices, plans, tenant_admin, tenant_health, usage
from storage import operators as operator_rows
from storage.tenant_admin import TenantListing
from storage.tenants import ACTIVE, SUSPENDED, TenantError

log = logging.getLogger(__name__)

bp = Blueprint("operator", __name__, url_prefix=operators.OPERATOR_PATH, template_folder="templates")

STATUS_NAMES = {ACTIVE: "activa", SUSPENDED: "suspendida"}
REASONS = {"no tenant for the receiving number": "ninguna empresa tiene ese número",
           "tenant suspended": "la empresa está suspendida",
           "no tenant for the account": "ninguna empresa tiene esa cuenta de WhatsApp (aviso de Meta)"}
# The usage page's columns: (header, figure of `cli_usage.month_row`).
USAGE_COLUMNS = (("Conversaciones del bot", "bot_conversations"), ("Mensajes de clientes", "customer_messages"),
                 ("Respuestas del bot", "bot_replies"), ("Respuestas de agentes", "agent_replies"),
                 ("Notificaciones", "notifications"), ("Plantillas de utilidad", "templates_utility"),
                 ("Utilidad gratis (en ventana)", "templates_utility_free"),
                 ("Plantillas de marketing", "templates_marketing"),
                 ("Plantillas de autenticación", "templates_authentication"),
                 ("Plantillas sin categoría", "templates_uncategorised"), ("Escalamientos", "escalations"),
                 ("Llamadas al modelo", "llm_calls"), ("Tokens de entrada", "llm_tokens_in"),
                 ("Tokens de salida", "llm_tokens_out"), ("Costo del modelo (USD)", "llm_usd"))
LIMIT_NAMES = {"bot_conversations": "conversaciones del bot", "llm_usd": "gasto del modelo"}
RULE_NAMES = {"flag": "sigue atendiendo, se marca el exceso", "rules_only": "responde solo con reglas"}


def init_app(app: Flask) -> None:
    """Mount the operator area (its own cookie: console/operators.py). Called by `console.views.init_app`."""
    from console import operator_onboarding  # noqa: F401 - its routes join `bp`

    operators.init_app(app)
    app.register_blueprint(bp)


@bp.before_request
def _csrf() -> None:
    auth.check_csrf()  # reads the operator's own cookie under /operator


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    if request.path.startswith(operators.OPERATOR_PATH + "/api/"):
        return jsonify(error=exc.description), exc.code or 500
    return exc


@bp.context_processor
def _template_values() -> dict[str, Any]:
    return {"csrf_token": auth.csrf_token, "operator": operators.current_operator()}


@bp.app_template_filter("ago")
def _ago(moment: datetime | None) -> str:
    """'hace 5 min', 'hace 3 h', 'hace 2 días'; 'nunca' without a moment."""
    if moment is None:
        return "nunca"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    if seconds < 60:
        return "hace un momento"
    if seconds < 3600:
        return f"hace {seconds // 60} min"
    if seconds < 48 * 3600:
        return f"hace {seconds // 3600} h"
    return f"hace {seconds // 86400} días"


@bp.app_template_filter("figure")
def _figure(value: Any) -> str:
    """A usage figure as the CSV writes it: dollars with 4 decimals, counts as plain integers."""
    return f"{value:.4f}" if isinstance(value, Decimal) else str(value)


@bp.app_template_filter("local_time")
def _local_time(moment: datetime | None) -> str:
    """The moment on the deployment's clock (TENANT_TIMEZONE), as '05/12/2026 14:03'."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(state().settings.tenant_timezone)).strftime("%d/%m/%Y %H:%M")


# -- login, logout -------------------------------------------------------------------------------------------


@bp.get("/login")
def login() -> str:
    return render_template("operator/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login_submit() -> Any:
    """E-mail and password of an operator; failures are limited as the agents' login (console/login_limit.py)."""
    email = (request.form.get("email") or "").strip()
    password = request.form.get("password") or ""
    target = request.form.get("next") or ""
    settings, redis_conn = state().settings, state().desk.redis
    account, address = operators.LIMIT_PREFIX + email.lower(), auth.client_address()
    wait_s = login_limit.blocked_for(redis_conn, settings, account, address)
    if wait_s:
        log.warning("operator login refused: too many failures")
        minutes = -(-wait_s // 60)
        error = f"Demasiados intentos fallidos. Espera {minutes} {'minuto' if minutes == 1 else 'minutos'}."
        return render_template("operator/login.html", next=target, error=error), 429
    with get_pool().connection() as conn:
        found = operator_rows.authenticate(conn, email, password) if email and password else None
    if found is None:
        login_limit.record_failure(redis_conn, settings, account, address)
        return render_template("operator/login.html", next=target, error="Correo o contraseña incorrectos."), 401
    login_limit.clear_address(redis_conn, settings, account, address)
    operators.log_in(found)
    log.info("operator logged in", extra={"operator_id": found.id})
    inside = target.startswith(operators.OPERATOR_PATH + "/") and not target.startswith("//")
    return redirect(target if inside else url_for(".tenants"))


@bp.post("/logout")
def logout() -> Any:
    operators.log_out()
    return redirect(url_for(".login"))


# -- Empresas: tenants and their health ----------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCount:
    code: str
    count: int
    meaning: str


@dataclass(frozen=True)
class TenantHealth:
    listing: TenantListing
    plan: str
    activity: tenant_health.Activity
    errors: list[ErrorCount]

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.listing.tenant.status, self.listing.tenant.status)


def health_rows() -> tuple[list[TenantHealth], list[tenant_health.UnroutableGroup]]:
    """Every tenant's row and the unroutable groups, in a fixed number of queries."""
    pool = get_pool()
    listings = tenant_admin.list_tenants(pool)
    with pool.connection() as conn:
        plan_names = {int(r["id"]): str(r["name"]) for r in conn.execute(  # type: ignore[call-overload]
            "SELECT t.id, p.name FROM tenants t JOIN plans p ON p.code = t.plan_code").fetchall()}
        activity = tenant_health.activity(conn)
        errors = tenant_health.provider_errors(conn)
        unroutable = tenant_health.unroutable(conn)
    none = tenant_health.Activity(None, None)
    found = []
    for listing in listings:
        tenant_id = listing.tenant.id
        providers = {c.provider for c in listing.channels}
        provider = next(iter(providers)) if len(providers) == 1 else ""
        found.append(TenantHealth(
            listing=listing, plan=plan_names.get(tenant_id, ""), activity=activity.get(tenant_id, none),
            errors=[ErrorCount(code, n, meaning(code, provider)) for code, n in errors.get(tenant_id, {}).items()]))
    return found, unroutable


@bp.get("")
@operators.operator_required
def tenants() -> str:
    rows, unroutable = health_rows()
    with get_pool().connection() as conn:  # issue 17: the number's quality as Meta last reported it
        quality = {tenant_id: words for tenant_id, notice in account_notices.number_quality(conn).items()
                   if (words := whatsapp_notices.quality_words(notice)) is not None}
    return render_template("operator/tenants.html", rows=rows, unroutable=unroutable, reasons=REASONS,
                           quality=quality)


@bp.post("/tenants/<slug>/status")
@operators.operator_required
def set_status(slug: str) -> Any:
    """Suspend or resume a tenant (storage.tenant_admin announces it: every process sees it within a second)."""
    wanted = request.form.get("status") or ""
    if wanted not in STATUS_NAMES:
        abort(400, description="Ese estado no existe.")
    try:
        tenant = tenant_admin.set_status(get_pool(), state().desk.redis, slug, wanted)
    except TenantError:
        abort(404, description="No encontramos esa empresa.")
    log.info("operator changed a tenant's status", extra={"tenant_id": tenant.id, "status": wanted,
                                                         "operator_id": operators.require_operator().id})
    done = "suspendida: sus mensajes ya no se atienden." if wanted == SUSPENDED else "activa otra vez."
    flash(f"{tenant.name} quedó {done}")
    return redirect(url_for(".tenants"))


# -- Uso: the usage table ------------------------------------------------------------------------------------


def _month() -> usage.Month:
    given = request.args.get("month")
    if not given:
        now = datetime.now(ZoneInfo(state().settings.tenant_timezone))
        return usage.Month(now.year, now.month)
    try:
        return usage.Month.parse(given)
    except ValueError:
        abort(400, description="El mes se escribe AAAA-MM, por ejemplo 2026-12.")


def usage_rows(month: usage.Month) -> list[dict[str, Any]]:
    """Every tenant's month, exactly as `encargo-admin usage` counts it (console/cli_usage.py `month_row`)."""
    with get_pool().connection() as conn:
        return [cli_usage.month_row(conn, tenant_id, slug, month) for tenant_id, slug in usage.tenants(conn)]


@bp.get("/usage")
@operators.operator_required
def usage_page() -> str:
    month = _month()
    rows = usage_rows(month)
    with get_pool().connection() as conn:
        names = {str(r["slug"]): str(r["name"]) for r in conn.execute(  # type: ignore[call-overload]
            "SELECT slug, name FROM tenants").fetchall()}
        plan_names = {p.code: p.name for p in plans.all_plans(conn)}
    over = {row["tenant"]: [_overage_text(item) for item in row["over_limits"].split()] for row in rows}
    return render_template("operator/usage.html", month=str(month), rows=rows, names=names, over=over,
                           plan_names=plan_names, columns=USAGE_COLUMNS)


def _overage_text(item: str) -> str:
    limit, _, rule = item.partition(":")
    return f"{LIMIT_NAMES.get(limit, limit)}: {RULE_NAMES.get(rule, rule)}"


@bp.get("/usage.csv")
@operators.operator_required
def usage_csv() -> Response:
    """The same rows as the page, as `encargo-admin usage --csv` writes them."""
    month = _month()
    out = io.StringIO()
    cli_usage.write_csv(out, usage_rows(month))
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="uso-{month}.csv"'})
