"""The operations view ("Panel"): a company's figures for a range of days against the range before, with charts
and the current alerts.

`/console/dashboard` is for a company's agents, supervisors and admins: always their own company, whatever the
query string says. `/operator/dashboard` is the operator's: every company, or one (`?company=<slug>`). The range
is a pick (`rango`: hoy, ayer, 7d, 30d, mes) or two dates (`desde`, `hasta`, both included) on the company's
clock (the deployment's, TENANT_TIMEZONE, for every company at once); by default today against yesterday, and a
range of N days against the N days before it.

Every figure comes from `storage.metrics` (`operations`, `series`), each with its label and tooltip from
`storage.metric_texts`; the alerts are `handoff.alerts`. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import abort, render_template, request

from console import auth, charts, operators
from console.blueprint import bp, state
from console.database import get_pool
from console.operator_views import bp as operator_bp
from handoff import alerts
from storage import metric_texts, metrics

# The design's CSAT target (section 11.2.1: "> 8.5/10"); storage.metrics' average is on a 10-point scale.
CSAT_TARGET = 8.5
# What storage.metric_texts does not name: the router's intents and WhatsApp's template categories, as a
# manager reads them (the figures' own labels and tooltips are all metric_texts').
INTENT_NAMES = {
    "track_package": "Rastrear un paquete", "find_packages": "Buscar paquetes sin código",
    "hours": "Horarios", "locations": "Puntos y direcciones", "pricing": "Precios",
    "delivery_time": "Tiempo de entrega",
    "requirements": "Requisitos para enviar", "unclaimed_policy": "Paquetes no retirados", "refund": "Reembolsos",
    "payment": "Pagos", "human_agent": "Hablar con una persona", "complaint": "Quejas", "sales_lead": "Ventas",
    "change_delivery": "Cambiar la entrega", "greeting": "Saludos", "thanks": "Agradecimientos",
    "goodbye": "Despedidas", "opt_out": "Dejar de recibir avisos", "menu": "Menú", "out_of_scope": "Otros temas",
}
CATEGORY_NAMES = {"templates_utility": "Utilidad (con costo)", "templates_utility_free": "Utilidad gratis (en 24 h)",
                  "templates_marketing": "Marketing", "templates_authentication": "Autenticación",
                  "templates_uncategorised": "Sin categoría"}
PICKS = {"hoy": "Hoy", "ayer": "Ayer", "7d": "Últimos 7 días", "30d": "Últimos 30 días", "mes": "Este mes"}
MAX_DAYS = 366
WEEKDAYS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")


@dataclass(frozen=True)
class Period:
    """Whole days `first`..`last` (both included) on the clock `tz`; `pick` names a quick pick ('' for dates)."""

    first: date
    last: date
    tz: str
    pick: str = ""

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=ZoneInfo(self.tz))

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=ZoneInfo(self.tz))

    def before(self) -> Period:
        """The same number of days just before (yesterday for today)."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.tz)

    @property
    def title(self) -> str:
        if self.pick:
            return PICKS[self.pick]
        if self.days == 1:
            return _day(self.first)
        return f"Del {_day(self.first)} al {_day(self.last)}"

    @property
    def compared(self) -> str:
        """What the range is compared with, as the page says it."""
        if self.pick == "hoy":
            return "ayer"
        if self.days == 1:
            return "el día anterior"
        return f"los {self.days} días anteriores"


def _day(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()]} {day.strftime('%d/%m/%Y')}"


def period_from(args: dict[str, str], tz: str, now: datetime) -> Period:
    """The range the query string asks for (400 with the reason when it is not a range)."""
    today = now.astimezone(ZoneInfo(tz)).date()
    pick = args.get("rango", "")
    if args.get("desde") or args.get("hasta"):
        try:
            first = date.fromisoformat(args.get("desde") or args.get("hasta") or "")
            last = date.fromisoformat(args.get("hasta") or args.get("desde") or "")
        except ValueError:
            abort(400, description="Escribe las fechas como AAAA-MM-DD, por ejemplo 2026-12-01.")
        if last < first:
            abort(400, description="La fecha final no puede ser antes de la inicial.")
        if (last - first).days + 1 > MAX_DAYS:
            abort(400, description=f"Elige un rango de hasta {MAX_DAYS} días.")
        return Period(first, last, tz)
    if pick in ("", "hoy"):
        return Period(today, today, tz, "hoy")
    if pick == "ayer":
        return Period(today - timedelta(days=1), today - timedelta(days=1), tz, "ayer")
    if pick == "7d":
        return Period(today - timedelta(days=6), today, tz, "7d")
    if pick == "30d":
        return Period(today - timedelta(days=29), today, tz, "30d")
    if pick == "mes":
        return Period(today.replace(day=1), today, tz, "mes")
    abort(400, description="Ese rango no existe: elige hoy, ayer, 7 días, 30 días o este mes.")


# -- formatting ----------------------------------------------------------------------------------------------


def count_text(value: int) -> str:
    return f"{value:,}".replace(",", " ")


def pct(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)} %"


