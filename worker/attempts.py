"""Starting work on a stored webhook event: count the attempt, then open its envelope."""

from __future__ import annotations

from channels.events import InboundEvent
from runtime.resources import Runtime
from storage import webhook_events
from storage.webhook_events import StoredEvent


def begin(rt: Runtime, event_pk: int) -> tuple[StoredEvent, InboundEvent | None]:
    """The stored event (its `attempts` counting this one) and the event itself; None for an event that
    finished already (`stored.status` says how). Raises LookupError for an id that does not exist."""
    with rt.pool.connection() as conn:
        stored = webhook_events.begin_attempt(conn, event_pk)
    if stored is None:
        raise LookupError(f"webhook event {event_pk} does not exist")
    if stored.status in webhook_events.FINISHED:
        return stored, None
    return stored, webhook_events.unseal(rt.vault, stored.payload_encrypted)
