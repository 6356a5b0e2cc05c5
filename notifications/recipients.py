"""The customer a notification goes to, and what the bot remembers for their reply.

A package's parties may never have written to us: `contact_for_phone` finds
or creates their contact (phone encrypted, found by its keyed hash) without
touching `last_inbound_at` — only the customer's own messages open the
24-hour window. `seed_dialog` puts the package (and the offered map pin) into
the customer's dialog state, so "Sí, manda la ubicación" or a tap on the
template's button continues the conversation with the package in context.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from channels.events import InboundMessage, MessageKind
from runtime.enqueue import conversation_hash
from runtime.resources import Runtime
from storage import dialogs
from storage.crypto import Vault

# The dialog states in which a notification may set the next question (the customer is not mid-flow).
_RESTING_STATES = ("idle", "awaiting_pin_answer")
AWAITING_PIN = "awaiting_pin_answer"


def contact_for_phone(conn: Connection[Any], vault: Vault, tenant_id: int, phone: str) -> int:
    """The contact id of the customer with this E.164 phone, created when unknown."""
    phone_hash = vault.lookup_hash(phone)
    row = conn.execute(
        "SELECT id FROM contacts WHERE tenant_id = %s AND phone_hash = %s", (tenant_id, phone_hash)
    ).fetchone()
    if row is not None:
        return int(row["id"])
    row = conn.execute(
        """
        INSERT INTO contacts (tenant_id, phone_hash, phone_encrypted) VALUES (%s, %s, %s)
        ON CONFLICT DO NOTHING RETURNING id
        """,
        (tenant_id, phone_hash, vault.encrypt(phone)),
    ).fetchone()
    if row is None:  # created by another worker a moment ago
        row = conn.execute(
            "SELECT id FROM contacts WHERE tenant_id = %s AND phone_hash = %s", (tenant_id, phone_hash)
        ).fetchone()
    assert row is not None
    return int(row["id"])


def dialog_key(vault: Vault, provider: str, number: str, phone: str) -> str:
    """The dialog-state key the worker will use when this customer writes in to `number` (the one the
    notification left from; same hash as runtime.enqueue)."""
    probe = InboundMessage(provider=provider, channel_number=number.removeprefix("whatsapp:"),
                           message_id="notification", kind=MessageKind.TEXT, timestamp=0, user_phone=phone)
    key = conversation_hash(vault, probe)
    assert key is not None
    return key


def seed_dialog(rt: Runtime, provider: str, number: str, *, phone: str, conversation_id: int, tracking_code: str,
                pin_point: str | None, options: list[tuple[str, str]]) -> bool:
    """Remember the package (and the pin offer) for the customer's reply to `number` (the channel the
    notification left from, `provider` as its inbound events name it). Redis errors: logged, False."""
    key = dialog_key(rt.vault, provider, number, phone)
    state = dialogs.load(rt.redis, key)
    if state.conversation_id != conversation_id:
        state = dialogs.DialogState(conversation_id=conversation_id)
    state.remember_package(tracking_code)
    if state.state in _RESTING_STATES:
        state.state = AWAITING_PIN if pin_point else "idle"
        state.pin_point = pin_point
        state.point = pin_point or state.point
        state.options = [option_id for option_id, _ in options]
        state.option_titles = [title for _, title in options]
    return dialogs.save(rt.redis, key, state)