def seconds_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def minutes_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def usd(value: Decimal | float | None, places: int = 2) -> str:
    return "—" if value is None else f"US$ {float(value):.{places}f}"


def change(now: float | None, before: float | None) -> tuple[str, str]:
    """The change against the range before, and its direction ('up', 'down', 'same', '' unknown)."""
    if now is None or before is None:
        return "", ""
    if before == 0:
        return ("nuevo", "up") if now else ("sin cambio", "same")
    delta = (now - before) / before
    if abs(delta) < 0.005:
        return "sin cambio", "same"
    return f"{'+' if delta > 0 else '−'}{abs(round(delta * 100))} %", "up" if delta > 0 else "down"


@dataclass(frozen=True)
class Figure:
    """One figure as a card shows it: label, value, tooltip, change, and for quality its target and verdict."""

    key: str
    label: str
    value: str
    tooltip: str
    change: str = ""
    direction: str = ""
    target: str = ""
    met: bool | None = None  # None: no target, or nothing counted yet


def _volume(ops: metrics.Operations, before: metrics.Operations) -> list[Figure]:
    found = []
    for key in ("conversations", "customer_messages", "unique_customers", "notifications"):
        value, previous = getattr(ops.volume, key), getattr(before.volume, key)
        shift, direction = change(value, previous)
        found.append(Figure(key, metric_texts.label(key), count_text(value), metric_texts.tooltip(key),
                            shift, direction))
    return found


def _rate(key: str, rate: metrics.Rate, previous: metrics.Rate) -> Figure:
    sign = ">" if rate.above else "<"
    shift, direction = change(rate.value, previous.value)
    return Figure(key, metric_texts.label(key), pct(rate.value), metric_texts.tooltip(key), shift, direction,
                  f"objetivo {sign} {round(rate.target * 100)} %", rate.met)


def _quality(ops: metrics.Operations, before: metrics.Operations) -> list[Figure]:
    q, b = ops.quality, before.quality
    found = [_rate("resolution_rate", q.resolution, b.resolution),
             _rate("escalation_rate", q.escalation, b.escalation),
             _rate("not_understood_rate", q.not_understood, b.not_understood)]
    rt = q.response_time
    for key, value, previous in (("response_p50_s", rt.p50_s, b.response_time.p50_s),
                                 ("response_p95_s", rt.p95_s, b.response_time.p95_s)):
        shift, direction = change(value, previous)
        met = None if value is None else value <= rt.target_s
        found.append(Figure(key, metric_texts.label(key), seconds_text(value), metric_texts.tooltip(key), shift,
                            direction, f"objetivo < {seconds_text(rt.target_s)}", met))
    csat, csat_before = metrics.figure(ops, "csat_average"), metrics.figure(before, "csat_average")
    shift, direction = change(csat, csat_before)
    found.append(Figure("csat_average", metric_texts.label("csat_average"),
                        "—" if csat is None else f"{csat:.1f} / 10",
                        metric_texts.tooltip("csat_average"), shift, direction,
                        f"objetivo > {CSAT_TARGET:.1f} / 10",
                        None if csat is None else csat > CSAT_TARGET))
    fr, fb = q.first_response, b.first_response
    shift, direction = change(fr.within_sla.value, fb.within_sla.value)
    found.append(Figure("first_response_in_sla_rate", metric_texts.label("first_response_in_sla_rate"),
                        pct(fr.within_sla.value), metric_texts.tooltip("first_response_in_sla_rate"), shift,
                        direction, "objetivo: todos a tiempo",
                        None if fr.within_sla.value is None else fr.within_sla.numerator == fr.answered))
    shift, direction = change(fr.average_s, fb.average_s)
    found.append(Figure("first_response_average_s", metric_texts.label("first_response_average_s"),
                        minutes_text(fr.average_s), metric_texts.tooltip("first_response_average_s"), shift,
                        direction))
    return found


def _csat(ops: metrics.Operations) -> list[dict[str, Any]]:
    """The distribution of each rating scale: the bot's 1-5 always, the agents' 1-10 when someone answered it."""
    found = []
    for scale in ops.quality.csat:
        if scale.scale != 5 and not scale.ratings:
            continue
        who = "al asistente" if scale.scale == 5 else "a tu equipo"
        title = f"{metric_texts.label('csat_distribution')} {who} (de 1 a {scale.scale})"
        counts = [(str(i + 1), n) for i, n in enumerate(scale.distribution)]
        average = "—" if scale.average is None else f"{scale.average:.1f}" + f" / {scale.scale}"
        ratings = "1 calificación" if scale.ratings == 1 else f"{count_text(scale.ratings)} calificaciones"
        found.append({"key": f"csat_distribution_{scale.scale}", "label": title, "average": average,
                      "tooltip": metric_texts.tooltip("csat_distribution"), "ratings": ratings,
                      "chart": charts.distribution(title, counts)})
    return found


