"""Meta WhatsApp Cloud API webhooks: signature check and parsing into inbound events.

The signature is an HMAC-SHA256 of the raw request bytes with the app secret
(`X-Hub-Signature-256: sha256=<hex>`), compared in constant time before the
body is parsed. One POST may carry several entries, changes, messages and
statuses; each becomes its own event. Fields we do not know are ignored. Changes of other `field`s than
"messages" that tell about the account (a template paused, a number's quality or limit) become
`AccountNotice` events (channels.meta_notices); any other field is acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from channels import json_input, meta_notices
from channels.events import (
    Delivery,
    DeliveryStatus,
    FieldTypeError,
    InboundMessage,
    MalformedPayload,
    MessageKind,
    RejectedItem,
    StatusUpdate,
    e164,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")
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


def parse_body(raw_body: bytes) -> Delivery:
    """Parse a POST body into events and rejected parts. Raises MalformedPayload for a body that is not a webhook.

    Each message and status is read on its own, with typed accessors: one whose id or sender is unreadable
    (a list where text is expected, ...) is rejected for quarantine, one whose content is unreadable becomes
    an UNSUPPORTED message (answered as such); neither costs the other items of the delivery.
    """
    try:
        payload = json_input.load(raw_body)
    except json_input.BadJson as exc:
        raise MalformedPayload(str(exc)) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise MalformedPayload("body is not a WhatsApp webhook: expected an object with an 'entry' list")
    if payload.get("object") not in (None, "whatsapp_business_account"):
        log.info("ignoring webhook for object %s", str(payload.get("object"))[:40])
        return Delivery([])
    delivery = Delivery([])
    for entry in payload["entry"]:
        for change in _list(entry, "changes"):
            if change.get("field", "messages") != "messages":
                # Account notices (issue 17: templates paused, number quality, limits); any other field is ignored.
                notice = meta_notices.parse_notice(str(change.get("field")), entry, change.get("value"))
                if notice is None:
                    log.info("ignoring webhook field %s", str(change.get("field"))[:40])
                else:
                    delivery.events.append(notice)
                continue
            value = change.get("value")
            if isinstance(value, dict):
                _parse_value(value, delivery)
    return delivery


def _parse_value(value: dict[str, Any], delivery: Delivery) -> None:
    metadata = value.get("metadata")
    try:
        number = _ident(_obj(value, "metadata"), "phone_number_id", "metadata.phone_number_id") or ""
        unroutable = None
    except FieldTypeError as exc:
        number, unroutable = "", str(exc)
    contacts = _list(value, "contacts")
    for message in _items(value, "messages", delivery, metadata):
        try:
            if unroutable:
                raise MalformedPayload(unroutable)
            contact = _contact_for(message, contacts)
            raw = {"metadata": metadata, "contact": contact, "message": message}
            delivery.events.append(_parse_message(number, message, contact, raw))
        except MalformedPayload as exc:
            delivery.rejected.append(_rejected("message", str(exc), message, metadata))
    for status in _items(value, "statuses", delivery, metadata):
        try:
            if unroutable:
                raise MalformedPayload(unroutable)
            parsed = _parse_status(number, status)
        except MalformedPayload as exc:
            delivery.rejected.append(_rejected("status", str(exc), status, metadata))
            continue
        if parsed is not None:
            delivery.events.append(parsed)
    for error in _list(value, "errors"):
        log.warning("meta reported an error", extra={"error_code": _small_int(error.get("code"))})


def _parse_message(
    number: str, message: dict[str, Any], contact: dict[str, Any], raw: dict[str, Any]
) -> InboundMessage:
    """One message. Raises MalformedPayload when its id or sender cannot be read (the message is rejected)."""
    message_id = _ident(message, "id", "id")
    if not message_id:
        raise MalformedPayload("id: missing")
    phone = e164(_ident(message, "from", "from") or _lenient(_ident, contact, "wa_id", "contacts[].wa_id"))
    bsuid = _text(message, "from_user_id", "from_user_id") or _lenient(_text, contact, "user_id", "contacts[].user_id")
    if not phone and not bsuid:
        raise MalformedPayload("from: no sender (neither a phone number nor a user id)")
    profile = _lenient(_obj, contact, "profile", "contacts[].profile") or {}
    errors = _list(message, "errors")
    fields: dict[str, Any] = {
        "provider": "meta",
        "channel_number": number,
        "message_id": message_id,
        "timestamp": _timestamp(message.get("timestamp")),
        "user_phone": phone,
        "user_bsuid": bsuid,
        "profile_name": _lenient(_text, profile, "name", "profile.name")
        or _lenient(_text, profile, "username", "profile.username"),
        "context_message_id": _lenient(_text, _lenient(_obj, message, "context", "context") or {}, "id", "context.id"),
        "error_code": _small_int(errors[0].get("code")) if errors else None,
        "raw": raw,
    }
    try:
        kind, content = _content(message)
    except FieldTypeError as exc:
        log.warning("meta message content of the wrong type: kept as unsupported", extra={"field": exc.path})
        kind, content = MessageKind.UNSUPPORTED, {}
    return InboundMessage(kind=kind, **fields, **content)


def _content(message: dict[str, Any]) -> tuple[MessageKind, dict[str, Any]]:
    """The kind and content fields of a message. Raises FieldTypeError when a part has the wrong JSON type."""
    mtype = _text(message, "type", "type") or "unknown"
    if mtype == "text":
        body = _text(_obj(message, "text"), "body", "text.body")
        if body is None:
            raise FieldTypeError("text.body", "text", None)
        return MessageKind.TEXT, {"text": body}
    if mtype == "interactive":
        interactive = _obj(message, "interactive")
        kind = MessageKind.BUTTON_REPLY if "button_reply" in interactive else MessageKind.LIST_REPLY
        reply = _obj(interactive, "button_reply" if kind is MessageKind.BUTTON_REPLY else "list_reply")
        if not reply:
            return MessageKind.UNSUPPORTED, {}  # interactive without content happens (pywa fixtures)
        title = _text(reply, "title", "interactive.reply.title")
        return kind, {"reply_id": _text(reply, "id", "interactive.reply.id"), "reply_title": title, "text": title}
    if mtype == "button":
        button = _obj(message, "button")
        title = _text(button, "text", "button.text")
        return MessageKind.TEMPLATE_BUTTON, {"reply_id": _text(button, "payload", "button.payload"),
                                             "reply_title": title, "text": title}
    if mtype == "location":
        loc = _obj(message, "location")
        return MessageKind.LOCATION, {
            "latitude": _coordinate(loc, "latitude"), "longitude": _coordinate(loc, "longitude"),
            "location_name": _text(loc, "name", "location.name"),
            "location_address": _text(loc, "address", "location.address"),
        }
    if mtype in MEDIA_TYPES:
        media = _obj(message, mtype)
        voice = media.get("voice")
        return MessageKind.MEDIA, {"media_type": mtype, "media_ref": _text(media, "id", f"{mtype}.id"),
                                   "media_mime": _text(media, "mime_type", f"{mtype}.mime_type"),
                                   "media_voice": voice if isinstance(voice, bool) else None,
                                   "media_filename": _lenient(_text, media, "filename", f"{mtype}.filename"),
                                   "media_sha256": _lenient(_text, media, "sha256", f"{mtype}.sha256"),
                                   "text": _text(media, "caption", f"{mtype}.caption")}
    if mtype == "reaction":
        reaction = _obj(message, "reaction")
        return MessageKind.REACTION, {"reaction_to": _text(reaction, "message_id", "reaction.message_id"),
                                      "reaction_emoji": _text(reaction, "emoji", "reaction.emoji") or None}
    if mtype in ("unsupported", "unknown"):
        return MessageKind.UNSUPPORTED, {}
    if mtype == "system":
        return MessageKind.SYSTEM, {"text": _text(_obj(message, "system"), "body", "system.body")}
    log.warning("unknown meta message type %s", mtype[:40])
    return MessageKind.UNKNOWN, {}


def _parse_status(number: str, status: dict[str, Any]) -> StatusUpdate | None:
    """One delivery receipt, or None for a status we do not track. Raises FieldTypeError on an unreadable id."""
    value = _STATUSES.get(str(status.get("status")))
    message_id = _ident(status, "id", "id")
    if value is None or not message_id:
        log.warning("ignoring status %s", str(status.get("status"))[:40])
        return None
    errors = _list(status, "errors")
    error = errors[0] if errors else {}
    code = error.get("code")
    return StatusUpdate(
        provider="meta",
        channel_number=number,
        message_id=message_id,
        status=value,
        timestamp=_timestamp(status.get("timestamp")),
        recipient_phone=e164(_ident(status, "recipient_id", "recipient_id")),
        recipient_bsuid=_text(status, "recipient_user_id", "recipient_user_id"),
        error_code=str(code) if isinstance(code, int | str) and not isinstance(code, bool) else None,
        error_title=_lenient(_text, error, "title", "errors[].title")
        or _lenient(_text, error, "message", "errors[].message"),
        reference=_lenient(_text, status, "biz_opaque_callback_data", "biz_opaque_callback_data"),
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


def _items(value: dict[str, Any], key: str, delivery: Delivery, metadata: Any) -> list[dict[str, Any]]:
    """The objects of the list at `key`; anything else found there is rejected (kept for quarantine)."""
    kind = "message" if key == "messages" else "status"
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        delivery.rejected.append(_rejected(kind, str(FieldTypeError(key, "a list", items)), items, metadata))
        return []
    objects = []
    for item in items:
        if isinstance(item, dict):
            objects.append(item)
        else:
            reason = str(FieldTypeError(f"{key}[]", "an object", item))
            delivery.rejected.append(_rejected(kind, reason, item, metadata))
    return objects


def _rejected(kind: str, reason: str, item: Any, metadata: Any) -> RejectedItem:
    item_id = item.get("id") if isinstance(item, dict) else None
    return RejectedItem(provider="meta", kind=kind, reason=reason,
                        item_id=item_id if isinstance(item_id, str) else None,
                        raw={"metadata": metadata, kind: item})


# Typed accessors: a missing key or null is None (or {}), a value of another JSON type raises FieldTypeError.


def _obj(obj: dict[str, Any], key: str, path: str | None = None) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldTypeError(path or key, "an object", value)
    return value


def _text(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise FieldTypeError(path, "text", value)


def _ident(obj: dict[str, Any], key: str, path: str) -> str | None:
    """An id or number: text, or an integer taken as its digits."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FieldTypeError(path, "text", value)


def _lenient(accessor: Callable[..., _T], obj: dict[str, Any], key: str, path: str) -> _T | None:
    """A field that is only a nicety (a profile name, the replied-to id): the wrong type reads as absent."""
    try:
        return accessor(obj, key, path)
    except FieldTypeError as exc:
        log.warning("meta field of the wrong type ignored", extra={"field": exc.path})
        return None


def _timestamp(value: Any) -> int:
    """Unix seconds from a number or a string of ASCII digits; 0 when absent or absurd."""
    return json_input.digits_int(value, max_digits=12) or 0


def _small_int(value: Any) -> int | None:
    """An error code: a non-negative integer, or ASCII digits; None otherwise."""
    return json_input.digits_int(value, max_digits=9)


def _coordinate(loc: dict[str, Any], key: str) -> float | None:
    """A latitude or longitude: a finite number (or numeric text); None when absent. Raises FieldTypeError."""
    value = loc.get(key)
    if value is None:
        return None
    number = json_input.finite_float(value)
    if number is None:
        raise FieldTypeError(f"location.{key}", "a finite number", value)
    return number
