"""RQ jobs: thin wrappers that decode ids and call one service function.

Customer messages normally reach a worker through their customer's inbox
(`drain_inbox`, worker/inbox.py). `handle_message` takes one message on its
own: a message that failed in a drain job, or one that only reached Redis.
An event reaches such a job either as the id of its `webhook_events` row, or,
when PostgreSQL was down at the webhook, as the sealed (encrypted) event
itself: the job then stores it first (de-duplicated by the same unique key)
and carries on as usual. Any exception makes RQ retry with back-off.
"""

from __future__ import annotations

import json

from rq import get_current_job

from observability import correlation
from storage import webhook_events
from worker import delivery, inbound, inbox, runtime, statuses


def handle_message(event_pk: int | None, sealed: str | None, correlation_id: str) -> str:
    with correlation(correlation_id):
        rt = runtime.current()
        pk = event_pk if event_pk is not None else _store_sealed(rt, sealed, correlation_id)
        if pk is None:
            return "duplicate"
        return inbound.process_message(rt, pk)


def drain_inbox(correlation_id: str) -> int:
    """Take turns over the customers with messages waiting (worker.inbox); returns how many were handled."""
    job = get_current_job()
    assert job is not None
    with correlation(correlation_id):
        return inbox.drain(runtime.current(), job.id)


def handle_status(event_pk: int | None, sealed: str | None, correlation_id: str) -> str:
    with correlation(correlation_id):
        rt = runtime.current()
        pk = event_pk if event_pk is not None else _store_sealed(rt, sealed, correlation_id)
        if pk is None:
            return "duplicate"
        return statuses.process_status(rt, pk)


def deliver_message(message_id: int, correlation_id: str | None) -> str:
    with correlation(correlation_id):
        return delivery.deliver_or_raise(runtime.current(), message_id)


def _store_sealed(rt: runtime.Runtime, sealed: str | None, correlation_id: str) -> int | None:
    """Store an event that only reached Redis; None when the database had it already."""
    assert sealed is not None
    envelope = json.loads(rt.vault.decrypt(sealed))
    event = envelope["event"]
    event_id = event["message_id"] if envelope["kind"] == "message" else f"{event['message_id']}:{event['status']}"
    pk = webhook_events.record(
        rt.pool, provider=event["provider"], event_id=event_id, kind=envelope["kind"],
        payload_encrypted=sealed, correlation_id=correlation_id,
    )
    if pk is not None:
        webhook_events.mark_queued(rt.pool, [pk])
    return pk
