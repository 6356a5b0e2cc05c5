"""Onboarding a company from the operator's area, and editing it: "Nueva empresa", "Editar", numbers.

One page in four short steps: the company (name, slug derived from the name
and editable, time zone, bot name, greeting), its WhatsApp number (Meta:
phone number id, WABA id, access token; Twilio: sender number, account SID,
auth token, Messaging Service SID) with "Enviar mensaje de prueba", its
logistics core (URL, API key, the secret its events are signed with) with
"Probar conexión", and its plan. Saving goes through `storage.tenant_admin`
(the functions `encargo-admin tenant-create` and `channel-add` use), which
announces the change: the new company answers its number within about a
second, without a restart.

Secrets typed in are stored encrypted and never shown back: the edit form
says only whether one is saved, and a blank secret field leaves it as it is.
A test message the provider accepted marks the channel verified
(`tenant_channels.verified_at`): at once for a saved number, on saving for a
number tested before the company existed (the proof waits in the operator's
session, keyed by a hash of the number and its token).
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Response, abort, flash, jsonify, redirect, render_template, request, session, url_for

from channels.accounts import ChannelAccount
from channels.events import e164
from console import operators
from console.blueprint import state
from console.database import get_pool
from console.operator_checks import send_test_message, test_core
from console.operator_views import bp
from storage import plans, tenant_admin, tenant_changes, tenant_health, tenant_profile
from storage.tenant_admin import SLUG
from storage.tenants import TenantError

log = logging.getLogger(__name__)

TIME_ZONES = (("America/El_Salvador", "El Salvador"), ("America/Guatemala", "Guatemala"),
              ("America/Tegucigalpa", "Honduras"), ("America/Managua", "Nicaragua"),
              ("America/Costa_Rica", "Costa Rica"), ("America/Panama", "Panamá"),
              ("America/Mexico_City", "México (centro)"), ("America/Bogota", "Colombia"),
              ("America/Lima", "Perú"), ("America/Santo_Domingo", "República Dominicana"),
              ("America/New_York", "Estados Unidos (este)"), ("America/Los_Angeles", "Estados Unidos (pacífico)"))
FEATURES = {"chatbot": "chatbot de WhatsApp", "ai": "respuestas con IA", "advanced_analytics": "analítica avanzada",
            "reports": "reportes", "premium_answers": "respuestas premium", "api_access": "acceso por API",
            "white_label": "marca blanca", "executive_reports": "reportes ejecutivos"}
PROVIDERS = ("meta", "twilio")
MAX_TEXT = 500


@dataclass
class ChannelForm:
    provider: str = ""  # '' : no number yet
    number: str = ""
    secret: str = field(default="", repr=False)
    waba_id: str = ""
    account_sid: str = ""
    messaging_service_sid: str = ""

    @classmethod
    def read(cls, form: Any) -> ChannelForm:
        provider = (form.get("provider") or "").strip()
        if provider == "meta":
            return cls(provider, (form.get("meta_number") or "").strip(), (form.get("meta_token") or "").strip(),
                       waba_id=(form.get("waba_id") or "").strip())
        if provider == "twilio":
            return cls(provider, e164(form.get("twilio_number")) or "", (form.get("twilio_token") or "").strip(),
                       account_sid=(form.get("account_sid") or "").strip(),
                       messaging_service_sid=(form.get("messaging_service_sid") or "").strip())
        return cls()

    def problems(self, *, check_owner: bool = True) -> dict[str, str]:
        """Field name -> what is wrong, in Spanish (empty: fine); `check_owner`: a number another company has
        is wrong too."""
        found: dict[str, str] = {}
        if self.provider == "meta" and not re.fullmatch(r"\d{5,20}", self.number):
            found["meta_number"] = "El identificador del número (phone number id) son solo dígitos, como en Meta."
        if self.provider == "twilio":
            if not re.fullmatch(r"\+\d{8,15}", self.number):
                found["twilio_number"] = "Escribe el número con su código de país, por ejemplo +503 2222 0000."
            if self.account_sid and not re.fullmatch(r"AC[0-9a-fA-F]{32}", self.account_sid):
                found["account_sid"] = "El Account SID empieza con AC y tiene 34 caracteres."
            if self.messaging_service_sid and not re.fullmatch(r"MG[0-9a-fA-F]{32}", self.messaging_service_sid):
                found["messaging_service_sid"] = "El Messaging Service SID empieza con MG y tiene 34 caracteres."
        if self.provider and check_owner and not found:
            owner = tenant_profile.number_owner(get_pool(), self.provider, self.number)
            if owner is not None:
                found["meta_number" if self.provider == "meta" else "twilio_number"] = \
                    "Ese número ya es de otra empresa."
        return found

    def account(self, stored_secret: str | None = None) -> ChannelAccount:
        return ChannelAccount(self.provider, self.number, self.secret or stored_secret or None,
                              self.account_sid or None, self.messaging_service_sid or None)

    def proof(self) -> str:
        """What the operator's session keeps after a successful test: a hash, never the token."""
        seen = f"{self.provider}\n{self.number}\n{self.secret}\n{self.account_sid}\n{self.messaging_service_sid}"
        return hashlib.sha256(seen.encode()).hexdigest()[:32]


