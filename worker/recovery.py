"""The safety net: events that were stored but never queued, or whose queue entry vanished, are queued again.

Runs every RECOVERY_INTERVAL_S in the scheduler process. It covers
- Redis down at the webhook: events wait in PostgreSQL, unfinished and held
  by nothing in Redis;
- Redis restarted and lost its queue: the same;
- a drain job that died for good: its inboxes' owners go back in turn and a
  drain job is queued (`runtime.inbox.wake`).
An unfinished event is left alone while an RQ job (queued, running or waiting
for a retry) or its inbox holds it.
A job killed with its worker is retried by RQ itself (abandoned-job handling);
processing is idempotent, so queueing an event twice never doubles a reply.
"""

from __future__ import annotations

import logging

import redis
from rq.job import Job

from runtime import inbox
from runtime.enqueue import JOB_PREFIXES, job_id_for
from runtime.resources import Runtime
from storage import webhook_events

log = logging.getLogger(__name__)


def recover_events(runtime: Runtime) -> int:
    """Queue what needs queueing; returns how many events were queued. Redis errors are logged, not raised."""
    settings = runtime.settings
    candidates = webhook_events.pending(
        runtime.pool, received_older_than_s=settings.recovery_min_age_s,
        queued_older_than_s=settings.recovery_min_age_s,
    )
    queued: list[int] = []
    try:
        for stored in candidates:
            if stored.attempts >= webhook_events.MAX_ATTEMPTS:
                with runtime.pool.connection() as conn:
                    webhook_events.finish(conn, stored.id, "failed", error="gave up after repeated attempts")
                log.error("event failed after repeated attempts", extra={"event_pk": stored.id})
                continue
            prefix = JOB_PREFIXES.get(stored.kind, "st")
            if Job.exists(job_id_for(stored.id).replace("ev", prefix, 1), connection=runtime.redis):
                continue  # its own RQ job: queued, running or waiting for a retry
            owner = inbox.owner_of(runtime.vault, webhook_events.unseal(runtime.vault, stored.payload_encrypted))
            if inbox.holds(runtime.redis, owner, stored.id, stored.correlation_id):
                continue  # waiting (or being handled) in its inbox
            inbox.deliver(runtime.redis, runtime.queue, settings, owner, stored.id, stored.correlation_id)
            queued.append(stored.id)
        inbox.wake(runtime.redis, runtime.queue, settings)
    except redis.RedisError as exc:
        log.warning("recovery paused: redis unavailable (%s)", type(exc).__name__)
    webhook_events.mark_queued(runtime.pool, queued)
    if queued:
        log.info("recovered events queued", extra={"count": len(queued)})
    return len(queued)
