"""Applying a delivery receipt (sent / delivered / read / failed) to the message we sent.

Receipts arrive out of order and more than once; `storage.messages.apply_status`
only moves a message's status forward. A receipt can arrive before the send
response was stored (the provider is faster than our database write): then the
message is not known yet and this raises `UnknownMessage`, so RQ retries the
job a few seconds later; after the last retry the event is marked failed.

A receipt carries our idempotency key (`StatusUpdate.reference`: Meta's
biz_opaque_callback_data, the `ref` of Twilio's status callback URL). A reply
whose send response never came back (marked failed/interrupted when its worker
died, or still `sending`) is found by it: the receipt records its provider id
and moves it to what the customer actually got (sent/delivered/read).

Receipts are applied whatever the state of the tenant that owns the number
(suspended, or the number since removed): they only record what became of
messages already sent, and never send anything.
"""

from __future__ import annotations

import logging

from channels.events import StatusUpdate
from chatbot import customer_side
from notifications import receipts
from runtime.resources import Runtime
from storage import messages, webhook_events
from worker import attempts

log = logging.getLogger(__name__)


class UnknownMessage(LookupError):
    """No message of ours has this provider id (yet)."""


def process_status(runtime: Runtime, event_pk: int) -> str:
    stored, event = attempts.begin(runtime, event_pk)
    if event is None:
        return f"already {stored.status}"
    attempt = stored.attempts
    assert isinstance(event, StatusUpdate)
    reference = event.reference or None
    with runtime.pool.connection() as conn:
        outcome = messages.apply_status(
            conn, channel=event.provider, provider_message_id=event.message_id, status=event.status,
            error_code=event.error_code, error_title=event.error_title, reference=reference,
        )
        if outcome == "unknown":
            if attempt >= webhook_events.MAX_ATTEMPTS - 1:
                webhook_events.finish(conn, event_pk, "failed", error="no message with this provider id")
                log.warning("status for an unknown message dropped after retries", extra={"event_pk": event_pk})
                return "unknown"
            raise UnknownMessage(f"no message with provider id of event {event_pk} yet")
        webhook_events.finish(conn, event_pk, "processed")
        if outcome == "applied":  # issue 6: the console shows delivery/read status live
            customer_side.announce_status(conn, runtime.redis, channel=event.provider,
                                          provider_message_id=event.message_id)
        if outcome == "applied":  # issue 7: a notification's status follows its message's
            receipts.on_status(runtime, conn, event.provider, event.message_id)
    log.info("status applied", extra={"event_pk": event_pk, "status": event.status.value, "outcome": outcome})
    return outcome
