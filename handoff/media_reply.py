"""An agent sends the customer an image (JPEG/PNG, up to 5 MB) or a PDF (up to 100 MB), with an optional caption.

Meta's limits and the 24-hour rule, as for a typed reply: only the agent who has the chat sends, only inside
the customer's service window (`WindowClosed` otherwise: the console offers the approved templates). The
file's type is read from its content (`channels.media_types.sniff`), not from its name or what the browser
said. The file goes to the media store under the tenant's own prefix, the message is stored `pending` with
its `media` row (direction 'out', `stored`) in one transaction, and the delivery job sends it
(runtime.outbound_media uploads it to Meta or gives Twilio a signed link right before the send).

Failure policy: `HandoffError`s are the agent's answer (4xx); a store or database error raises. A file put
in the store whose transaction then fails is deleted again (best effort, logged).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

from channels.media_types import MB, SIZE_LIMITS, sniff
from channels.outbound import Media
from handoff import live
from handoff.agents import Agent
from handoff.cases import (  # the checks and records of a typed reply (handoff.cases.reply), the same here
    Desk,
    HandoffError,
    WindowClosed,
    _holding,
    _record,
    _window_open,
    enqueue_send,
    error_text,
    store_message,
)
from runtime import media_links
from storage import contacts, media
from storage.media_files import MediaStore, new_key

log = logging.getLogger(__name__)

CAPTION_MAX = 1024  # Meta's limit for a media caption
# What an agent may send, by the format the content has: (WhatsApp's type, file extension).
SENDABLE = {"image/jpeg": ("image", ".jpg"), "image/png": ("image", ".png"), "application/pdf": ("document", ".pdf")}


@dataclass(frozen=True)
class CheckedFile:
    media_type: str  # image | document
    mime: str
    extension: str


def check_file(data: bytes) -> CheckedFile:
    """What the file is, from its first bytes; HandoffError (in the agent's words) when it cannot be sent."""
    if not data:
        raise HandoffError(error_text("file_empty"))
    mime = sniff(data) or ""
    if mime not in SENDABLE:
        raise HandoffError(error_text("file_type"))
    media_type, extension = SENDABLE[mime]
    limit = SIZE_LIMITS[media_type]
    if len(data) > limit:
        what = "una imagen" if media_type == "image" else "un PDF"
        raise HandoffError(error_text("file_too_large", what=what, max=limit // MB))
    return CheckedFile(media_type, mime, extension)


def send_file(desk: Desk, store: MediaStore, agent: Agent, case_id: int, data: bytes, *, filename: str | None,
              caption: str = "", client_key: str | None = None) -> int:
    """Send the agent's file to the customer; returns the message id (the same one for a repeated client_key)."""
    checked = check_file(data)
    caption = caption.strip()
    if len(caption) > CAPTION_MAX:
        raise HandoffError(error_text("caption_too_long", max=CAPTION_MAX))
    name = media_links.safe_name(filename, "documento" if checked.media_type == "document" else "imagen")
    if not name.lower().endswith(checked.extension) and not (checked.extension == ".jpg"
                                                               and name.lower().endswith(".jpeg")):
        name += checked.extension
    key = f"console:{case_id}:file:{client_key or uuid.uuid4().hex}"[:200]
    with desk.pool.connection() as conn:  # the cheap refusals first: nothing is stored for them
        case = _holding(conn, agent, case_id)
        if not _window_open(conn, case):
            raise WindowClosed(contacts.service_window_closes_at(conn, case.contact_id))
        row = conn.execute("SELECT id FROM messages WHERE idempotency_key = %s", (key,)).fetchone()
        if row is not None:  # a repeated click: the file went already
            return int(row["id"])  # type: ignore[call-overload]
    storage_key = new_key(checked.media_type)
    store.put(case.tenant_id, storage_key, data, checked.mime)
    try:
        with desk.pool.connection() as conn, conn.transaction():
            case = _holding(conn, agent, case_id)
            if not _window_open(conn, case):
                raise WindowClosed(contacts.service_window_closes_at(conn, case.contact_id))
            message = Media(checked.media_type, checked.mime, filename=name, caption=caption or None)
            message_id = store_message(conn, desk, case, agent, message, key)
            if message_id is None:  # the same click, twice at once: the other one stored it
                found = conn.execute("SELECT id FROM messages WHERE idempotency_key = %s", (key,)).fetchone()
                assert found is not None
                _forget(store, case.tenant_id, storage_key)
                return int(found["id"])  # type: ignore[call-overload]
            media.record_outbound(conn, tenant_id=case.tenant_id, conversation_id=case.conversation_id,
                                  message_id=message_id, media_type=checked.media_type, mime=checked.mime,
                                  size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), filename=name,
                                  storage_key=storage_key)
            _record(conn, case, agent, "file", message_id=message_id, media_type=checked.media_type)
    except BaseException:
        _forget(store, case.tenant_id, storage_key)
        raise
    enqueue_send(desk, message_id, f"console-{case.id}")
    live.publish(desk.redis, case.tenant_id, "message", case_id=case.id, conversation_id=case.conversation_id,
                 message_id=message_id)
    log.info("agent file queued: case=%s message=%s type=%s bytes=%s", case.id, message_id, checked.media_type,
             len(data))
    return message_id


def _forget(store: MediaStore, tenant_id: int, storage_key: str) -> None:
    """Delete a file no message refers to; errors are logged, never raised."""
    try:
        store.delete(tenant_id, storage_key)
    except Exception as exc:  # noqa: BLE001 - cleanup only; the caller's own error matters
        log.warning("unreferenced agent file not deleted: error=%s", type(exc).__name__)
