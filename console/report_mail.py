"""The weekly report e-mail (issue 16): every Monday morning, each company's admins get the past week's figures.

The scheduler's job (`register_jobs`, leader only, every `CHECK_S`) looks at each active company whose plan
includes reports (plan feature `reports`) and that has active admins: once it is Monday `WEEKLY_REPORT_HOUR`:00
or later on the company's clock, the week from the Monday before (00:00) to this Monday (00:00) is due. It is
claimed first (`storage.report_sends.claim_week`: one row per company and week, migration 0019), so a restart
or two schedulers never send a week twice, then e-mailed to the admins in one message: an HTML part with the
figures and one chart drawn as HTML/CSS bars with inline styles (mail clients do not render SVG) and a plain
text part with the same figures. A week not sent on its Monday (the scheduler was down) goes out later in
that week. Without SMTP_URL nothing is claimed or sent.

The figures are the monthly report's (`storage.monthly_report.period_report` over `storage.metrics`) for the
week against the week before, as lines of `console.report_figures`, so the e-mail says what the page says.
Failure policy: a failed send is logged (the exception's name, never an address or a figure) and recorded on
the claim, which is taken again after a while (`report_sends.RETRY_AFTER`, at most `MAX_ATTEMPTS` times);
database errors raise to the scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from psycopg import Connection
from psycopg_pool import ConnectionPool

from config import Settings
from console import report_figures
from console.mailer import Mailer
from console.report_figures import Line
from storage import metrics, monthly_report, report_sends
from storage.monthly_report import MonthlyReport

log = logging.getLogger(__name__)

CHECK_S = 600
# The figures the e-mail shows, in order (all of the page's are in the CSV and on the page).
SHOWN = ("conversations", "unique_customers", "resolution_rate", "escalation_rate", "not_understood_rate",
         "csat_5", "csat_10", "calls_avoided", "cost_per_conversation")
WEEKDAYS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
BAR_COLOUR, TRACK_COLOUR = "#0b7a6c", "#e3e8ec"
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates" / "mail"),
    autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
    undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class Company:
    id: int
    name: str
    timezone: str
    admins: tuple[tuple[str, str], ...]  # (name, e-mail)


@dataclass(frozen=True)
class Day:
    """One bar of the e-mail's chart."""

    label: str
    count: int
    width: int  # percent of the widest bar


def due_week(now: datetime, timezone: str, hour: int) -> date:
    """The Monday the week due at `now` began, on the clock `timezone` (due from Monday `hour`:00 after it)."""
    local = now.astimezone(ZoneInfo(timezone))
    monday = local.date() - timedelta(days=local.weekday())
    if local < datetime.combine(monday, time(hour), tzinfo=ZoneInfo(timezone)):
        monday -= timedelta(days=7)
    return monday - timedelta(days=7)


