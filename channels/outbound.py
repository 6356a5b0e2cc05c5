"""What the bot can send, independent of the provider, and the transport interface.

The conversation layer builds these frozen dataclasses; a `Transport` (Meta
Cloud API, Twilio, or `local` for the simulator) turns them into its wire
format. They serialise to plain dicts (`to_dict`/`message_from_dict`) so an
outbound message can be stored in PostgreSQL and sent later by a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Protocol, cast, runtime_checkable

from channels.events import DeliveryStatus


@dataclass(frozen=True)
class Choice:
    """A reply button or a list row: `id` comes back in the customer's reply."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class Text:
    body: str
    kind: str = field(default="text", init=False)


@dataclass(frozen=True)
class Buttons:
    """Up to 3 reply buttons (more are sent as a list by the transport)."""

    body: str
    buttons: tuple[Choice, ...]
    header: str | None = None
    footer: str | None = None
    kind: str = field(default="buttons", init=False)


@dataclass(frozen=True)
class ChoiceList:
    """An interactive list: a button that opens up to 10 rows."""

    body: str
    button_label: str
    rows: tuple[Choice, ...]
    header: str | None = None
    footer: str | None = None
    section_title: str | None = None
    kind: str = field(default="list", init=False)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    kind: str = field(default="location", init=False)


@dataclass(frozen=True)
class Template:
    """An approved template (needed outside the 24-hour window).

    `body_params` fill {{1}}, {{2}}... in order; `button_payloads` are the
    quick-reply payloads by button index. `content_sid` is Twilio's ContentSid
    for the same template.
    """

    name: str
    language: str
    body_params: tuple[str, ...] = ()
    button_payloads: tuple[str, ...] = ()
    content_sid: str | None = None
    kind: str = field(default="template", init=False)


@dataclass(frozen=True)
class Media:
    """An image (JPEG/PNG) or a document (PDF) an agent sends, with an optional caption.

    The file itself is in our media store, on the `media` row of this message (direction 'out'). Before the
    transport is called the worker fills in what the provider needs: `provider_media_id`, the id Meta gave
    the uploaded file, or `link`, a public signed link to it that Twilio fetches (MediaUrl).
    """

    media_type: str  # image | document
    mime: str
    filename: str | None = None
    caption: str | None = None
    provider_media_id: str | None = None
    link: str | None = None
    kind: str = field(default="media", init=False)


OutboundMessage = Text | Buttons | ChoiceList | Location | Template | Media

_BY_KIND: dict[str, type[Any]] = {
    "text": Text,
    "buttons": Buttons,
    "list": ChoiceList,
    "location": Location,
    "template": Template,
    "media": Media,
}


def message_to_dict(message: OutboundMessage) -> dict[str, Any]:
    """The message as plain values (its buttons and rows as dicts), without dataclasses.asdict's deep copies."""
    return cast(dict[str, Any], _plain(message))


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def message_from_dict(data: dict[str, Any]) -> OutboundMessage:
    values = {k: v for k, v in data.items() if k != "kind"}
    cls = _BY_KIND[data["kind"]]
    if "buttons" in values:
        values["buttons"] = tuple(Choice(**c) for c in values["buttons"])
    if "rows" in values:
        values["rows"] = tuple(Choice(**c) for c in values["rows"])
    for key in ("body_params", "button_payloads"):
        if key in values:
            values[key] = tuple(values[key])
    message: OutboundMessage = cls(**values)
    return message


def preview_text(message: OutboundMessage) -> str:
    """What the customer reads, as plain text: stored in messages.body and shown in the simulator."""
    if isinstance(message, Text):
        return message.body
    if isinstance(message, Buttons):
        return "\n".join([message.body, *(f"[{b.title}]" for b in message.buttons)])
    if isinstance(message, ChoiceList):
        return "\n".join([message.body, *(f"- {r.title}" for r in message.rows)])
    if isinstance(message, Location):
        return " - ".join(p for p in (message.name, message.address) if p) or "📍"
    if isinstance(message, Media):
        label = "📷" if message.media_type == "image" else f"📎 {message.filename or 'documento'}"
        return f"{label} {message.caption}" if message.caption else label
    return f"[template {message.name}: {', '.join(message.body_params)}]"


@dataclass(frozen=True)
class Recipient:
    """Who receives a message: the phone (E.164 with '+') or, for username-only customers, the BSUID."""

    phone: str | None = None
    bsuid: str | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    status: DeliveryStatus = DeliveryStatus.ACCEPTED


class Transport(Protocol):
    """Sends one message. Raises `channels.errors.SendError` subclasses on failure."""

    channel: str  # "meta" | "twilio" | "local"

    def send(self, to: Recipient, message: OutboundMessage, *, reference: str) -> list[SendResult]:
        """Send `message`; `reference` is our idempotency key, passed to the provider where it
        accepts one (Meta biz_opaque_callback_data). One message may go out as several provider
        messages when it must be split to fit the provider's limits; one result per part."""
        ...

    def mark_read(self, message_id: str) -> None:
        """Mark an inbound message read (and show typing where supported). Errors are logged, never raised."""
        ...


@runtime_checkable
class MediaUploader(Protocol):
    """A transport that takes files by upload before the message naming them (Meta's Cloud API)."""

    def upload_media(self, data: bytes, mime: str, filename: str | None) -> str:
        """Upload the file; returns the provider's id of it. Raises `channels.errors.SendError`."""
        ...
