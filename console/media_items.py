"""The files of a conversation as the case page shows them: with their messages, in the agent's words.

Each message of the transcript gets `media`: its files, each with a signed, expiring link of ours
(runtime.media_links, `view`) when the file is in the store, or a status in words ("Descargando…", "No se
pudo descargar (…)", "WhatsApp ya no tiene este archivo"). A voice note carries its transcript and the
confidence; the transcript's own re-entry message (kind `transcript`, H2's worker.reentry) and a photo's
read code (`photo_text`) are folded into the file they come from instead of showing as separate bubbles.
Several photos or videos of the customer within ALBUM_WINDOW_S of each other (the bot's or an agent's
messages in between do not break it) are one album: the first message carries them all (`album: true`),
the others leave the list.

The provider's reference (Meta's media id, Twilio's MediaUrl) is never put into what a page gets.
Read-only; the caller has checked that the conversation belongs to the agent's tenant.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from psycopg import Connection

from runtime import media_links
from storage import media
from storage.media import Media

TEXTS_PATH = Path(__file__).resolve().parent / "media_texts.yaml"
FOLDED_KINDS = ("transcript", "photo_text")  # re-entry events of a file: shown with the file
ALBUM_TYPES = ("image", "video")
_KIND_PLACEHOLDER = "["  # the transcript's "[imagen]"-style body of a message without text
_SENT_LABELS = ("📷", "📎")  # what an agent's file's stored body starts with (channels.outbound.preview_text)


@cache
def texts() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TEXTS_PATH.read_text(encoding="utf-8"))
    return data


def _reason(code: str | None) -> str:
    reasons = texts()["reasons"]
    key = (code or "").split(":", 1)[0]
    if key.startswith("provider_5") or key.startswith("http_5"):
        key = "provider_5xx"
    elif key.startswith("provider_4") or key.startswith("http_4"):
        key = "provider_4xx"
    return str(reasons.get(key) or reasons["other"])


def _size(size: int | None) -> str:
    if not size:
        return ""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")


def status_text(row: Media, tz: ZoneInfo) -> str | None:
    """What the agent reads instead of the file; None when it is stored (the file itself is shown)."""
    words = texts()["status"]

    def at(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%H:%M") if moment else "—"

    if row.status == media.STORED:
        return None
    if row.status == media.PENDING:
        if row.attempts and row.last_error:
            return str(words["pending_retry"]).format(reason=_reason(row.last_error), time=at(row.next_attempt_at))
        return str(words["pending"])
    if row.status == media.FAILED:
        return str(words["failed"]).format(reason=_reason(row.last_error), attempts=row.attempts,
                                           time=at(row.next_attempt_at or row.stored_at or row.created_at))
    if row.status == media.GONE:
        return str(words["gone_simulated"] if row.last_error == "no_provider" else words["gone"])
    return str(words["rejected"]).format(reason=_reason(row.last_error))


def item(row: Media, key: bytes, now: float, tz: ZoneInfo, *, fallback_transcript: str | None = None) -> dict[str, Any]:
    """One file as the page shows it (no provider reference, no storage key)."""
    words = texts()
    kind = "voice" if row.voice else row.media_type
    shown: dict[str, Any] = {
        "id": row.id, "type": row.media_type, "voice": row.voice, "status": row.status,
        "label": str(words["types"].get(kind) or words["types"]["document"]),
        "status_text": status_text(row, tz), "mime": row.mime or row.declared_mime or "",
        "filename": row.filename or "", "size_text": _size(row.size_bytes),
        "url": media_links.view_url(key, row.id, row.tenant_id, now)
        if row.status == media.STORED and row.storage_key else None,
    }
    if row.media_type == "audio":
        transcript = row.transcript or fallback_transcript
        if transcript:
            confidence = row.transcript_confidence
            shown["transcript"] = transcript
            shown["transcript_label"] = (str(words["transcript"]).format(confidence=round(confidence * 100))
                                         if confidence is not None else str(words["transcript_no_confidence"]))
        elif row.transcript_status == "pending":
            shown["transcript_label"] = str(words["transcript_pending"])
        elif row.transcript_status == "failed":
            shown["transcript_label"] = str(words["transcript_failed"])
    if row.ocr_code:
        shown["ocr_text"] = str(words["ocr_code"]).format(code=row.ocr_code)
    return shown


def _reentries(conn: Connection[Any], conversation_id: int) -> dict[int, tuple[str, str]]:
    """Messages that re-enter a file's content (transcripts, read codes): id -> (original wamid, text)."""
    rows = conn.execute(
        "SELECT id, provider_message_id, payload->>'context_message_id' AS context, body FROM messages"
        " WHERE conversation_id = %s AND direction = 'in' AND kind = ANY(%s)",
        (conversation_id, list(FOLDED_KINDS)),
    ).fetchall()
    found = {}
    for r in rows:
        original = r["context"] or str(r["provider_message_id"] or "").rsplit(":", 1)[0]
        found[int(r["id"])] = (str(original), str(r["body"] or ""))
    return found


