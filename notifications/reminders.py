"""Unclaimed-package reminders on days 3, 7 and 14 after arrival (design 2.2.4; REMINDER_DAYS, or the days
the company's admin set in the console, `storage.tenant_hours`).

The recipients told that a package arrived are the candidates. For each package
the core still shows ARRIVED_AT_DESTINATION, the days since its arrival are
counted in company time (calendar days); the latest reminder day reached is
sent, once (its de-duplication key is the reminder day), and only while the
package has not gone back (UNCLAIMED_DAYS). A day missed while the scheduler
was down is not sent late when a later day is already due.

`now` is a parameter so that tests (and a replay) control the clock.
Failure policy: a core error skips that package for this pass (logged); the
next pass tries again. Database errors raise.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core_api_client.errors import CoreError
from notifications import decision, jobs, ledger, processing, sending, store
from runtime.resources import Runtime
from storage import tenant_hours

log = logging.getLogger(__name__)


def send_reminders(rt: Runtime, now: datetime | None = None) -> list[int]:
    """Record and send the reminders due at `now`; returns the new notification ids."""
    now = now or datetime.now(UTC)
    settings = rt.settings
    since = now - timedelta(days=settings.unclaimed_days + 1)
    own = tenant_hours.own_reminder_days(rt.pool)  # companies whose admin set their own days
    with rt.pool.connection() as conn:
        candidates = ledger.arrived_packages(conn, now=now, since=since, reminder_days=settings.reminder_days,
                                             except_tenants=list(own))
        for tenant_id, days in own.items():
            candidates += ledger.arrived_packages(conn, now=now, since=since, reminder_days=days,
                                                  only_tenant=tenant_id)
    created: list[int] = []
    for tenant_id, code in candidates:
        created += _remind(rt, tenant_id, code, now)
    for log_id in created:
        outcome = sending.send(rt, log_id, now=now)
        if outcome.retry_at is not None:
            jobs.enqueue_send(rt.queue, settings, log_id, outcome.retry_at)
    return created


def _remind(rt: Runtime, tenant_id: int, code: str, now: datetime) -> list[int]:
    settings = rt.settings
    try:
        package = rt.cores.client(tenant_id).track(code)  # the tenant's own core
        points = processing.service_points(rt, tenant_id) if package is not None else {}
    except CoreError as exc:
        log.warning("reminder check skipped: core error (%s)", type(exc).__name__)
        return []
    if package is None or package.status != "ARRIVED_AT_DESTINATION":
        return []
    arrivals = [h.at for h in package.history if h.status == "ARRIVED_AT_DESTINATION"]
    if not arrivals:
        return []
    with rt.pool.connection() as conn:
        tenant = store.tenant_info(conn, tenant_id)
    zone = ZoneInfo(tenant.timezone)
    days = (now.astimezone(zone).date() - arrivals[-1].astimezone(zone).date()).days
    reminder_days = rt.rules.schedule(tenant_id).reminder_days or settings.reminder_days
    due = [d for d in reminder_days if d <= days]
    if not due or days >= settings.unclaimed_days:
        return []
    day = max(due)
    plan = decision.reminder(package, points, day, settings.unclaimed_days)
    return processing.record_plans(rt, [plan], tenant_id=tenant_id, tenant_slug=tenant.slug,
                                   timezone=tenant.timezone, core_event_id=f"reminder:{code}:day{day}",
                                   core_event_pk=None, now=now)

