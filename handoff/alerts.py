"""The operations view's alerts: what needs someone's attention now, each with a link to what is behind it.

One place for the rules, read by the console's and the operator's "Panel" pages and by whatever sends them by
e-mail (the scheduler): `current_alerts(...)` needs no Flask, only a connection, Redis and the settings.

The rules (thresholds are the module's constants; the design's 10.1.3 asks for "escalamiento > 30 %"):
- `escalation_rate`: in the last hour more than 30 % of a company's conversations were escalated
  (`storage.metrics`' escalation rate over the current clock hour and the one before it, as its ranges are
  whole hours; at least `ESCALATION_MIN_CONVERSATIONS` conversations, so one escalated chat at 3 a.m. is not
  an alert). Link: the cases of that hour in the search
  (console) or the company's panel (operator);
- `provider_errors`: sends the provider refused in the last 24 hours, by error code, each code with what it
  usually means (`channels.error_meanings`, as on the operator's landing page; `storage.tenant_health`);
- `llm_breaker`: the circuit breaker of the company's model account is open (`llm.breaker`; the account is
  `runtime.model_access`'s): the bot answers with its rules alone until it closes;
- `core_timeouts`: requests to the company's logistics core that timed out in the last hour
  (`runtime.core_timeouts`, counted per core by every `TenantCores` client);
- `template_paused` / `number_quality` (issue 17): Meta paused, disabled or rejected one of the company's
  templates (`storage.account_notices`' template states), or its number's last quality notice is FLAGGED,
  YELLOW or RED. Link: the templates page's "Avisos de WhatsApp" (console) or the company's row (operator);
- `case_backlog`: the company's cases still waiting for a first answer past their SLA target
  (CONSOLE_SLA_HIGH_S / CONSOLE_SLA_NORMAL_S), with the longest wait. Link: the queue;
- operator only, for the whole deployment (no company): `unroutable` (events for numbers no company serves,
  or a suspended one's, in the last 24 hours: `storage.tenant_health`) and `bot_backlog` (customers waiting
  for a worker in `runtime.inbox` and the oldest message not yet handled, when it has waited more than
  `BACKLOG_WAIT_S`).

Links are paths of the web app (`/console/...` for a company's people, `/operator/...` for the operator), so an
e-mail can put `PUBLIC_BASE_URL` in front. Read-only; database errors raise, Redis errors leave the Redis-based
alerts out (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import redis
from psycopg import Connection
from psycopg_pool import ConnectionPool

from channels.error_meanings import meaning
from config import Settings
from llm import breaker
from runtime import core_timeouts, inbox
from runtime.cores import core_url
from runtime.model_access import access_for
from storage import account_notices, metrics, tenant_health, tenant_llm
from storage.crypto import Vault

log = logging.getLogger(__name__)

ESCALATION_RATE = 0.30
ESCALATION_MIN_CONVERSATIONS = 3
BACKLOG_WAIT_S = 60
PROVIDER_ERROR_HOURS = 24

Audience = Literal["company", "operator"]


@dataclass(frozen=True)
class Alert:
    """One alert as people read it (Spanish), with the link to what is behind it."""

    kind: str  # escalation_rate, provider_errors, template_paused, number_quality, llm_breaker, core_timeouts,
    # case_backlog, unroutable, bot_backlog
    tenant_id: int | None  # None: the whole deployment (operator only)
    company: str  # the company's name ('' for the deployment)
    title: str
    detail: str
    link: str  # a path of the web app; '' when there is nothing to open
    link_text: str = ""
    items: tuple[tuple[str, str], ...] = ()  # (what, meaning): a provider error's codes

    @property
    def key(self) -> str:
        """Names the alert for de-duplication (one e-mail per alert per hour): its kind and company."""
        return f"{self.kind}:{self.tenant_id or 0}"


@dataclass(frozen=True)
class _Company:
    id: int
    slug: str
    name: str
    timezone: str
    core_url: str


def current_alerts(pool: ConnectionPool, redis_conn: redis.Redis, settings: Settings, vault: Vault,
                   tenant_ids: Sequence[int] | None, now: datetime, *, audience: Audience) -> list[Alert]:
    """The alerts of these companies (None: every company, the operator's view) at `now` (aware).

    `audience` picks the links (the console's pages or the operator's) and whether the deployment's own
    alerts (unroutable events, the bot's backlog) are included: only for the operator's view of every company.
    Company alerts come company by company, in the order of the rules above.
    """
    found: list[Alert] = []
    with pool.connection() as conn:
        companies = _companies(conn, settings, tenant_ids)
        errors = tenant_health.provider_errors(conn, PROVIDER_ERROR_HOURS)
        backlogs = _backlogs(conn, settings, [c.id for c in companies], now)
        activity = tenant_health.activity(conn)  # who wrote lately: the others cannot have a high rate now
        window = _window(now)[0]
        paused = account_notices.unusable_by_tenant(conn, [c.id for c in companies])
        quality = account_notices.number_quality(conn)
        for company in companies:
            last = activity.get(company.id)
            if last is not None and last.last_inbound is not None and last.last_inbound >= window:
                found += _escalations(conn, company, now, audience)
            if company.id in backlogs:
                found.append(_case_backlog(company, *backlogs[company.id], now, audience))
            found += _provider_errors(company, errors.get(company.id, {}), audience)
            found += _whatsapp_account(company, paused.get(company.id, []), quality.get(company.id), audience)
        if audience == "operator" and tenant_ids is None:
            found += _unroutable(conn)
            found += _bot_backlog(conn, redis_conn, now)
    found += _redis_alerts(pool, redis_conn, settings, vault, companies, now, audience)
    return found


def _companies(conn: Connection[Any], settings: Settings, tenant_ids: Sequence[int] | None) -> list[_Company]:
    if tenant_ids is None:
        rows = conn.execute("SELECT id, slug, name, timezone, core_api_url FROM tenants ORDER BY name").fetchall()
    else:
        rows = conn.execute("SELECT id, slug, name, timezone, core_api_url FROM tenants WHERE id = ANY(%s)"
                            " ORDER BY name", (list(tenant_ids),)).fetchall()
    return [_Company(int(r["id"]), str(r["slug"]), str(r["name"]), str(r["timezone"]),
                     core_url(settings, str(r["slug"]), r["core_api_url"]))
            for r in rows]


def _panel(company: _Company) -> str:
    return "/operator/dashboard?" + urlencode({"company": company.slug})


def _escalations(conn: Connection[Any], company: _Company, now: datetime, audience: Audience) -> list[Alert]:
    figures = metrics.operations(conn, [company.id], *_window(now), company.timezone)
    conversations = figures.volume.conversations
    rate = figures.quality.escalation.value
    if conversations < ESCALATION_MIN_CONVERSATIONS or rate is None or rate <= ESCALATION_RATE:
        return []
    day = now.astimezone(ZoneInfo(company.timezone)).date().isoformat()
    link = (f"/console/search?{urlencode({'status': '', 'from': day, 'to': day})}" if audience == "company"
            else _panel(company))
    return [Alert("escalation_rate", company.id, company.name,
                  f"Escalamiento alto: {round(rate * 100)} % en la última hora",
                  f"De {conversations} conversaciones de la última hora, {_escalated(round(rate * conversations))} "
                  f"a una persona (objetivo: menos de 20 %; alerta sobre {round(ESCALATION_RATE * 100)} %).",
                  link, "Ver los casos de hoy" if audience == "company" else "Ver el panel de la empresa")]


def _window(now: datetime) -> tuple[datetime, datetime]:
    """The escalation rule's range: the current UTC hour and the one before it."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour - timedelta(hours=1), hour + timedelta(hours=1)


def _backlogs(conn: Connection[Any], settings: Settings, tenant_ids: list[int],
              now: datetime) -> dict[int, tuple[int, datetime]]:
    """tenant id -> (cases waiting for a first answer past their SLA, the oldest one's clock start)."""
    rows = conn.execute(
        """
        SELECT tenant_id, count(*) AS n, min(COALESCE(callback_due_at, created_at)) AS oldest FROM escalations
        WHERE tenant_id = ANY(%(tenants)s) AND status IN ('waiting', 'callback') AND first_response_at IS NULL
          AND %(now)s > COALESCE(callback_due_at, created_at)
                        + (CASE priority WHEN 'high' THEN %(high)s ELSE %(normal)s END) * interval '1 second'
        GROUP BY tenant_id
        """,
        {"tenants": tenant_ids, "now": now, "high": settings.console_sla_high_s,
         "normal": settings.console_sla_normal_s},
    ).fetchall()
    return {int(r["tenant_id"]): (int(r["n"]), r["oldest"]) for r in rows}


def _case_backlog(company: _Company, waiting: int, oldest: datetime, now: datetime, audience: Audience) -> Alert:
    cases = "1 caso espera" if waiting == 1 else f"{waiting} casos esperan"
    return Alert("case_backlog", company.id, company.name, f"{cases} una primera respuesta fuera de tiempo",
                 f"El que más lleva esperando: {_duration((now - oldest).total_seconds())}.",
                 "/console?status=waiting" if audience == "company" else _panel(company),
                 "Abrir la cola" if audience == "company" else "Ver el panel de la empresa")


def _provider_errors(company: _Company, codes: dict[str, int], audience: Audience) -> list[Alert]:
    if not codes:
        return []
    total = sum(codes.values())
    items = tuple((f"Código {code or 'sin código'}: {n}", meaning(code) or "Sin descripción conocida.")
                  for code, n in codes.items())
    sends = "1 envío" if total == 1 else f"{total} envíos"
    return [Alert("provider_errors", company.id, company.name,
                  f"WhatsApp rechazó {sends} en las últimas 24 horas",
                  "Por código de error, con lo que suele significar:",
                  "#errores-proveedor" if audience == "company" else "/operator#" + company.slug,
                  "Ver los códigos" if audience == "company" else "Ver en Empresas", items)]


def _whatsapp_account(company: _Company, paused: list[str], quality: account_notices.Notice | None,
                      audience: Audience) -> list[Alert]:
    """Meta paused or disabled templates of the company; its number's quality went low (issue 17)."""
    link = "/console/templates#avisos-whatsapp" if audience == "company" else "/operator#" + company.slug
    found = []
    if paused:
        names = ", ".join(f"«{name}»" for name in paused)
        found.append(Alert("template_paused", company.id, company.name,
                           "Meta pausó una plantilla de avisos" if len(paused) == 1
                           else f"Meta pausó {len(paused)} plantillas de avisos",
                           f"{names}: los avisos usan una plantilla de respaldo o esperan hasta que Meta la "
                           "vuelva a aprobar.", link,
                           "Ver las plantillas" if audience == "company" else "Ver en Empresas"))
    rating = (quality.quality or "").upper() if quality is not None else ""
    if quality is not None and (rating in ("YELLOW", "RED") or quality.event.upper() == "FLAGGED"):
        level = "media" if rating == "YELLOW" else "baja"
        found.append(Alert("number_quality", company.id, company.name,
                           f"La calidad del número de WhatsApp está {level}",
                           "Muchos clientes bloquean o reportan los mensajes. Si sigue así, WhatsApp puede bajar el "
                           "límite diario o pausar plantillas.", link,
                           "Ver los avisos de WhatsApp" if audience == "company" else "Ver en Empresas"))
    return found


def _redis_alerts(pool: ConnectionPool, redis_conn: redis.Redis, settings: Settings, vault: Vault,
                  companies: list[_Company], now: datetime, audience: Audience) -> list[Alert]:
    """The model's circuit breaker and the core's timeouts (Redis down: these two are left out, logged)."""
    found: list[Alert] = []
    epoch = now.timestamp()
    try:
        for company in companies:
            access = access_for(settings, tenant_llm.read(pool, vault, company.id))
            if access is not None and breaker.state(redis_conn, access.circuit, epoch) == "open":
                found.append(Alert(
                    "llm_breaker", company.id, company.name, "La IA está en pausa: el bot responde solo con reglas",
                    "El proveedor del modelo falló varias veces seguidas; se vuelve a probar en unos minutos. "
                    "Los clientes siguen recibiendo respuesta.",
                    "#intenciones" if audience == "company" else f"/operator/tenants/{company.slug}/edit",
                    "Ver reglas e IA" if audience == "company" else "Revisar el modelo de la empresa"))
            timeouts = core_timeouts.count(redis_conn, company.core_url, epoch, hours=1)
            if timeouts:
                times = "1 consulta" if timeouts == 1 else f"{timeouts} consultas"
                found.append(Alert(
                    "core_timeouts", company.id, company.name,
                    f"El sistema logístico no respondió a tiempo ({times} esta hora)",
                    "Mientras tanto el bot pide a los clientes que vuelvan a intentar en unos minutos.",
                    "" if audience == "company" else f"/operator/tenants/{company.slug}/edit",
                    "" if audience == "company" else "Revisar la conexión del sistema logístico"))
    except redis.RedisError as exc:
        log.warning("alerts from Redis left out: %s", type(exc).__name__)
    return found


def _unroutable(conn: Connection[Any]) -> list[Alert]:
    groups = [g for g in tenant_health.unroutable(conn) if g.last_day]
    if not groups:
        return []
    total = sum(g.last_day for g in groups)
    numbers = len({(g.provider, g.number) for g in groups})
    events = "1 mensaje" if total == 1 else f"{total} mensajes"
    where = "1 número" if numbers == 1 else f"{numbers} números"
    return [Alert("unroutable", None, "", f"{events} sin empresa en las últimas 24 horas",
                  f"Llegaron a {where} que ninguna empresa activa atiende; no se respondieron.",
                  "/operator#sin-empresa", "Ver los números")]


def _bot_backlog(conn: Connection[Any], redis_conn: redis.Redis, now: datetime) -> list[Alert]:
    row = conn.execute("SELECT count(*) AS n, min(received_at) AS oldest FROM webhook_events"
                       " WHERE status IN ('received', 'queued')").fetchone()
    if row is None or not row["n"]:
        return []
    pending, waited = int(row["n"]), (now - row["oldest"]).total_seconds()
    if waited < BACKLOG_WAIT_S:
        return []
    try:
        customers = int(redis_conn.llen(inbox.READY_KEY))
    except redis.RedisError as exc:
        log.warning("inbox length unreadable: %s", type(exc).__name__)
        customers = 0
    waiting = f"{customers} clientes esperan turno" if customers != 1 else "1 cliente espera turno"
    return [Alert("bot_backlog", None, "", f"Mensajes sin atender: {pending}",
                  f"{waiting}; el mensaje más antiguo lleva {_duration(waited)}. Revisa que los procesos worker "
                  "estén corriendo.", "/readyz", "Ver el estado del servicio")]


def _escalated(n: int) -> str:
    return "1 pasó" if n == 1 else f"{n} pasaron"


def _duration(seconds: float) -> str:
    minutes = int(max(0, seconds) // 60)
    if minutes < 1:
        return "menos de 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