def attach(conn: Connection[Any], *, key: bytes, tenant_id: int, conversation_id: int,
           messages: list[dict[str, Any]], now: datetime, album_window_s: int, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The transcript's messages with their files (see the module docstring); returns the list to show."""
    rows = media.for_conversation(conn, tenant_id, conversation_id)
    reentries = _reentries(conn, conversation_id)
    by_wamid = {r.provider_message_id: r.message_id for r in rows if r.provider_message_id}
    folded = {mid: by_wamid[w] for mid, (w, _) in reentries.items() if w in by_wamid}
    spoken = {by_wamid[w]: text for mid, (w, text) in reentries.items() if w in by_wamid}
    files: dict[int, list[Media]] = {}
    for row in rows:
        files.setdefault(row.message_id, []).append(row)
    stamp = now.timestamp()
    shown: list[dict[str, Any]] = []
    album_head: dict[str, Any] | None = None
    last_at: datetime | None = None
    for message in messages:
        if message["id"] in folded:
            continue  # shown as its file's transcript / read code
        own = files.get(message["id"])
        if not own:
            shown.append(message)
            if message["direction"] == "in":  # the customer wrote in between: the album is over
                album_head = None
            continue
        message["media"] = [item(r, key, stamp, tz, fallback_transcript=spoken.get(r.message_id)) for r in own]
        body = str(message.get("body") or "")
        if body.startswith(_KIND_PLACEHOLDER) and body.endswith("]"):
            message["body"] = ""  # no caption: the file speaks for itself
        elif message["direction"] == "out" and body[:1] in _SENT_LABELS:
            # an agent's file: "📷 caption" / "📎 name caption" (channels.outbound.preview_text); the file is shown
            words = 2 if body.startswith("📎") else 1
            parts = body.split(" ", words)
            message["body"] = parts[words] if len(parts) > words else ""
        created = datetime.fromisoformat(message["created_at"])
        groupable = message["direction"] == "in" and all(r.media_type in ALBUM_TYPES for r in own)
        if (groupable and album_head is not None and last_at is not None
                and (created - last_at).total_seconds() <= album_window_s):
            album_head["media"].extend(message["media"])
            album_head["album"] = True
            album_head["album_text"] = str(texts()["album"]).format(count=len(album_head["media"]))
            if message["body"]:
                album_head["body"] = "\n".join(b for b in (album_head["body"], message["body"]) if b)
            last_at = created
            continue
        shown.append(message)
        album_head, last_at = (message, created) if groupable else (None, None)
    return shown


def one(conn: Connection[Any], *, key: bytes, tenant_id: int, media_id: int, now: datetime,
        tz: ZoneInfo) -> dict[str, Any] | None:
    """One file as the page shows it (the live refresh of a file whose download finished); None: not ours."""
    row = media.get(conn, media_id, tenant_id)
    return None if row is None else item(row, key, now.timestamp(), tz)