def _intents(ops: metrics.Operations) -> dict[str, Any]:
    intents = ops.intents
    bars = [charts.Bar(INTENT_NAMES.get(i.intent, i.intent), i.share, pct(i.share),
                       f"{count_text(i.messages)} msj") for i in intents.top]
    undecided = max(0, intents.routed - intents.by_rules - intents.by_llm)
    return {
        "title": metric_texts.label("top_intents"), "tooltip": metric_texts.tooltip("top_intents"),
        "chart": charts.hbars(metric_texts.label("top_intents"), bars, scale_max=1.0,
                              empty="Todavía no hay mensajes"),
        "routed": count_text(intents.routed), "rules": pct(intents.rules_share), "llm": pct(intents.llm_share),
        "split": charts.distribution("Quién entendió los mensajes",
                                     [("Reglas", intents.by_rules), ("IA", intents.by_llm),
                                      ("Sin tema", undecided)], empty="Todavía no hay mensajes"),
    }


def _cost(ops: metrics.Operations) -> dict[str, Any]:
    c = ops.cost
    categories = [("templates_utility", c.templates_utility), ("templates_utility_free", c.templates_utility_free),
                  ("templates_marketing", c.templates_marketing),
                  ("templates_authentication", c.templates_authentication),
                  ("templates_uncategorised", c.templates_uncategorised)]
    return {
        "templates": [{"key": k, "label": CATEGORY_NAMES[k], "value": count_text(n)} for k, n in categories],
        "templates_total": count_text(c.templates),
        "llm_usd": usd(c.llm_usd), "llm_usd_per_conversation": usd(c.llm_usd_per_conversation, 4),
    }


def _series(tenant_ids: list[int] | None, period: Period) -> dict[str, Any]:
    step: metrics.Step = "hour" if period.days == 1 else "day"
    with get_pool().connection() as conn:
        points = metrics.series(conn, tenant_ids, period.start, period.end, period.tz, "conversations", step)
    shown = [charts.Point(f"{p.hour} h" if step == "hour" else p.strftime("%d/%m"), v) for p, v in points]
    title = "Conversaciones por hora" if step == "hour" else "Conversaciones por día"
    return {"title": title, "tooltip": metric_texts.tooltip("conversations"),
            "chart": charts.series(title, shown, value_text="{:.0f}", empty="Todavía no hay conversaciones")}


def _pick_links(company: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Each quick pick: its key, its name and its query string (the operator's company filter kept)."""
    keep = {"company": str(company["slug"])} if company else {}
    return [(key, name, urlencode({"rango": key, **keep})) for key, name in PICKS.items()]


def render(template: str, tenant_ids: list[int] | None, tz: str, *, audience: alerts.Audience,
           **extra: Any) -> str:
    """The page for these companies (None: every company) on the clock `tz`."""
    now = datetime.now(UTC)
    period = period_from({k: v for k, v in request.args.items() if isinstance(v, str)}, tz, now)
    before = period.before()
    with get_pool().connection() as conn:
        ops = metrics.operations(conn, tenant_ids, period.start, period.end, tz)
        previous = metrics.operations(conn, tenant_ids, before.start, before.end, tz)
    console = state()
    current = alerts.current_alerts(get_pool(), console.desk.redis, console.settings, console.vault, tenant_ids,
                                    now, audience=audience)
    return render_template(
        template, period=period, picks=_pick_links(extra.get("company")), volume=_volume(ops, previous),
        quality=_quality(ops, previous),
        csat=_csat(ops), intents=_intents(ops), cost=_cost(ops), series=_series(tenant_ids, period),
        alerts=current, errors=[a for a in current if a.kind == "provider_errors"],
        rules=metric_texts.tooltip("rules_share"), llm=metric_texts.tooltip("llm_share"), texts=metric_texts,
        **extra)


# -- the routes ----------------------------------------------------------------------------------------------


def _companies() -> list[dict[str, Any]]:
    with get_pool().connection() as conn:
        return [dict(r) for r in conn.execute("SELECT id, slug, name, timezone FROM tenants ORDER BY name")]


@bp.get("/dashboard")
@auth.login_required
def dashboard() -> str:
    """The company's panel for any of its people (agent, supervisor, admin): its own figures only."""
    agent = auth.require_agent()
    with get_pool().connection() as conn:
        row = conn.execute("SELECT name, timezone FROM tenants WHERE id = %s", (agent.tenant_id,)).fetchone()
    if row is None:
        abort(404)
    return render("console/dashboard.html", [agent.tenant_id], str(row["timezone"]),  # type: ignore[call-overload]
                  audience="company", company_name=str(row["name"]))  # type: ignore[call-overload]


@operator_bp.get("/dashboard")
@operators.operator_required
def operator_dashboard() -> str:
    """Every company's panel, or one company's (`?company=<slug>`; an unknown slug is 404)."""
    companies = _companies()
    slug = request.args.get("company") or ""
    if slug:
        chosen = next((c for c in companies if c["slug"] == slug), None)
        if chosen is None:
            abort(404, description="No encontramos esa empresa.")
        return render("operator/dashboard.html", [int(chosen["id"])], str(chosen["timezone"]),
                      audience="operator", companies=companies, company=chosen)
    return render("operator/dashboard.html", None, state().settings.tenant_timezone, audience="operator",
                  companies=companies, company=None)
