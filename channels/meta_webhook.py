"""Meta WhatsApp Cloud API webhooks: signature check and parsing into inbound events.

The signature is an HMAC-SHA256 of the raw request bytes with the app secret
(`X-Hub-Signature-256: sha256=<hex>`), compared in constant time before the
body is parsed. One POST may carry several entries, changes, messages and
statuses; each becomes its own event. Fields we do not know are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from channels.events import (
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    MalformedPayload,
    MessageKind,
    StatusUpdate,
    e164,
)

log = logging.getLogger(__name__)

MEDIA_TYPES = ("image", "audio", "document", "video", "sticker")
_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}


def signature_is_valid(app_secret: str, raw_body: bytes, header: str | None) -> bool:
    """True when `header` is 'sha256=<hex HMAC of raw_body>'. No secret configured means False."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def sign(app_secret: str, raw_body: bytes) -> str:
    """The header value Meta would send for this body (the simulator and tests use it)."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def parse_body(raw_body: bytes) -> list[InboundEvent]:
    """Parse a POST body into events. Raises MalformedPayload for a body that is not a webhook."""
    try:
        payload = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise MalformedPayload("body is not a WhatsApp webhook: expected an object with an 'entry' list")
    if payload.get("object") not in (None, "whatsapp_business_account"):
        log.info("ignoring webhook for object %s", payload.get("object"))
        return []
    events: list[InboundEvent] = []
    for entry in payload["entry"]:
        for change in _list(entry, "changes"):
            if change.get("field", "messages") != "messages":
                log.info("ignoring webhook field %s", change.get("field"))
                continue
            value = change.get("value")
            if isinstance(value, dict):
                events.extend(_parse_value(value))
    return events


def _parse_value(value: dict[str, Any]) -> list[InboundEvent]:
    metadata = value.get("metadata") or {}
    number = str(metadata.get("phone_number_id") or "")
    contacts = _list(value, "contacts")
    events: list[InboundEvent] = []
    for message in _list(value, "messages"):
        if not message.get("id"):
            log.warning("skipping a message without an id")
            continue
        contact = _contact_for(message, contacts)
        raw = {"metadata": metadata, "contact": contact, "message": message}
        events.append(_parse_message(number, message, contact, raw))
    for status in _list(value, "statuses"):
        parsed = _parse_status(number, status)
        if parsed is not None:
            events.append(parsed)
    for error in _list(value, "errors"):
        log.warning("meta reported an error", extra={"error_code": error.get("code")})
    return events


def _parse_message(
    number: str, message: dict[str, Any], contact: dict[str, Any], raw: dict[str, Any]
) -> InboundMessage:
    mtype = str(message.get("type") or "unknown")
    profile = contact.get("profile") or {}
    fields: dict[str, Any] = {
        "provider": "meta",
        "channel_number": number,
        "message_id": str(message["id"]),
        "timestamp": _int(message.get("timestamp")),
        "user_phone": e164(message.get("from") or contact.get("wa_id")),
        "user_bsuid": message.get("from_user_id") or contact.get("user_id"),
        "profile_name": profile.get("name") or profile.get("username"),
        "context_message_id": (message.get("context") or {}).get("id"),
        "raw": raw,
    }
    kind = MessageKind.UNKNOWN
    if mtype == "text":
        kind = MessageKind.TEXT
        fields["text"] = (message.get("text") or {}).get("body", "")
    elif mtype == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply")
        if reply:
            kind = MessageKind.BUTTON_REPLY if "button_reply" in interactive else MessageKind.LIST_REPLY
            fields.update(reply_id=reply.get("id"), reply_title=reply.get("title"), text=reply.get("title"))
        else:
            kind = MessageKind.UNSUPPORTED  # interactive without content happens (pywa fixtures)
    elif mtype == "button":
        button = message.get("button") or {}
        kind = MessageKind.TEMPLATE_BUTTON
        fields.update(reply_id=button.get("payload"), reply_title=button.get("text"), text=button.get("text"))
    elif mtype == "location":
        loc = message.get("location") or {}
        kind = MessageKind.LOCATION
        fields.update(
            latitude=_float(loc.get("latitude")),
            longitude=_float(loc.get("longitude")),
            location_name=loc.get("name"),
            location_address=loc.get("address"),
        )
    elif mtype in MEDIA_TYPES:
        media = message.get(mtype) or {}
        kind = MessageKind.MEDIA
        fields.update(
            media_type=mtype, media_ref=media.get("id"), media_mime=media.get("mime_type"), text=media.get("caption")
        )
    elif mtype == "reaction":
        reaction = message.get("reaction") or {}
        kind = MessageKind.REACTION
        fields.update(reaction_to=reaction.get("message_id"), reaction_emoji=reaction.get("emoji") or None)
    elif mtype in ("unsupported", "unknown"):
        kind = MessageKind.UNSUPPORTED
    elif mtype == "system":
        kind = MessageKind.SYSTEM
        fields["text"] = (message.get("system") or {}).get("body")
    else:
        log.warning("unknown meta message type %s", mtype)
    errors = message.get("errors") or []
    if errors and isinstance(errors[0], dict):
        fields["error_code"] = _int(errors[0].get("code")) or None
    return InboundMessage(kind=kind, **fields)


def _parse_status(number: str, status: dict[str, Any]) -> StatusUpdate | None:
    value = _STATUSES.get(str(status.get("status")))
    if value is None or not status.get("id"):
        log.warning("ignoring status %s", status.get("status"))
        return None
    errors = status.get("errors") or []
    error = errors[0] if errors and isinstance(errors[0], dict) else {}
    return StatusUpdate(
        provider="meta",
        channel_number=number,
        message_id=str(status["id"]),
        status=value,
        timestamp=_int(status.get("timestamp")),
        recipient_phone=e164(status.get("recipient_id")),
        recipient_bsuid=status.get("recipient_user_id"),
        error_code=str(error["code"]) if "code" in error else None,
        error_title=error.get("title") or error.get("message"),
        reference=reference if isinstance(reference := status.get("biz_opaque_callback_data"), str) else None,
        raw={"metadata": {"phone_number_id": number}, "status": status},
    )


def _contact_for(message: dict[str, Any], contacts: list[dict[str, Any]]) -> dict[str, Any]:
    for contact in contacts:
        if message.get("from") and contact.get("wa_id") == message.get("from"):
            return contact
        if message.get("from_user_id") and contact.get("user_id") == message.get("from_user_id"):
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def _list(obj: Any, key: str) -> list[dict[str, Any]]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
