"""Putting single jobs on the RQ queue: an event on its own, a reply to send again.

Events normally wait in an inbox (runtime.inbox). A message queued on its
own (retried after a failure in a drain job, or sealed in Redis while
PostgreSQL was down) carries rq's `RateLimit(key=<customer>, concurrency=1)`,
so RQ runs one such job per customer at a time, oldest first. Job ids sort in arrival order (the
PostgreSQL id of the stored event). Status callbacks need no ordering (a
status only moves forward) and carry no limit.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
from rq import Queue, Retry
from rq.rate_limit import RateLimit

from channels.events import InboundEvent, InboundMessage
from config import Settings
from storage.crypto import Vault

log = logging.getLogger(__name__)

# Back-off for a job that raised or died with its worker: at once (a blip, a crash), then 10 s ... 10 min.
MESSAGE_RETRY = Retry(max=5, interval=[0, 10, 30, 120, 600])
STATUS_RETRY = Retry(max=4, interval=[3, 10, 30, 120])
DELIVERY_RETRY = Retry(max=6, interval=[5, 15, 60, 300, 900, 3600])
FAILED_TTL_S = 7 * 24 * 3600
MEDIA_JOB_TIMEOUT_S = 300  # a 100 MB document from a slow provider (issue 17)
# The job id's prefix of an event queued on its own, by kind (worker.recovery looks the job up by it).
JOB_PREFIXES = {"message": "ev", "status": "st", "notice": "an"}


def conversation_hash(vault: Vault, event: InboundEvent) -> str | None:
    """The key that serialises one customer's messages (hashed: Redis keys never hold phone numbers)."""
    if not isinstance(event, InboundMessage):
        return None
    who = event.user_phone or event.user_bsuid or f"unknown:{event.message_id}"
    return vault.lookup_hash(f"{event.provider}:{event.channel_number}:{who}")[:32]


def customer_key(conversation_hash: str) -> str:
    return f"customer:{conversation_hash}"


def job_id_for(event_pk: int | None) -> str:
    """Stored events use their database id; an event kept only in Redis (PostgreSQL down) a clock reading."""
    if event_pk is not None:
        return f"ev{event_pk:015d}"
    return f"ev-redis-{time.time_ns()}"


def enqueue_event(
    queue: Queue, settings: Settings, *, kind: str, event_pk: int | None, sealed: str | None,
    conversation_hash: str | None, correlation_id: str,
) -> None:
    """Queue one webhook event. Raises redis errors (the caller decides what that means for the webhook)."""
    if kind == "message":
        assert conversation_hash is not None
        queue.enqueue_call(
            "worker.jobs.handle_message",
            args=(event_pk, sealed, correlation_id),
            job_id=job_id_for(event_pk),
            timeout=settings.job_timeout_s,
            result_ttl=0,
            failure_ttl=FAILED_TTL_S,
            retry=MESSAGE_RETRY,
            rate_limit=RateLimit(key=customer_key(conversation_hash), concurrency=1),
        )
    else:  # a receipt, or an account notice (issue 17): no per-customer order to keep
        queue.enqueue_call(
            "worker.jobs.handle_notice" if kind == "notice" else "worker.jobs.handle_status",
            args=(event_pk, sealed, correlation_id),
            job_id=job_id_for(event_pk).replace("ev", JOB_PREFIXES.get(kind, "st"), 1),
            timeout=settings.job_timeout_s,
            result_ttl=0,
            failure_ttl=FAILED_TTL_S,
            retry=STATUS_RETRY,
        )


def enqueue_status_later(queue: Queue, settings: Settings, event_pk: int, correlation_id: str) -> None:
    """Apply a receipt again in a few seconds, then with back-off: it came before our send was stored."""
    queue.enqueue_in(
        timedelta(seconds=STATUS_RETRY.intervals[0]),
        "worker.jobs.handle_status",
        event_pk, None, correlation_id,
        job_id=job_id_for(event_pk).replace("ev", "st", 1),
        job_timeout=settings.job_timeout_s,
        result_ttl=0,
        failure_ttl=FAILED_TTL_S,
        retry=STATUS_RETRY,
    )


def enqueue_delivery(queue: Queue, settings: Settings, message_id: int, correlation_id: str | None,
                     delay_s: float = 5.0) -> None:
    """Retry the sending of one stored reply after `delay_s` (a transient provider failure), then with back-off."""
    queue.enqueue_in(
        timedelta(seconds=max(1.0, delay_s)),
        "worker.jobs.deliver_message",
        message_id,
        correlation_id,
        job_id=f"out{message_id:015d}",
        job_timeout=settings.job_timeout_s,
        result_ttl=0,
        failure_ttl=FAILED_TTL_S,
        retry=DELIVERY_RETRY,
    )


def enqueue_media_download(queue: Queue, settings: Settings, media_id: int, correlation_id: str | None,
                           delay_s: float = 0.0, attempt: int = 0) -> bool:
    """Queue the download of one stored media row (worker.media_job), now or after `delay_s`.

    Failure policy: Redis errors are logged, never raised (returns False): the row stays `pending` and the
    scheduler's recovery loop queues it again once its next attempt is overdue.
    """
    job_id = f"media{media_id:015d}-{attempt}"
    timeout = max(settings.job_timeout_s, MEDIA_JOB_TIMEOUT_S)
    try:
        if delay_s > 0:
            queue.enqueue_in(timedelta(seconds=delay_s), "worker.jobs.download_media", media_id, correlation_id,
                             job_id=job_id, job_timeout=timeout, result_ttl=0, failure_ttl=FAILED_TTL_S)
        else:
            queue.enqueue_call("worker.jobs.download_media", args=(media_id, correlation_id), job_id=job_id,
                               timeout=timeout, result_ttl=0, failure_ttl=FAILED_TTL_S)
    except redis.RedisError as exc:
        log.warning("media download not queued: the recovery loop will", extra={"media_id": media_id,
                                                                               "error": type(exc).__name__})
        return False
    return True
