"""The notifications' timed work, run by the `scheduler` process (one active instance: Redis lease).

`register_jobs(scheduler, rt, leader)` adds two APScheduler jobs; each does its
work only while this instance holds the leader lease (`runtime.leader`):
- every NOTIFICATIONS_INTERVAL_S, `run_pass`: queue core events stored but not
  queued (Redis was down) or whose job vanished; send notifications whose time
  came (quiet hours over, rate-limit wait over) or that nobody sent; release
  notifications held by WhatsApp's messaging limit in priority order as far as
  the tier has room (`notifications.limits.release_pass`, queued for the workers); end the templates' timed
  pauses at Meta whose time is over and release what waited for them (`end_pauses`); mark
  notifications stuck in `sending` as failed (never resent); retry reports
  the core has not accepted;
- every 15 minutes (at most), `notifications.reminders.send_reminders`;
- every RETENTION_INTERVAL_S, `notifications.retention.apply_retention`.

Failure policy: each step's errors are logged and never stop the other steps
or the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
from rq.job import Job

from notifications import (
    jobs,
    ledger,
    limits,
    queueing,
    reminders,
    reporting,
    retention,
    sending,
    store,
    template_states,
)
from runtime.leader import Leader
from runtime.resources import Runtime

log = logging.getLogger(__name__)

# A notification `sending` for longer than this was interrupted (jobs time out well before).
STUCK_SENDING_S = 600.0
# Reminders are by calendar day: checking four times an hour is plenty (each check asks the core).
REMINDERS_INTERVAL_S = 900.0


def register_jobs(scheduler: Any, rt: Runtime, leader: Leader) -> None:
    """Add the notification, reminder and retention passes to an APScheduler scheduler."""
    def notifications_pass() -> None:
        if leader.holds():
            run_pass(rt)

    def retention_pass() -> None:
        if leader.holds():
            _guarded("retention", lambda: retention.apply_retention(rt))

    def reminders_pass() -> None:
        if leader.holds():
            _guarded("reminders", lambda: len(reminders.send_reminders(rt)))

    scheduler.add_job(notifications_pass, "interval", seconds=rt.settings.notifications_interval_s,
                      id="notifications", max_instances=1, coalesce=True)
    scheduler.add_job(retention_pass, "interval", seconds=rt.settings.retention_interval_s,
                      id="retention", max_instances=1, coalesce=True)
    every = min(REMINDERS_INTERVAL_S, 15 * rt.settings.notifications_interval_s)
    scheduler.add_job(reminders_pass, "interval", seconds=every, id="reminders", max_instances=1, coalesce=True)


def run_pass(rt: Runtime, now: datetime | None = None) -> dict[str, int]:
    """One pass of the notification work at `now`; returns how much each step did."""
    now = now or datetime.now(UTC)
    return {
        "events_queued": _guarded("recover events", lambda: recover_events(rt)),
        "interrupted": _guarded("interrupted", lambda: ledger.interrupted(rt.pool, older_than_s=STUCK_SENDING_S)),
        "released": _guarded("messaging limit", lambda: len(limits.release_pass(rt, now))),
        "pauses_over": _guarded("template pauses", lambda: end_pauses(rt, now)),
        "sent_due": _guarded("due notifications", lambda: send_due(rt, now)),
        "reported": _guarded("reports", lambda: reporting.report_unreported(rt)),
    }


def recover_events(rt: Runtime) -> int:
    """Queue stored core events that are not on the queue; give up on those tried too often.

    Events announced to the drain jobs (`notifications.queueing`) are left to them while they work.
    """
    queued: list[int] = []
    draining = queueing.drainers_busy(rt.redis)
    for pk, state, attempts in store.pending(rt.pool, older_than_s=rt.settings.recovery_min_age_s):
        if state == "queued" and draining:
            continue
        if attempts >= store.MAX_ATTEMPTS:
            with rt.pool.connection() as conn:
                store.finish(conn, pk, "failed", "gave up after repeated attempts")
            continue
        if state == "queued" and Job.exists(jobs.event_job_id(pk), connection=rt.redis):
            continue
        jobs.enqueue_core_event(rt.queue, rt.settings, pk, f"recovered-{pk}")
        queued.append(pk)
    store.mark_queued(rt.pool, queued)
    return len(queued)


def end_pauses(rt: Runtime, now: datetime) -> int:
    """Templates whose timed pause at Meta is over are usable again and the notifications held for them are
    queued (issue 17: should Meta's own notice of the pause's end not come); returns how many were released."""
    with rt.pool.connection() as conn, conn.transaction():
        released = template_states.end_pauses(conn, now)
    for log_id in released:
        jobs.enqueue_send(rt.queue, rt.settings, log_id)
    return len(released)


def send_due(rt: Runtime, now: datetime) -> int:
    """Send every waiting notification whose time came; returns how many went out."""
    sent = 0
    for log_id in ledger.due(rt.pool, now, min_age_s=rt.settings.recovery_min_age_s):
        outcome = sending.send(rt, log_id, now=now)
        if outcome.retry_at is not None:
            jobs.enqueue_send(rt.queue, rt.settings, log_id, outcome.retry_at)
        sent += outcome.result == "sent"
    return sent


def _guarded(step: str, work: Callable[[], object]) -> int:
    try:
        result = work()
    except (redis.RedisError, Exception):  # noqa: BLE001 - one failing step must not stop the others
        log.exception("notification step failed: %s", step)
        return 0
    return result if isinstance(result, int) else 0
