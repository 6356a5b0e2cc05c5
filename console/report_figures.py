"""The executive report as people read it: its figures as lines (label, tooltip, value, the period before,
target), its improvement cases with a suggested action, and the CSV of both.

The page, the CSV and the weekly e-mail are all built from the same `Line`s, so they cannot disagree: the page
writes each line's raw value in `data-value`, the CSV writes the same raw value (dot decimals; rates as
proportions 0..1; dollars with 4 decimals). Every figure's definition is in docs/METRICS.md; its tooltip is
`storage.metric_texts`' for the operations figures and `TOOLTIPS` here for the report's own.
Wording of reasons and actions: console/report_texts.yaml.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from config import Settings
from storage import metric_texts
from storage.metrics import Operations, Rate
from storage.monthly_report import COST_TARGET_USD, Change, CostSummary, MonthlyReport, Prices

TEXTS_PATH = Path(__file__).resolve().parent / "report_texts.yaml"

# The report's own figures (docs/METRICS.md, "Monthly report"): (label, tooltip).
OWN: dict[str, tuple[str, str]] = {
    "companies_with_chatbot": (
        "Empresas con asistente",
        "Empresas activas cuyo plan incluye el asistente (según su plan de hoy), de todas las empresas activas."),
    "companies_using": (
        "Empresas con conversaciones",
        "Empresas activas con al menos una conversación en el periodo."),
    "calls_avoided": (
        "Llamadas evitadas (estimado)",
        "Conversaciones resueltas sin pasar a una persona, por las llamadas que cada una evita (supuesto "
        "indicado en la página)."),
    "cost_per_conversation": (
        "Costo por conversación",
        "Plantillas de WhatsApp (a los precios indicados) más el costo de IA, dividido entre las conversaciones "
        "del periodo. Meta: menos de $0.02."),
    "templates_usd": (
        "Costo de plantillas", "Plantillas de WhatsApp que se cobran, por su precio según categoría, en dólares."),
    "llm_usd": metric_texts.TEXTS["llm_usd"],
    "total_usd": ("Costo variable total", "Plantillas más IA, en dólares."),
    "templates_marketing": ("Plantillas de marketing", "Plantillas de marketing que WhatsApp aceptó."),
    "templates_utility": (
        "Plantillas de utilidad cobradas",
        "Plantillas de utilidad enviadas fuera de las 24 horas después de que el cliente escribió."),
    "templates_utility_free": (
        "Plantillas de utilidad gratis",
        "Plantillas de utilidad enviadas dentro de las 24 horas después de que el cliente escribió: no se cobran."),
    "templates_authentication": (
        "Plantillas de autenticación", "Plantillas de autenticación que WhatsApp aceptó."),
    "templates_uncategorised": (
        "Plantillas sin categoría",
        "Plantillas cuya categoría no conocemos: se cobran al precio de marketing, el más alto."),
    "csat_5": ("Satisfacción con el asistente", "Promedio de las notas de 1 a 5 que los clientes dieron al asistente."),
    "csat_10": ("Satisfacción con tu equipo", "Promedio de las notas de 1 a 10 después de un caso resuelto."),
    "nps": ("NPS", "Promotores menos detractores. El asistente no hace esta pregunta: no se mide."),
}
SECTIONS = {"adoption": "Adopción", "impact": "Impacto operativo", "cost": "Costo", "quality": "Calidad",
            "cases": "Casos de mejora"}


@cache
def wording() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TEXTS_PATH.read_text(encoding="utf-8"))
    return data


def label(key: str) -> str:
    return OWN[key][0] if key in OWN else metric_texts.label(key)


def tooltip(key: str) -> str:
    return OWN[key][1] if key in OWN else metric_texts.tooltip(key)


@dataclass(frozen=True)
class Line:
    """One figure of the report: raw values for the CSV and `data-value`, texts for people."""

    section: str
    key: str  # the figure's name in docs/METRICS.md
    value: str  # raw: "", "12", "0.7812", "0.0153"
    previous: str
    unit: str  # número | proporción | usd | nota
    text: str  # as shown: "78 %", "$0.0153", "No se preguntó"
    previous_text: str
    target: str = ""  # "más de 75 %", "menos de $0.02"
    met: bool | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return label(self.key)

    @property
    def tooltip(self) -> str:
        return tooltip(self.key)

    @property
    def change(self) -> str:
        """'+12 %' / '−5 %' against the period before, '' when it cannot be said."""
        try:
            now, before = float(self.value), float(self.previous)
        except ValueError:
            return ""
        if self.unit == "proporción":
            points = round((now - before) * 100)
            return f"{points:+d} pts".replace("-", "−") if points else "igual"
        if not before:
            return ""
        ratio = round((now - before) / before * 100)
        return f"{ratio:+d} %".replace("-", "−") if ratio else "igual"


@dataclass(frozen=True)
class Case:
    """An improvement case: what happens, how often, and what to do."""

    kind: str  # escalation_reason | analysis | not_understood
    key: str
    title: str
    count: int
    detail: str
    action: str
    examples: tuple[str, ...] = ()


def prices_of(settings: Settings) -> Prices:
    """The template prices the report uses (settings WHATSAPP_PRICE_*_USD), as exact decimals."""
    return Prices(marketing=Decimal(str(settings.whatsapp_price_marketing_usd)),
                  utility=Decimal(str(settings.whatsapp_price_utility_usd)),
                  authentication=Decimal(str(settings.whatsapp_price_authentication_usd)))


# -- number texts -------------------------------------------------------------------------------------------------


def count_text(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def pct_text(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)} %"


def usd_text(value: Decimal | None, places: int = 4) -> str:
    return "—" if value is None else f"${value:,.{places}f}"


def _raw(value: float | Decimal | int | None, places: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.{places}f}"


def month_name(month: int) -> str:
    return str(wording()["months"][month - 1])


# -- the lines -----------------------------------------------------------------------------------------------------


def _count(section: str, key: str, change: Change, note: str = "") -> Line:
    return Line(section, key, str(change.current), str(change.previous), "número", count_text(change.current),
                count_text(change.previous), note=note)


def _rate(key: str, now: Rate, before: Rate, target: str) -> Line:
    return Line("quality", key, _raw(now.value), _raw(before.value), "proporción", pct_text(now.value),
                pct_text(before.value), target=target, met=now.met)


def _usd(key: str, now: Decimal | None, before: Decimal | None, **extra: Any) -> Line:
    return Line("cost", key, _raw(now), _raw(before), "usd", usd_text(now), usd_text(before), **extra)


def _csat(key: str, ops: Operations, before: Operations, scale: int) -> Line:
    now = next((c for c in ops.quality.csat if c.scale == scale), None)
    then = next((c for c in before.quality.csat if c.scale == scale), None)
    value = now.average if now else None
    previous = then.average if then else None
    ratings = now.ratings if now else 0
    text = "—" if value is None else f"{value:.1f} de {scale}"
    return Line("quality", key, _raw(value, 2), _raw(previous, 2), "nota",
                text, "—" if previous is None else f"{previous:.1f} de {scale}",
                note=f"{count_text(ratings)} {'calificación' if ratings == 1 else 'calificaciones'}")


def prices_note(cost: CostSummary) -> str:
    p = cost.prices
    return (f"Precios usados por plantilla: marketing ${p.marketing}, utilidad ${p.utility} (gratis dentro de las "
            f"24 horas), autenticación ${p.authentication}; sin categoría, como marketing. La IA, a lo que "
            "costó cada consulta.")


def calls_note(report: MonthlyReport) -> str:
    factor = report.calls_per_resolved
    each = f"{factor:g} llamada" if factor == 1 else f"{factor:g} llamadas"
    return f"Supuesto: cada conversación resuelta sin una persona evita {each} al equipo."


def lines(report: MonthlyReport, *, every_company: bool) -> list[Line]:
    """The report's figures in page order. `every_company`: the operator's report over every company."""
    now, before, adoption = report.current, report.previous, report.adoption
    found: list[Line] = []
    if every_company:
        found.append(Line("adoption", "companies_with_chatbot", str(adoption.with_chatbot), "", "número",
                          f"{adoption.with_chatbot} de {adoption.companies}", "",
                          note="según el plan de hoy"))
        found.append(_count("adoption", "companies_using", adoption.using))
    found.append(_count("adoption", "conversations", adoption.conversations))
    found.append(_count("adoption", "unique_customers", adoption.unique_customers))
    found.append(_count("impact", "calls_avoided", Change(report.calls_avoided, report.calls_avoided_previous),
                        note=calls_note(report)))
    cost, prev_cost = report.cost, report.previous_cost
    found.append(_usd("cost_per_conversation", cost.per_conversation, prev_cost.per_conversation,
                      target=f"menos de ${COST_TARGET_USD}", met=cost.met, note=prices_note(cost)))
    found.append(_usd("templates_usd", cost.templates_usd, prev_cost.templates_usd))
    found.append(_usd("llm_usd", cost.llm_usd, prev_cost.llm_usd))
    found.append(_usd("total_usd", cost.total_usd, prev_cost.total_usd))
    for key in ("templates_marketing", "templates_utility", "templates_utility_free", "templates_authentication",
                "templates_uncategorised"):
        found.append(_count("cost", key, Change(getattr(now.cost, key), getattr(before.cost, key))))
    q, qb = now.quality, before.quality
    found.append(_rate("resolution_rate", q.resolution, qb.resolution, "más de 75 %"))
    found.append(_rate("escalation_rate", q.escalation, qb.escalation, "menos de 20 %"))
    found.append(_rate("not_understood_rate", q.not_understood, qb.not_understood, "menos de 10 %"))
    found.append(_csat("csat_5", now, before, 5))
    found.append(_csat("csat_10", now, before, 10))
    found.append(Line("quality", "nps", "", "", "nota", "No se preguntó", "No se preguntó",
                      note="El asistente no hace la pregunta del NPS."))
    return found


# -- improvement cases ---------------------------------------------------------------------------------------------


def cases(report: MonthlyReport, groups: Sequence[Any] = (), *, show_examples: bool) -> list[Case]:
    """The top escalation reasons, the analyses' groups and (the company's own report) the groups of messages
    the bot did not understand (`services.unanswered_groups.Group`), each with what to do about it."""
    words = wording()
    found: list[Case] = []
    reasons = words["escalation_reasons"]
    for reason in report.reasons:
        known = reasons.get(reason.reason) or reasons["other"]
        found.append(Case("escalation_reason", reason.reason, str(known["name"]), reason.count,
                          f"{pct_text(reason.share)} de los casos que abrió el asistente", str(known["action"])))
    categories, why = words["analysis_categories"], words["analysis_reasons"]
    for group in report.analyses:
        detail = f"Motivo más común: {why.get(group.reason, group.reason)}"
        if group.unnecessary:
            detail += f"; en {group.unnecessary} no hacía falta una persona"
        found.append(Case("analysis", f"{group.category}:{group.reason}",
                          f"{categories.get(group.category, group.category)} (análisis de casos)", group.count,
                          detail, group.suggestion or str(reasons["other"]["action"]),
                          (group.example,) if show_examples and group.example else ()))
    for g in groups:
        detail = f"El periodo anterior: {g.previous}"
        found.append(Case("not_understood", g.key, f"«{g.text}»", g.count, detail,
                          str(words["not_understood_action"]).format(suggestion=g.suggestion),
                          tuple(g.examples[:3]) if show_examples else ()))
    return found


# -- CSV -----------------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("seccion", "indicador", "clave", "valor", "periodo_anterior", "unidad", "objetivo", "nota")
COMPANY_COLUMNS = ("empresa", "slug", "asistente", "conversaciones", "clientes_unicos", "resueltas_sin_persona",
                   "escalamiento", "no_entendidos", "costo_por_conversacion_usd", "costo_total_usd")


def write_csv(out: io.StringIO, found: Sequence[Line], improvement: Sequence[Case]) -> None:
    """One row per figure, then one per improvement case (its count as the value, its action as the note)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in found:
        writer.writerow((SECTIONS[line.section], line.label, line.key, line.value, line.previous, line.unit,
                         line.target, line.note))
    for case in improvement:
        writer.writerow((SECTIONS["cases"], case.title, f"{case.kind}:{case.key}", case.count, "", "número", "",
                         case.action))


def write_company_csv(out: io.StringIO, report: MonthlyReport) -> None:
    """One row per company (the operator's report over every company)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COMPANY_COLUMNS)
    for row in report.companies:
        q = row.operations.quality
        writer.writerow((row.name, row.slug, "sí" if row.chatbot else "no", row.operations.volume.conversations,
                         row.operations.volume.unique_customers, _raw(q.resolution.value),
                         _raw(q.escalation.value), _raw(q.not_understood.value), _raw(row.cost.per_conversation),
                         _raw(row.cost.total_usd)))
