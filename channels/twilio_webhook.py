"""Twilio WhatsApp webhooks: signature check and parsing of form posts into inbound events.

Twilio signs the full URL it called plus the sorted form parameters
(`X-Twilio-Signature`); the check is the twilio library's RequestValidator, as
Twilio asks. Inbound messages and status callbacks arrive as forms; a form
with a `MessageStatus` other than "received" is a status callback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from twilio.request_validator import RequestValidator

from channels import json_input
from channels.events import (
    Delivery,
    DeliveryStatus,
    InboundMessage,
    MalformedPayload,
    MessageKind,
    RejectedItem,
    StatusUpdate,
    e164,
)

log = logging.getLogger(__name__)

_STATUSES = {
    "accepted": DeliveryStatus.ACCEPTED,
    "queued": DeliveryStatus.ACCEPTED,
    "scheduled": DeliveryStatus.ACCEPTED,
    "sending": DeliveryStatus.ACCEPTED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def signature_is_valid(auth_token: str, url: str, form: Any, signature: str | None) -> bool:
    """Twilio's own validator; `form` may be a MultiDict (repeated keys) or a plain mapping."""
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, form, signature))


def sign(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))


def parse_form(form: Mapping[str, str], *, reference: str | None = None) -> Delivery:
    """One form is one event (or one rejected part). Raises MalformedPayload when it is not a Twilio webhook.

    Form values are always text; a message without a usable sender (no ASCII digits in `From` or `WaId`)
    cannot be answered and is rejected, to be quarantined with the reason.
    """
    sid = form.get("MessageSid") or form.get("SmsMessageSid")
    if not sid:
        raise MalformedPayload("form has no MessageSid: not a Twilio messaging webhook")
    status = (form.get("MessageStatus") or "").lower()
    raw = dict(form)
    if status and status != "received":
        value = _STATUSES.get(status)
        if value is None:
            log.info("ignoring twilio status %s", status[:40])
            return Delivery([])
        return Delivery([
            StatusUpdate(
                provider="twilio",
                channel_number=e164(form.get("From")) or "",
                message_id=sid,
                status=value,
                timestamp=0,
                recipient_phone=e164(form.get("To")),
                error_code=form.get("ErrorCode") or None,
                error_title=form.get("ChannelStatusMessage") or form.get("ErrorMessage") or None,
                reference=reference or None,  # `ref` of the status callback URL we gave with the message
                raw=raw,
            )
        ])
    message = _parse_message(sid, form, raw)
    if message.user_phone is None:
        return Delivery([], [RejectedItem(provider="twilio", kind="message", item_id=sid, raw=raw,
                                          reason="From: no sender (no phone number in From or WaId)")])
    return Delivery([message])


def _parse_message(sid: str, form: Mapping[str, str], raw: dict[str, Any]) -> InboundMessage:
    phone = e164(form.get("From")) or e164(form.get("WaId"))
    fields: dict[str, Any] = {
        "provider": "twilio",
        "channel_number": e164(form.get("To")) or "",
        "message_id": sid,
        "timestamp": 0,
        "user_phone": phone,
        "profile_name": form.get("ProfileName") or None,
        "context_message_id": form.get("OriginalRepliedMessageSid") or None,
        "raw": raw,
    }
    body = form.get("Body") or ""
    num_media = json_input.digits_int(form.get("NumMedia"), max_digits=9) or 0
    if form.get("ButtonPayload"):
        kind = MessageKind.BUTTON_REPLY
        title = form.get("ButtonText") or body
        fields.update(reply_id=form["ButtonPayload"], reply_title=title, text=title)
    elif form.get("ListId"):
        kind = MessageKind.LIST_REPLY
        title = form.get("ListTitle") or body
        fields.update(reply_id=form["ListId"], reply_title=title, text=title)
    elif form.get("Latitude") and form.get("Longitude"):
        kind = MessageKind.LOCATION
        fields.update(
            latitude=json_input.finite_float(form.get("Latitude")),
            longitude=json_input.finite_float(form.get("Longitude")),
            location_name=form.get("Label") or None,
            location_address=form.get("Address") or None,
        )
    elif num_media > 0:
        kind = MessageKind.MEDIA
        mime = form.get("MediaContentType0") or ""
        fields.update(
            media_type=_media_type(mime),
            media_ref=form.get("MediaUrl0"),
            media_mime=mime or None,
            media_more=tuple((url, form.get(f"MediaContentType{n}") or None) for n in range(1, min(num_media, 10))
                             if (url := form.get(f"MediaUrl{n}"))) or None,
            text=body or None,
        )
    else:
        kind = MessageKind.TEXT
        fields["text"] = body
    return InboundMessage(kind=kind, **fields)


def _media_type(mime: str) -> str:
    major = mime.split("/", 1)[0]
    if major in ("image", "audio", "video"):
        return "sticker" if mime == "image/webp" else major
    return "document"
