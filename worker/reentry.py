"""What the worker learns from a customer's file comes back as a message of theirs (issue 17).

A voice note's transcript (worker.media_followup), or a code read from a photo,
must be answered like something the customer typed: in order with their other
messages, once, by the same pipeline. So it re-enters the way a webhook event
enters (web/ingest.py): a new `webhook_events` row, sealed, unique on
(provider, event id), then the customer's inbox (runtime.inbox). The event is a
copy of the original message (same provider, receiving number and customer)
with another kind, the id `<original id>:<suffix>`, the text, and
`context_message_id` = the original message's id.

- Running again (a retried job) stores nothing new: the database's unique key
  says it was re-entered before, and the worker answers a stored message once.
- Redis down after the row is stored: the event waits `received` and the
  scheduler's recovery loop queues it (as for a webhook).

Failure policy: database errors raise (the caller's job is retried); Redis errors
are logged, never raised (recovery queues the event).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import redis

from channels.events import InboundMessage, MessageKind
from runtime import inbox
from runtime.resources import Runtime
from storage import webhook_events
from storage.media import Media

log = logging.getLogger(__name__)


def original_message(rt: Runtime, row: Media) -> InboundMessage | None:
    """The customer message a file came with, as its webhook delivered it (None: not kept any more)."""
    with rt.pool.connection() as conn:
        found = conn.execute(
            "SELECT e.payload_encrypted FROM messages m JOIN webhook_events e ON e.id = m.webhook_event_id"
            " WHERE m.id = %s AND m.tenant_id = %s", (row.message_id, row.tenant_id)).fetchone()
    if found is None:
        return None
    values: dict[str, object] = dict(found)
    event = webhook_events.unseal(rt.vault, str(values["payload_encrypted"]))
    return event if isinstance(event, InboundMessage) else None


def reenter(rt: Runtime, row: Media, *, kind: MessageKind, suffix: str, text: str | None,
            correlation_id: str) -> int | None:
    """Put a message of `kind` derived from `row`'s message into the customer's inbox; its event id, or None
    when it was re-entered before (or the original message is no longer kept)."""
    original = original_message(rt, row)
    if original is None:
        log.warning("file's message not found: nothing re-entered", extra={"media_id": row.id})
        return None
    event = replace(original, kind=kind, message_id=f"{original.message_id}:{suffix}", text=text,
                    context_message_id=original.message_id, reply_id=None, reply_title=None, media_type=None,
                    media_ref=None, media_mime=None, media_voice=None, media_filename=None, media_sha256=None,
                    media_more=None, raw={})
    event_pk = webhook_events.record(rt.pool, provider=event.provider, event_id=event.message_id, kind="message",
                                     payload_encrypted=webhook_events.seal(rt.vault, event),
                                     correlation_id=correlation_id)
    if event_pk is None:
        log.info("re-entry already stored", extra={"media_id": row.id, "kind": kind.value})
        return None
    try:
        inbox.deliver(rt.redis, rt.queue, rt.settings, inbox.owner_of(rt.vault, event), event_pk, correlation_id)
    except redis.RedisError as exc:
        log.error("redis unavailable at re-entry; event kept for recovery",
                  extra={"event_pk": event_pk, "error": type(exc).__name__})
    log.info("message re-entered", extra={"event_pk": event_pk, "media_id": row.id, "kind": kind.value})
    return event_pk
