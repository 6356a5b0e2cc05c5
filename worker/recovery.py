"""The safety net: events that were stored but never queued, or whose queue entry vanished, are queued again.

Runs every RECOVERY_INTERVAL_S in the scheduler process. It covers
- Redis down at the webhook: events wait in PostgreSQL, unfinished and held
  by nothing in Redis;
- Redis restarted and lost its queue: the same;
- a drain job that died for good: its customers go back in turn and a drain
  job is announced (`worker.inbox.wake`).
An unfinished event is left alone while an RQ job (queued, running or waiting
for a retry) or its customer's inbox holds it.
A job killed with its worker is retried by RQ itself (abandoned-job handling);
processing is idempotent, so queueing an event twice never doubles a reply.
"""

from __future__ import annotations

import logging

import redis
from rq.job import Job

from channels.events import event_from_dict
from storage import webhook_events
from worker import inbox
from worker.enqueue import conversation_hash, enqueue_event, job_id_for
from worker.inbound import unseal
from worker.runtime import Runtime

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
            prefix = "ev" if stored.kind == "message" else "st"
            if Job.exists(job_id_for(stored.id).replace("ev", prefix, 1), connection=runtime.redis):
                continue  # its own RQ job: queued, running or waiting for a retry
            kind, data = unseal(runtime, stored.payload_encrypted)
            customer = conversation_hash(runtime.vault, event_from_dict(kind, data))
            if customer is not None and inbox.holds(runtime.redis, customer, stored.id, stored.correlation_id):
                continue  # waiting (or being answered) in its customer's inbox
            if customer is not None:
                inbox.deliver(runtime.redis, settings, customer, stored.id, stored.correlation_id)
            else:
                enqueue_event(runtime.queue, settings, kind=kind, event_pk=stored.id, sealed=None,
                              conversation_hash=None, correlation_id=stored.correlation_id)
            queued.append(stored.id)
        inbox.wake(runtime.redis, settings)
    except redis.RedisError as exc:
        log.warning("recovery paused: redis unavailable (%s)", type(exc).__name__)
    webhook_events.mark_queued(runtime.pool, queued)
    if queued:
        log.info("recovered events queued", extra={"count": len(queued)})
    return len(queued)

