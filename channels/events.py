"""The provider-neutral inbound events every other part of Encargo sees.

Meta's and Twilio's webhooks are parsed into these frozen dataclasses
(`channels.meta_webhook`, `channels.twilio_webhook`) before anything else
looks at them. The raw provider item is kept in `raw`, out of repr and
comparison. Unknown message types become `MessageKind.UNKNOWN` with a warning,
never an exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any


class MessageKind(enum.StrEnum):
    TEXT = "text"
    BUTTON_REPLY = "button_reply"  # interactive reply button tapped
    LIST_REPLY = "list_reply"  # interactive list row picked
    TEMPLATE_BUTTON = "template_button"  # quick-reply button inside a template
    LOCATION = "location"
    MEDIA = "media"  # image, audio, document, video, sticker
    REACTION = "reaction"
    UNSUPPORTED = "unsupported"  # WhatsApp itself could not pass the content on
    SYSTEM = "system"  # e.g. the customer changed number
    UNKNOWN = "unknown"  # a type this version does not know yet
    TRANSCRIPT = "transcript"  # the text of a customer's voice note, re-entering the inbox after transcription
    PHOTO_TEXT = "photo_text"  # a code read (OCR) from a customer's photo, re-entering the inbox


class DeliveryStatus(enum.StrEnum):
    """Outbound message status, ordered: a status only ever moves to a higher rank."""

    PENDING = "pending"
    SENDING = "sending"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.ACCEPTED: 2,
    DeliveryStatus.SENT: 3,
    DeliveryStatus.DELIVERED: 4,
    DeliveryStatus.READ: 5,
    DeliveryStatus.FAILED: 6,  # terminal
}


@dataclass(frozen=True)
class InboundMessage:
    """One message a customer sent us."""

    provider: str  # meta | twilio | local
    channel_number: str  # the number that received it: Meta phone_number_id or Twilio `To`
    message_id: str  # wamid / MessageSid: the de-duplication key
    kind: MessageKind
    timestamp: int  # Unix seconds as the provider reported it
    user_phone: str | None = None  # E.164 with "+", absent for username-only customers
    user_bsuid: str | None = None  # Meta business-scoped user id
    profile_name: str | None = None
    text: str | None = None  # text body, caption, or the title of the tapped button/row
    reply_id: str | None = None  # id of the tapped button / list row / template payload
    reply_title: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    location_name: str | None = None
    location_address: str | None = None
    media_type: str | None = None  # image | audio | document | video | sticker
    media_ref: str | None = None  # Meta media id or Twilio MediaUrl
    media_mime: str | None = None
    media_voice: bool | None = None  # audio recorded as a voice note (Meta audio.voice)
    media_filename: str | None = None  # a document's file name as the customer sent it
    media_sha256: str | None = None  # the provider's hash of the file (Meta)
    # Twilio: the files after the first (MediaUrl1.., MediaContentType1..) as (url, mime) pairs, position 1..
    media_more: tuple[tuple[str, str | None], ...] | None = None
    reaction_to: str | None = None
    reaction_emoji: str | None = None
    context_message_id: str | None = None  # the message of ours this one replies to
    error_code: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def event_id(self) -> str:
        return self.message_id

    @property
    def conversation_key(self) -> str:
        """Who this customer is: the phone when WhatsApp gives it, else the business-scoped id."""
        key = self.user_phone or self.user_bsuid
        if not key:
            raise ValueError("inbound message has neither a phone nor a user id")
        return key

    def to_dict(self) -> dict[str, Any]:
        return {**_shallow(self), "kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboundMessage:
        values = dict(data)
        values["kind"] = MessageKind(values["kind"])
        if values.get("media_more"):  # JSON gives lists back
            values["media_more"] = tuple((str(url), mime) for url, mime in values["media_more"])
        return cls(**values)


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery receipt for a message we sent."""

    provider: str
    channel_number: str
    message_id: str  # the provider id of OUR outbound message
    status: DeliveryStatus
    timestamp: int
    recipient_phone: str | None = None
    recipient_bsuid: str | None = None
    error_code: str | None = None
    error_title: str | None = None
    # Our idempotency key echoed back (Meta's biz_opaque_callback_data, Twilio's status callback URL): it finds
    # the reply when its provider id was never stored (the worker died mid-send).
    reference: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def event_id(self) -> str:
        return f"{self.message_id}:{self.status.value}"

    def to_dict(self) -> dict[str, Any]:
        return {**_shallow(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusUpdate:
        values = dict(data)
        values["status"] = DeliveryStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True)
class AccountNotice:
    """What the provider says about the business account itself, not about a message (issue 17).

    Meta posts these under other webhook `field`s than "messages": a template's status (approved, paused,
    disabled...) or quality, a phone number's quality or messaging limit, the portfolio's messaging limit, an
    account restriction. `topic` is ours, provider-neutral: template_status | template_quality |
    number_quality | capability | account. `event` is the provider's word as sent (PAUSED, FLAGGED,
    THROUGHPUT_UPGRADE...); `tier` the messaging limit as sent (TIER_2K, TIER_UNLIMITED, 2000...); `quality`
    a rating (GREEN, YELLOW, RED).
    The company is found later, by `account_id` (Meta's WhatsApp Business Account id, entry.id).
    """

    provider: str
    topic: str
    account_id: str  # WABA id
    timestamp: int  # Unix seconds (Meta's entry.time); 0 when absent
    event: str = ""
    phone: str | None = None  # the business number's display digits, when the notice is about one number
    template_id: str | None = None
    template_name: str | None = None
    template_language: str | None = None  # as sent ("en-US"); notifications compare it with "en_US"
    tier: str | None = None
    quality: str | None = None
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def event_id(self) -> str:
        """The de-duplication key: a re-delivered notice has the same one."""
        subject = self.template_id or self.template_name or self.phone or ""
        detail = self.tier or self.quality or ""
        return f"notice:{self.topic}:{self.account_id}:{subject}:{self.event}:{detail}:{self.timestamp}"

    def to_dict(self) -> dict[str, Any]:
        return _shallow(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountNotice:
        return cls(**data)


InboundEvent = InboundMessage | StatusUpdate | AccountNotice


def _shallow(event: InboundMessage | StatusUpdate | AccountNotice) -> dict[str, Any]:
    """Field values as a dict without deep-copying `raw` (dataclasses.asdict would copy it on every webhook)."""
    return {f.name: getattr(event, f.name) for f in fields(event)}


def event_from_dict(kind: str, data: dict[str, Any]) -> InboundEvent:
    if kind == "notice":
        return AccountNotice.from_dict(data)
    return InboundMessage.from_dict(data) if kind == "message" else StatusUpdate.from_dict(data)


def event_kind(event: InboundEvent) -> str:
    """message | status | notice: the `webhook_events.kind` of an event and the inbox it waits in."""
    if isinstance(event, AccountNotice):
        return "notice"
    return "message" if isinstance(event, InboundMessage) else "status"


class MalformedPayload(ValueError):
    """The body is not a webhook of the expected shape; the message says why (sent back with a 400)."""


class FieldTypeError(MalformedPayload):
    """A field of a well-formed body holds the wrong JSON type (a number where text is expected, null, a list).

    Raised by the parsers' typed accessors; the parser decides what it costs: a message whose content is of the
    wrong type becomes UNSUPPORTED (answered as such), one whose id or sender is unreadable is rejected.
    """

    def __init__(self, path: str, expected: str, got: object) -> None:
        super().__init__(f"{path}: expected {expected}, got {_json_type(got)}")
        self.path = path


@dataclass(frozen=True)
class RejectedItem:
    """A message or status of a delivery that cannot become an event: quarantined with `reason`, never lost.

    `raw` is the item as received (kept sealed with the reason), `item_id` the provider's id when readable.
    """

    provider: str
    kind: str  # message | status
    reason: str
    item_id: str | None = None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Delivery:
    """What one webhook request carried: the events to store and queue, and the parts to quarantine."""

    events: list[InboundEvent]
    rejected: list[RejectedItem] = field(default_factory=list)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


_ASCII_DIGITS = frozenset("0123456789")


def e164(number: str | None) -> str | None:
    """'50370000001', '+503 7000-0001', 'whatsapp:+50370000001' -> '+50370000001'."""
    if not number:
        return None
    digits = "".join(ch for ch in number.removeprefix("whatsapp:") if ch in _ASCII_DIGITS)  # not "²" or "١"
    return f"+{digits}" if digits else None
