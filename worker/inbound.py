"""Handling one customer message: store it, compose the replies, send them.

The steps are ordered so that a job killed at any point can simply run again:
1. the message, its customer and conversation are stored (idempotent);
2. replies are composed only if none were stored for this event before, and
   stored as `pending` rows with idempotency keys "<event>:<n>";
3. each pending row is sent by `worker.delivery` (a row in flight when a worker
   died is never sent twice);
4. the event is marked processed.
No database transaction is held while talking to the provider.
"""

from __future__ import annotations

import json
import logging

from channels.events import InboundMessage, event_from_dict
from chatbot.menu import Customer, reply_to
from storage import contacts, conversations, messages, webhook_events
from storage.tenants import tenant_for_channel_number
from worker import delivery
from worker.runtime import Runtime

log = logging.getLogger(__name__)


def unseal(runtime: Runtime, sealed: str) -> tuple[str, dict[str, object]]:
    """Decrypt a stored event envelope -> (kind, event dict)."""
    envelope = json.loads(runtime.vault.decrypt(sealed))
    return str(envelope["kind"]), dict(envelope["event"])


def process_message(runtime: Runtime, event_pk: int) -> str:
    """Handle a stored inbound message event; returns what happened (for logs and tests).

    Raises on database errors so that RQ retries the job.
    """
    with runtime.pool.connection() as conn:
        stored = webhook_events.load(conn, event_pk)
        if stored is None:
            raise LookupError(f"webhook event {event_pk} does not exist")
        if stored.status in ("processed", "unroutable", "failed"):
            return f"already {stored.status}"
        webhook_events.start_attempt(conn, event_pk)
    kind, data = unseal(runtime, stored.payload_encrypted)
    event = event_from_dict(kind, data)
    assert isinstance(event, InboundMessage)

    tenant = tenant_for_channel_number(runtime.pool, event.provider, event.channel_number)
    if tenant is None:
        log.warning("no tenant owns receiving number", extra={"provider": event.provider})
        with runtime.pool.connection() as conn:
            webhook_events.finish(conn, event_pk, "unroutable", error="no tenant for the receiving number")
        return "unroutable"

    with runtime.pool.connection() as conn, conn.transaction():
        contact = contacts.upsert_inbound(
            conn, runtime.vault, tenant_id=tenant.id, phone=event.user_phone, bsuid=event.user_bsuid,
            profile_name=event.profile_name,
        )
        conversation = conversations.open_for(conn, tenant_id=tenant.id, contact_id=contact.id)
        messages.insert_inbound(
            conn, tenant_id=tenant.id, conversation_id=conversation.id, channel=event.provider,
            provider_message_id=event.message_id, webhook_event_id=event_pk, kind=event.kind.value,
            body=event.text, payload=_inbound_payload(event), correlation_id=stored.correlation_id,
        )
        already_composed = bool(messages.outbound_keys_for_event(conn, event_pk))

    if not already_composed:
        runtime.transport.mark_read(event.message_id)
        replies = reply_to(event, Customer(contact.profile_name, contact.is_new), tenant.name)
        with runtime.pool.connection() as conn, conn.transaction():
            for index, reply in enumerate(replies):
                messages.create_outbound(
                    conn, tenant_id=tenant.id, conversation_id=conversation.id, channel=runtime.transport.channel,
                    idempotency_key=f"{event_pk}:{index}", message=reply, webhook_event_id=event_pk,
                    correlation_id=stored.correlation_id,
                )

    with runtime.pool.connection() as conn:
        pending = messages.pending_outbound_ids(conn, event_pk)
    outcomes = [delivery.deliver(runtime, message_id) for message_id in pending]
    for message_id, outcome in zip(pending, outcomes, strict=True):
        if outcome.kind == delivery.RETRY_LATER:
            delivery.schedule_retry(runtime, message_id, stored.correlation_id, outcome.retry_after_s)

    with runtime.pool.connection() as conn:
        webhook_events.finish(conn, event_pk, "processed", tenant_id=tenant.id)
    log.info("message handled", extra={"event_pk": event_pk, "kind": event.kind.value, "replies": len(pending)})
    return "processed"


def _inbound_payload(event: InboundMessage) -> dict[str, object]:
    """What is kept of the message besides its text: ids and references, never the phone."""
    keep = ("reply_id", "reply_title", "latitude", "longitude", "location_name", "location_address",
            "media_type", "media_ref", "media_mime", "reaction_to", "reaction_emoji", "context_message_id",
            "error_code")
    return {k: getattr(event, k) for k in keep if getattr(event, k) is not None}
