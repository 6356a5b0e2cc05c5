"""RQ jobs: thin wrappers that decode ids and call one function. Each takes the worker's Runtime first.

`worker.main.EncargoWorker` passes the runtime its process built; the rest of a
job's arguments are what was queued. Events normally reach a worker through
their inbox (`drain_inbox`, worker.draining). `handle_message` and
`handle_status` take one event on its own: one that failed in a drain job, or
one that only reached Redis. An event reaches such a job either as the id of
its `webhook_events` row, or, when PostgreSQL was down at the webhook, as the
sealed (encrypted) event itself: the job then stores it first (de-duplicated by
the same unique key) and carries on as usual. Any exception makes RQ retry with
back-off.
"""

from __future__ import annotations

from rq import get_current_job

from channels.events import event_kind
from observability import correlation
from runtime import delivery
from runtime.resources import Runtime
from storage import webhook_events
from worker import draining, inbound, media_followup, media_job, notices, statuses


def handle_message(rt: Runtime, event_pk: int | None, sealed: str | None, correlation_id: str) -> str:
    with correlation(correlation_id):
        pk = event_pk if event_pk is not None else _store_sealed(rt, sealed, correlation_id)
        if pk is None:
            return "duplicate"
        return inbound.process_message(rt, pk)


def drain_inbox(rt: Runtime, correlation_id: str) -> int:
    """Take turns over the inboxes with events waiting; returns how many were handled."""
    job = get_current_job()
    assert job is not None
    with correlation(correlation_id):
        # The job's own timeout (set by whoever queued it, maybe a web host with other settings) is what RQ kills at.
        return draining.drain(rt, job.id, timeout_s=job.timeout)


def handle_status(rt: Runtime, event_pk: int | None, sealed: str | None, correlation_id: str) -> str:
    with correlation(correlation_id):
        pk = event_pk if event_pk is not None else _store_sealed(rt, sealed, correlation_id)
        if pk is None:
            return "duplicate"
        return statuses.process_status(rt, pk)


def handle_notice(rt: Runtime, event_pk: int | None, sealed: str | None, correlation_id: str) -> str:
    """One account notice of the provider (issue 17): a template paused, a number's quality, a new limit."""
    with correlation(correlation_id):
        pk = event_pk if event_pk is not None else _store_sealed(rt, sealed, correlation_id)
        if pk is None:
            return "duplicate"
        return notices.process_notice(rt, pk)


def deliver_message(rt: Runtime, message_id: int, correlation_id: str | None) -> str:
    with correlation(correlation_id):
        return delivery.deliver_or_raise(rt, message_id)


def _store_sealed(rt: Runtime, sealed: str | None, correlation_id: str) -> int | None:
    """Store an event that only reached Redis; None when the database had it already."""
    assert sealed is not None
    event = webhook_events.unseal(rt.vault, sealed)
    pk = webhook_events.record(
        rt.pool, provider=event.provider, event_id=event.event_id, kind=event_kind(event),
        payload_encrypted=sealed, correlation_id=correlation_id,
    )
    if pk is not None:
        webhook_events.mark_queued(rt.pool, [pk])
    return pk


def download_media(rt: Runtime, media_id: int, correlation_id: str | None) -> str:
    with correlation(correlation_id):
        return media_job.download_media(rt, media_id, correlation_id)


def transcribe_voice(rt: Runtime, media_id: int, tenant_id: int, correlation_id: str, attempt: int = 0) -> str:
    """A customer's voice note to text, re-entered as their message (issue 17; worker/media_followup.py)."""
    with correlation(correlation_id):
        return media_followup.transcribe_voice(rt, media_id, tenant_id, correlation_id, attempt)
