"""Which report and alert e-mails went out: claims that keep each one to its schedule (migration 0019).

A weekly report is claimed per company and week (the Monday it began, on the company's clock) before it
is sent: the claim is one INSERT ... ON CONFLICT, so of two schedulers (or one restarted mid-run) only one
gets it, and a week is never mailed twice. A claim whose send failed stays unsent and may be taken again
after `RETRY_AFTER`, at most `MAX_ATTEMPTS` times.

An alert is claimed per company and alert key when its last e-mail is an hour old or more (or it was never
sent), also in one statement: at most one e-mail per alert per hour, whatever the number of schedulers.
The state is in PostgreSQL rather than in Redis with a TTL: a Redis flush or a failover that loses keys
would otherwise let a week's report or an alert go out again, and the rows say what was sent and when.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from psycopg import Connection

RETRY_AFTER = timedelta(minutes=15)
MAX_ATTEMPTS = 5
ALERT_EVERY = timedelta(hours=1)


def claim_week(conn: Connection[Any], tenant_id: int, week_start: date, now: datetime) -> bool:
    """Take the company's report of the week that began on `week_start` at `now`; False when it is sent or
    being sent (claimed less than RETRY_AFTER ago), or failed MAX_ATTEMPTS times."""
    row = conn.execute(
        "INSERT INTO weekly_report_sends (tenant_id, week_start, claimed_at) VALUES (%(tenant)s, %(week)s, %(now)s)"
        " ON CONFLICT (tenant_id, week_start) DO UPDATE"
        " SET attempts = weekly_report_sends.attempts + 1, claimed_at = %(now)s, error = NULL"
        " WHERE weekly_report_sends.sent_at IS NULL AND weekly_report_sends.attempts < %(max)s"
        " AND weekly_report_sends.claimed_at <= %(now)s - %(retry)s"
        " RETURNING tenant_id",
        {"tenant": tenant_id, "week": week_start, "now": now, "max": MAX_ATTEMPTS, "retry": RETRY_AFTER},
    ).fetchone()
    return row is not None


def week_sent(conn: Connection[Any], tenant_id: int, week_start: date, recipients: int) -> None:
    """The mail server took the week's report for `recipients` addresses."""
    conn.execute("UPDATE weekly_report_sends SET sent_at = now(), recipients = %s"
                 " WHERE tenant_id = %s AND week_start = %s", (recipients, tenant_id, week_start))


def week_failed(conn: Connection[Any], tenant_id: int, week_start: date, error: str) -> None:
    """The send failed (`error`: the exception's name, no secret); the claim may be taken again later."""
    conn.execute("UPDATE weekly_report_sends SET error = %s WHERE tenant_id = %s AND week_start = %s",
                 (error[:200], tenant_id, week_start))


def claim_alert(conn: Connection[Any], tenant_id: int, alert: str, now: datetime) -> bool:
    """Take the right to e-mail alert `alert` at `now`; False when it went out less than an hour before."""
    row = conn.execute(
        "INSERT INTO alert_mail_sends (tenant_id, alert, last_sent_at) VALUES (%(tenant)s, %(alert)s, %(now)s)"
        " ON CONFLICT (tenant_id, alert) DO UPDATE"
        " SET last_sent_at = %(now)s, times_sent = alert_mail_sends.times_sent + 1"
        " WHERE alert_mail_sends.last_sent_at <= %(now)s - %(every)s"
        " RETURNING tenant_id",
        {"tenant": tenant_id, "alert": alert, "now": now, "every": ALERT_EVERY},
    ).fetchone()
    return row is not None


def release_alert(conn: Connection[Any], tenant_id: int, alert: str, now: datetime) -> None:
    """The alert's e-mail could not be sent: let the next run try again instead of waiting an hour."""
    conn.execute("UPDATE alert_mail_sends SET last_sent_at = %s, times_sent = times_sent - 1"
                 " WHERE tenant_id = %s AND alert = %s", (now - ALERT_EVERY, tenant_id, alert))