def week_bounds(week_start: date, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    start = datetime.combine(week_start, time(0), tzinfo=zone)
    end = datetime.combine(week_start + timedelta(days=7), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def companies(conn: Connection[Any]) -> list[Company]:
    """Active companies whose plan includes reports, with their active admins (those without admins left out)."""
    found = conn.execute(
        "SELECT t.id, t.name, t.timezone, array_agg(a.name ORDER BY a.id) AS names,"
        " array_agg(a.email ORDER BY a.id) AS emails"
        " FROM tenants t JOIN plans p ON p.code = t.plan_code"
        " JOIN agents a ON a.tenant_id = t.id AND a.role = 'admin' AND a.active"
        " WHERE t.status = 'active' AND coalesce((p.features->>'reports')::boolean, false)"
        " GROUP BY t.id ORDER BY t.id").fetchall()
    return [Company(int(r["id"]), str(r["name"]), str(r["timezone"]),
                    tuple(zip(r["names"], r["emails"], strict=True)))
            for r in found]


def send_due(settings: Settings, pool: ConnectionPool, now: datetime, mailer: Mailer | None = None) -> int:
    """E-mail every company's due week that nobody sent yet; returns how many e-mails the server took."""
    mailer = mailer or Mailer(settings)
    if not mailer.enabled:
        return 0
    sent = 0
    with pool.connection() as conn:
        due = companies(conn)
    for company in due:
        week = due_week(now, company.timezone, settings.weekly_report_hour)
        with pool.connection() as conn:
            if not report_sends.claim_week(conn, company.id, week, now):
                continue
        with pool.connection() as conn:
            message = compose(conn, settings, company, week, mailer.sender)
        try:
            mailer.send_message(message)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the claim records it and the week is retried
            code = getattr(exc, "smtp_code", None)
            log.warning("weekly report for tenant %s (week of %s) not sent: %s%s", company.id, week,
                        type(exc).__name__, f" {code}" if code else "")
            with pool.connection() as conn:
                report_sends.week_failed(conn, company.id, week, type(exc).__name__)
            continue
        with pool.connection() as conn:
            report_sends.week_sent(conn, company.id, week, len(company.admins))
        log.info("weekly report sent", extra={"tenant_id": company.id, "week": week.isoformat(),
                                               "recipients": len(company.admins)})
        sent += 1
    return sent


def week_report(conn: Connection[Any], settings: Settings, company: Company, week: date) -> MonthlyReport:
    span = week_bounds(week, company.timezone)
    before = week_bounds(week - timedelta(days=7), company.timezone)
    return monthly_report.period_report(conn, [company.id], span, before, company.timezone,
                                        prices=report_figures.prices_of(settings),
                                        calls_per_resolved=settings.report_calls_per_resolved)


def chart_days(conn: Connection[Any], company: Company, week: date) -> list[Day]:
    start, end = week_bounds(week, company.timezone)
    points = metrics.series(conn, [company.id], start, end, company.timezone, "conversations", "day")
    counts = [int(value or 0) for _, value in points]
    widest = max(counts, default=0)
    return [Day(f"{WEEKDAYS[day.weekday()]} {day:%d/%m}", n, round(100 * n / widest) if widest else 0)
            for (day, _), n in zip(points, counts, strict=True)]


def compose(conn: Connection[Any], settings: Settings, company: Company, week: date, sender: str) -> EmailMessage:
    """The week's e-mail to the company's admins: a text part and an HTML part with the same figures."""
    report = week_report(conn, settings, company, week)
    shown = {line.key: line for line in report_figures.lines(report, every_company=False)}
    figures: list[Line] = [shown[key] for key in SHOWN]
    improvement = report_figures.cases(report, show_examples=False)[:3]
    last_day = week + timedelta(days=6)
    values = {
        "company": company.name, "first": f"{week:%d/%m}", "last": f"{last_day:%d/%m/%Y}", "figures": figures,
        "cases": improvement, "days": chart_days(conn, company, week), "bar": BAR_COLOUR, "track": TRACK_COLOUR,
        "calls_note": report_figures.calls_note(report), "prices_note": report_figures.prices_note(report.cost),
        "link": f"{settings.public_base_url or ''}/console/report",
    }
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(formataddr((name, email)) for name, email in company.admins)
    message["Subject"] = f"Reporte semanal del asistente de {company.name}: {values['first']} al {values['last']}"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid("weekly", domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(TEMPLATES.get_template("weekly_report.txt").render(values))
    message.add_alternative(TEMPLATES.get_template("weekly_report.html").render(values), subtype="html")
    return message


def register_jobs(scheduler: Any, rt: Any, leader: Any) -> None:
    """Every CHECK_S on the leader: send the weekly reports that are due (SMTP_URL must be set)."""
    mailer = Mailer(rt.settings)

    def check() -> None:
        if leader.holds():
            send_due(rt.settings, rt.pool, datetime.now(UTC), mailer)

    scheduler.add_job(check, "interval", seconds=CHECK_S, id="weekly_report_mail", max_instances=1, coalesce=True)