def slugify(name: str) -> str:
    """'Envíos Rápidos Cuscatlán' -> 'envios-rapidos-cuscatlan' (what the page's script proposes too)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:64].rstrip("-")


def _company(form: Any, *, editing: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The company, core and plan fields as `storage.tenant_admin` takes them, and the problems found."""
    values = {name: (form.get(name) or "").strip()
              for name in ("name", "slug", "timezone", "bot_name", "greeting", "core_api_url", "core_api_key",
                           "events_secret", "plan")}
    problems: dict[str, str] = {}
    if not values["name"]:
        problems["name"] = "Escribe el nombre de la empresa."
    if not editing:
        values["slug"] = values["slug"] or slugify(values["name"])
        if not SLUG.match(values["slug"]):
            problems["slug"] = "El identificador lleva solo minúsculas, números y guiones (por ejemplo envios-acme)."
        elif tenant_profile.slug_taken(get_pool(), values["slug"]):
            problems["slug"] = "Ya hay una empresa con ese identificador: elige otro."
    try:
        ZoneInfo(values["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        problems["timezone"] = "Elige la zona horaria de la empresa."
    if values["core_api_url"] and not re.match(r"^https?://[^\s/]+", values["core_api_url"]):
        problems["core_api_url"] = "La dirección empieza con https:// o http://."
    for name in ("name", "bot_name", "greeting"):
        if len(values[name]) > MAX_TEXT:
            problems[name] = f"Máximo {MAX_TEXT} caracteres."
    with get_pool().connection() as conn:
        if values["plan"] not in {p.code for p in plans.all_plans(conn)}:
            problems["plan"] = "Elige un plan."
    return values, problems


def _render(template: str, status: int = 200, **values: Any) -> tuple[str, int]:
    with get_pool().connection() as conn:
        choices = plans.all_plans(conn)
    plan_rows = [{"code": p.code, "name": p.name, "price": p.prices.get("monthly_usd"),
                  "features": [FEATURES.get(k, k) for k, on in p.features.items() if on]} for p in choices]
    zones = list(TIME_ZONES)
    current = (values.get("form") or {}).get("timezone")
    if current and current not in dict(zones):
        zones.append((current, current))
    return render_template(template, plans=plan_rows, zones=zones, providers=PROVIDERS, **values), status


def _proven(channel: ChannelForm) -> bool:
    return channel.proof() in (session.get("proven") or [])


def _add_channel(slug: str, channel: ChannelForm) -> None:
    """Give the tenant the number (TenantError when refused), verified at once when a test proved it."""
    console = state()
    tenant_admin.add_channel(get_pool(), console.vault, console.desk.redis, slug, provider=channel.provider,
                             number=channel.number, secret=channel.secret or None, waba_id=channel.waba_id or None,
                             account_sid=channel.account_sid or None,
                             messaging_service_sid=channel.messaging_service_sid or None)
    if _proven(channel):
        with get_pool().connection() as conn:
            tenant_health.mark_verified(conn, channel.provider, channel.number)


@bp.route("/tenants/new", methods=["GET", "POST"])
@operators.operator_required
def new_tenant() -> Any:
    if request.method == "GET":
        return _render("operator/tenant_form.html", form={"timezone": "America/El_Salvador", "plan": "pro"},
                       problems={}, editing=None)
    values, problems = _company(request.form, editing=False)
    channel = ChannelForm.read(request.form)
    problems.update(channel.problems())
    if problems:
        return _render("operator/tenant_form.html", 400, form=dict(request.form), problems=problems, editing=None)
    console = state()
    pool, redis_conn = get_pool(), console.desk.redis
    fields = {k: values[k] for k in ("bot_name", "greeting", "core_api_url", "core_api_key", "events_secret")
              if values[k]}
    try:
        tenant = tenant_admin.create_tenant(pool, console.vault, redis_conn, slug=values["slug"],
                                            name=values["name"], timezone=values["timezone"], **fields)
    except TenantError:  # taken meanwhile
        problems["slug"] = "Ya hay una empresa con ese identificador: elige otro."
        return _render("operator/tenant_form.html", 400, form=dict(request.form), problems=problems, editing=None)
    with pool.connection() as conn:
        plans.set_plan(conn, tenant.slug, values["plan"])
    tenant_changes.announce(redis_conn)
    if channel.provider:
        try:
            _add_channel(tenant.slug, channel)
        except TenantError:  # the number was taken meanwhile: the company exists, the number is added later
            flash(f"{tenant.name} se creó, pero su número ya es de otra empresa: agrega otro aquí.")
            return redirect(url_for(".edit_tenant", slug=tenant.slug))
    log.info("operator created a tenant",
             extra={"tenant_id": tenant.id, "operator_id": operators.require_operator().id})
    flash(f"{tenant.name} quedó creada y ya atiende" + (f" su número {channel.number}." if channel.provider else
                                                        ". Agrégale un número de WhatsApp para que reciba mensajes."))
    return redirect(url_for(".tenants"))


@bp.route("/tenants/<slug>/edit", methods=["GET", "POST"])
@operators.operator_required
def edit_tenant(slug: str) -> Any:
    """The same form, prefilled; a blank secret leaves the saved one as it is."""
    current = tenant_profile.profile(get_pool(), slug)
    if current is None:
        abort(404, description="No encontramos esa empresa.")
    channels = next((t.channels for t in tenant_admin.list_tenants(get_pool()) if t.tenant.slug == slug), [])
    if request.method == "GET":
        form = {"name": current.name, "slug": current.slug, "timezone": current.timezone,
                "bot_name": current.bot_name or "", "greeting": current.greeting or "",
                "core_api_url": current.core_api_url or "", "plan": current.plan_code}
        return _render("operator/tenant_form.html", form=form, problems={}, editing=current, channels=channels)
    values, problems = _company(request.form, editing=True)
    if problems:
        return _render("operator/tenant_form.html", 400, form={**dict(request.form), "slug": slug}, problems=problems,
                       editing=current, channels=channels)
    changes: dict[str, str | None] = {k: values[k] or None for k in ("name", "timezone", "bot_name", "greeting",
                                                                     "core_api_url")}
    changes.update({k: values[k] for k in ("core_api_key", "events_secret") if values[k]})  # blank: unchanged
    console = state()
    tenant = tenant_admin.update_tenant(get_pool(), console.vault, console.desk.redis, slug, changes)
    if values["plan"] != current.plan_code:
        with get_pool().connection() as conn:
            plans.set_plan(conn, slug, values["plan"])
        tenant_changes.announce(console.desk.redis)
    log.info("operator updated a tenant",
             extra={"tenant_id": tenant.id, "operator_id": operators.require_operator().id})
    flash(f"Cambios de {tenant.name} guardados.")
    return redirect(url_for(".tenants"))


@bp.post("/tenants/<slug>/channels")
@operators.operator_required
def add_channel(slug: str) -> Any:
    current = tenant_profile.profile(get_pool(), slug)
    if current is None:
        abort(404, description="No encontramos esa empresa.")
    channel = ChannelForm.read(request.form)
    problems = channel.problems() if channel.provider else {"provider": "Elige Meta o Twilio."}
    if not problems:
        try:
            _add_channel(slug, channel)
        except TenantError:
            problems = {"provider": "No se pudo agregar ese número: ya es de otra empresa."}
    if problems:
        flash(" ".join(problems.values()))
    else:
        flash(f"Número {channel.number} agregado a {current.name}: ya recibe mensajes.")
    return redirect(url_for(".edit_tenant", slug=slug))


@bp.post("/tenants/<slug>/channels/remove")
@operators.operator_required
def remove_channel(slug: str) -> Any:
    provider, number = request.form.get("provider") or "", request.form.get("number") or ""
    try:
        tenant_admin.remove_channel(get_pool(), state().desk.redis, slug, provider=provider, number=number)
    except TenantError:
        abort(404, description="Esa empresa no tiene ese número.")
    flash(f"Número {number} quitado. Los mensajes que lleguen a él ya no se atienden.")
    return redirect(url_for(".edit_tenant", slug=slug))


# -- the two checks (called by the page's script; JSON) -----------------------------------------------------


@bp.post("/api/test-message")
@operators.operator_required
def api_test_message() -> Response:
    """Send the test message with the typed credentials; for a saved number a blank token means the saved one."""
    channel = ChannelForm.read(request.form)
    if not channel.provider:
        return jsonify(ok=False, text="Elige Meta o Twilio y escribe los datos del número.")
    problems = channel.problems(check_owner=False)
    if problems:
        return jsonify(ok=False, text=" ".join(problems.values()))
    owner = tenant_profile.number_owner(get_pool(), channel.provider, channel.number)
    slug = request.form.get("tenant") or ""
    if owner is not None and owner != slug:
        return jsonify(ok=False, text="Ese número ya es de otra empresa.")
    stored = None
    if owner is not None and not channel.secret:
        stored = tenant_admin.channel_secret(get_pool(), state().vault, channel.provider, channel.number)
    console = state()
    result = send_test_message(console.settings, console.desk.redis, channel.account(stored),
                               request.form.get("test_phone") or "")
    if result.ok:
        if owner is not None:
            with get_pool().connection() as conn:
                tenant_health.mark_verified(conn, channel.provider, channel.number)
        else:
            session["proven"] = [*(session.get("proven") or [])[-9:], channel.proof()]
    return jsonify(ok=result.ok, text=result.text, code=result.code)


@bp.post("/api/test-core")
@operators.operator_required
def api_test_core() -> Response:
    """Ask the core for its company with the typed URL and key (a saved company's key when left blank)."""
    url, key = (request.form.get("core_api_url") or "").strip(), (request.form.get("core_api_key") or "").strip()
    slug = request.form.get("tenant") or ""
    if not key and slug:
        key = tenant_profile.core_key(get_pool(), state().vault, slug)
    result = test_core(url, key)
    return jsonify(ok=result.ok, text=result.text)
