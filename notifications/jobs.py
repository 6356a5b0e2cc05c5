"""RQ jobs of the notifications and how they are queued: thin wrappers around the services.

Like every job, they get the worker's Runtime as their first argument (worker.main).

- `handle_core_event(pk)`: decide who to tell about a stored core event and send
  at once (notifications.processing + notifications.sending);
- `send_notification(log_id)`: send (or re-try) one notification.

A notification deferred by quiet hours or a rate limit is queued again for the
time it may go (`enqueue_send`); the scheduler's pass (`notifications.schedule`)
also sends whatever is due, so nothing depends on that one scheduled job.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from rq import Queue, Retry

from config import Settings
from notifications import processing, sending
from observability import correlation
from runtime.resources import Runtime

EVENT_RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])
SEND_RETRY = Retry(max=3, interval=[10, 60, 300])
FAILED_TTL_S = 7 * 24 * 3600


def event_job_id(pk: int) -> str:
    return f"ce{pk:015d}"


def handle_core_event(rt: Runtime, pk: int, correlation_id: str) -> str:
    with correlation(correlation_id):
        created = processing.process_event(rt, pk)
        results = [send_and_follow_up(rt, log_id) for log_id in created]
        return ",".join(results) or "nobody to notify"


def send_notification(rt: Runtime, log_id: int, correlation_id: str) -> str:
    with correlation(correlation_id):
        return send_and_follow_up(rt, log_id)


def send_and_follow_up(rt: Runtime, log_id: int) -> str:
    """Send one notification; when it had to wait, queue it again for the time it may go."""
    outcome = sending.send(rt, log_id)
    if outcome.retry_at is not None:
        enqueue_send(rt.queue, rt.settings, log_id, outcome.retry_at)
    return outcome.result


def enqueue_core_event(queue: Queue, settings: Settings, pk: int, correlation_id: str) -> None:
    """Queue the processing of a stored event. Raises redis errors (the event stays `received`)."""
    queue.enqueue_call(
        "notifications.jobs.handle_core_event",
        args=(pk, correlation_id),
        job_id=event_job_id(pk),
        timeout=settings.job_timeout_s,
        result_ttl=0,
        failure_ttl=FAILED_TTL_S,
        retry=EVENT_RETRY,
    )


def enqueue_send(queue: Queue, settings: Settings, log_id: int, at: datetime | None = None) -> None:
    """Queue the sending of one notification, now or at `at`. Raises redis errors."""
    job_id = f"nt{log_id:015d}-{uuid.uuid4().hex[:8]}"
    options = {"job_id": job_id, "job_timeout": settings.job_timeout_s, "result_ttl": 0,
               "failure_ttl": FAILED_TTL_S, "retry": SEND_RETRY}
    if at is None:
        queue.enqueue("notifications.jobs.send_notification", log_id, f"notification-{log_id}", **options)
    else:
        queue.enqueue_at(at, "notifications.jobs.send_notification", log_id, f"notification-{log_id}", **options)
