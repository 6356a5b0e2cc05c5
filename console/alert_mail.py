"""Alert e-mails (issue 16): the operations view's alerts go to each company's admins, at most once an hour each.

The scheduler's job (`register_jobs`, leader only, every `CHECK_S`) asks `handoff.alerts.current_alerts` for
every active company's alerts (the company's own: escalation over 30 % in the last hour, provider errors by
code, the model's circuit breaker open, the core's timeouts, cases waiting past their SLA). Each alert is
claimed in PostgreSQL (`storage.report_sends.claim_alert`: per company and alert key, only when its last
e-mail is an hour old or more, in one statement, so two schedulers never both send it); the company's claimed
alerts go out together in one e-mail to its active admins, with a link to the cases behind each one
(PUBLIC_BASE_URL in front of the console's path). Without SMTP_URL nothing is claimed or sent.

Why PostgreSQL rather than a Redis key with a one-hour TTL: Redis may be flushed or fail over and lose keys
(this deployment already survives Redis outages), which would re-send every alert at once; the table keeps
when each alert went out and how many times. Failure policy: a failed send releases its claims (the next
run tries again) and is logged by exception name only; database errors raise to the scheduler.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from console import report_figures
from console.mailer import Mailer
from handoff import alerts
from storage import report_sends
from storage.crypto import Vault

log = logging.getLogger(__name__)

CHECK_S = 300
DASHBOARD_PATH = "/console/dashboard"  # where a company alert's "#section" link points


def link_of(settings: Settings, alert: alerts.Alert) -> str:
    """The alert's link as an address the admin can open from the e-mail ('' when it has none)."""
    if not alert.link:
        return ""
    path = DASHBOARD_PATH + alert.link if alert.link.startswith("#") else alert.link
    return f"{settings.public_base_url or ''}{path}"


def compose(settings: Settings, sender: str, company: str, admins: list[tuple[str, str]],
            found: list[alerts.Alert]) -> EmailMessage:
    """One e-mail with the company's alerts, text only (each alert: what, detail, codes, link)."""
    words = report_figures.wording()["alert_mail"]
    title = found[0].title if len(found) == 1 else f"{len(found)} alertas"
    parts = [words["intro"].format(company=company), ""]
    for alert in found:
        parts.append(f"⚠ {alert.title}")
        parts.append(alert.detail)
        parts += [f"  - {what}: {means}" for what, means in alert.items]
        link = link_of(settings, alert)
        if link:
            parts.append(f"{alert.link_text or words['link']} {link}")
        parts.append("")
    parts.append(words["outro"])
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(formataddr(admin) for admin in admins)
    message["Subject"] = words["subject"].format(company=company, title=title)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid("alert", domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(parts) + "\n")
    return message


def _companies(pool: ConnectionPool) -> dict[int, tuple[str, list[tuple[str, str]]]]:
    """Active companies with active admins: id -> (name, [(admin name, e-mail)])."""
    with pool.connection() as conn:
        found = conn.execute(
            "SELECT t.id, t.name, a.name AS admin, a.email FROM tenants t"
            " JOIN agents a ON a.tenant_id = t.id AND a.role = 'admin' AND a.active"
            " WHERE t.status = 'active' ORDER BY t.id, a.id").fetchall()
    out: dict[int, tuple[str, list[tuple[str, str]]]] = {}
    for row in found:
        entry = out.setdefault(int(row["id"]), (str(row["name"]), []))  # type: ignore[call-overload]
        entry[1].append((str(row["admin"]), str(row["email"])))  # type: ignore[call-overload]
    return out


def send_alerts(settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis, vault: Vault, now: datetime,
                mailer: Mailer | None = None) -> int:
    """E-mail each company's current alerts not e-mailed in the last hour; returns how many e-mails went out."""
    mailer = mailer or Mailer(settings)
    if not mailer.enabled:
        return 0
    companies = _companies(pool)
    if not companies:
        return 0
    by_company: dict[int, list[alerts.Alert]] = defaultdict(list)
    for alert in alerts.current_alerts(pool, redis_conn, settings, vault, sorted(companies), now,
                                       audience="company"):
        if alert.tenant_id in companies:
            by_company[alert.tenant_id].append(alert)
    sent = 0
    for tenant_id, found in by_company.items():
        with pool.connection() as conn:
            claimed = [a for a in found if report_sends.claim_alert(conn, tenant_id, a.key, now)]
        if not claimed:
            continue
        name, admins = companies[tenant_id]
        try:
            mailer.send_message(compose(settings, mailer.sender, name, admins, claimed))
        except Exception as exc:  # noqa: BLE001 - whatever failed, the claims are released and retried
            code = getattr(exc, "smtp_code", None)
            log.warning("alert e-mail for tenant %s not sent: %s%s", tenant_id, type(exc).__name__,
                        f" {code}" if code else "")
            with pool.connection() as conn:
                for alert in claimed:
                    report_sends.release_alert(conn, tenant_id, alert.key, now)
            continue
        log.info("alert e-mail sent", extra={"tenant_id": tenant_id, "alerts": [a.kind for a in claimed]})
        sent += 1
    return sent


def register_jobs(scheduler: Any, rt: Any, leader: Any) -> None:
    """Every CHECK_S on the leader: e-mail the alerts that are new or an hour old (SMTP_URL must be set)."""
    mailer = Mailer(rt.settings)

    def check() -> None:
        if leader.holds():
            send_alerts(rt.settings, rt.pool, rt.redis, rt.vault, datetime.now(UTC), mailer)

    scheduler.add_job(check, "interval", seconds=CHECK_S, id="alert_mail", max_instances=1, coalesce=True)
