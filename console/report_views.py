"""The executive monthly report's pages (issue 16, design 11.4.2): printable, with its CSV.

`/console/report?month=YYYY-MM` is a company's admins' (other roles: 403; a plan without `reports`: 403): always
their own company, on its clock; a `tenant` in the query other than its own answers 404, as a company that
does not exist. `/operator/report?month=YYYY-MM&tenant=<slug>` is the operator's: every company together on the
deployment's clock (TENANT_TIMEZONE) with one row per company, or one company on its own clock (an unknown slug
is 404). `.../report.csv` is the same report as CSV (`console.report_figures.write_csv`); the operator's with
`por=empresa` has one row per company instead. "Descargar PDF" is the browser's own print-to-PDF
(`report.js` calls window.print(); report.css has the A4 print layout).

The month defaults to the current one (so far). Figures: `storage.monthly_report` (over `storage.metrics`);
the messages the bot did not understand, grouped (`services.unanswered_groups`), are customers' words: only the
company's own admins see them, never the operator. Read-only.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, render_template, request, url_for

from console import auth, charts, operators, report_figures
from console.blueprint import bp, state
from console.database import get_pool
from console.operator_views import bp as operator_bp
from services import unanswered_groups
from storage import metrics, monthly_report, plans
from storage.monthly_report import MonthlyReport
from storage.usage import Month

TOP_GROUPS = 5
COMPANY_TOOLTIPS = ("conversations", "unique_customers", "resolution_rate", "escalation_rate", "cost_per_conversation")


def _month(tz: str) -> Month:
    given = request.args.get("month")
    if not given:
        now = datetime.now(ZoneInfo(tz))
        return Month(now.year, now.month)
    try:
        return Month.parse(given)
    except ValueError:
        abort(400, description="El mes se escribe AAAA-MM, por ejemplo 2026-12.")


def _build(tenant_ids: list[int] | None, month: Month, tz: str, *, own_company: bool) -> dict[str, Any]:
    """Everything the page and the CSV show."""
    settings = state().settings
    with get_pool().connection() as conn:
        report = monthly_report.monthly(conn, tenant_ids, month, tz, prices=report_figures.prices_of(settings),
                                        calls_per_resolved=settings.report_calls_per_resolved)
        groups = []
        if own_company and tenant_ids:
            start, end = month.bounds(tz)
            groups = unanswered_groups.for_period(conn, tenant_ids[0], start, end).groups[:TOP_GROUPS]
        start, end = month.bounds(tz)
        points = metrics.series(conn, tenant_ids, start, end, tz, "conversations", "day")
    every_company = tenant_ids is None
    found = report_figures.lines(report, every_company=every_company)
    improvement = report_figures.cases(report, groups, show_examples=own_company)
    return {"report": report, "lines": found, "cases": improvement, "every_company": every_company,
            "own_company": own_company, "charts": _charts(report, points),
            "sections": report_figures.SECTIONS, "month": month, "title": _title(month, tz),
            "pct": report_figures.pct_text, "usd": report_figures.usd_text,
            "texts": {key: report_figures.tooltip(key) for key in COMPANY_TOOLTIPS}}


def _title(month: Month, tz: str) -> str:
    now = datetime.now(UTC).astimezone(ZoneInfo(tz))
    name = f"{report_figures.month_name(month.month).capitalize()} {month.year}"
    return f"{name} (en curso)" if (now.year, now.month) == (month.year, month.month) else name


def _charts(report: MonthlyReport, points: list[tuple[datetime, float | None]]) -> dict[str, Any]:
    days = [charts.Point(f"{day:%d}", value) for day, value in points]
    words = report_figures.wording()["escalation_reasons"]
    reasons = [charts.Bar(str((words.get(r.reason) or words["other"])["name"]), r.count,
                          f"{r.count} ({report_figures.pct_text(r.share)})") for r in report.reasons]
    return {
        "days": charts.series("Conversaciones por día", days, value_text="{:.0f}",
                              empty="No hubo conversaciones este mes"),
        "reasons": charts.hbars("Por qué pasaron a una persona", reasons, empty="Ningún caso este mes"),
    }


def _csv(data: dict[str, Any], name: str) -> Response:
    out = io.StringIO()
    if request.args.get("por") == "empresa" and data["every_company"]:
        report_figures.write_company_csv(out, data["report"])
        name += "-por-empresa"
    else:
        report_figures.write_csv(out, data["lines"], data["cases"])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


# -- a company's admins -------------------------------------------------------------------------------------------


def _company() -> tuple[int, str, str]:
    """The admin's company (id, name, time zone); 403 for other roles or a plan without reports."""
    agent = auth.require_agent()
    with get_pool().connection() as conn:
        row = conn.execute("SELECT slug, name, timezone FROM tenants WHERE id = %s", (agent.tenant_id,)).fetchone()
        plan = plans.plan_of(conn, agent.tenant_id)
    if row is None:
        abort(404)
    asked = request.args.get("tenant")
    if asked and asked != row["slug"]:  # type: ignore[call-overload]
        abort(404, description="No encontramos esa empresa.")
    if agent.role != "admin":
        abort(403, description="Solo los administradores ven el reporte mensual.")
    if not plan.has("reports"):
        abort(403, description="Tu plan no incluye reportes.")
    return agent.tenant_id, str(row["name"]), str(row["timezone"])  # type: ignore[call-overload]


@bp.get("/report")
@auth.login_required
def report_page() -> str:
    tenant_id, name, tz = _company()
    month = _month(tz)
    data = _build([tenant_id], month, tz, own_company=True)
    return render_template("console/report.html", company_name=name, tz=tz, company_csv_url="",
                           csv_url=url_for("console.report_csv", month=str(month)), **data)


@bp.get("/report.csv")
@auth.login_required
def report_csv() -> Response:
    tenant_id, _, tz = _company()
    month = _month(tz)
    return _csv(_build([tenant_id], month, tz, own_company=True), f"reporte-{month}")


# -- the operator --------------------------------------------------------------------------------------------------


def _chosen() -> tuple[list[int] | None, dict[str, Any] | None, str, list[dict[str, Any]]]:
    with get_pool().connection() as conn:
        companies = [dict(r) for r in conn.execute("SELECT id, slug, name, timezone FROM tenants ORDER BY name")]
    slug = request.args.get("tenant") or ""
    if not slug:
        return None, None, state().settings.tenant_timezone, companies
    chosen = next((c for c in companies if c["slug"] == slug), None)
    if chosen is None:
        abort(404, description="No encontramos esa empresa.")
    return [int(chosen["id"])], chosen, str(chosen["timezone"]), companies


@operator_bp.get("/report")
@operators.operator_required
def operator_report_page() -> str:
    tenant_ids, chosen, tz, companies = _chosen()
    month = _month(tz)
    data = _build(tenant_ids, month, tz, own_company=False)
    args = {"month": str(month), **({"tenant": chosen["slug"]} if chosen else {})}
    return render_template("operator/report.html", company=chosen, companies=companies, tz=tz,
                           csv_url=url_for("operator.operator_report_csv", **args),
                           company_csv_url=url_for("operator.operator_report_csv", por="empresa", **args), **data)


@operator_bp.get("/report.csv")
@operators.operator_required
def operator_report_csv() -> Response:
    tenant_ids, chosen, tz, _ = _chosen()
    month = _month(tz)
    name = f"reporte-{chosen['slug']}-{month}" if chosen else f"reporte-todas-{month}"
    return _csv(_build(tenant_ids, month, tz, own_company=False), name)
