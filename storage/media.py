"""The `media` table: one row per file of a message (a customer's photo, voice note, document; an agent's file).

An inbound file is recorded `pending` in the message's own transaction (`record_inbound`), then downloaded by
`worker.media_job` which ends it `stored`, `failed` (out of attempts), `gone` (the provider no longer has it) or
`rejected` (too large for its type, or its content is not what its MIME type says). Every row stays visible to
the agent, whatever its outcome: a failed download is never dropped silently.

`provider_ref` (a Meta media id, a Twilio MediaUrl) is for the download job only: nothing here hands it to a
browser. Every read takes the tenant: one company never sees another's rows.

Failure policy: database errors raise (the caller's transaction or job is retried).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection

from channels.events import InboundMessage
from channels.media_types import media_type_for_mime

PENDING, STORED, FAILED, GONE, REJECTED = "pending", "stored", "failed", "gone", "rejected"
TRANSCRIPT_STATUSES = ("none", "pending", "done", "failed", "unavailable")


@dataclass(frozen=True)
class Media:
    id: int
    tenant_id: int
    conversation_id: int
    message_id: int
    direction: str  # in | out
    position: int
    media_type: str  # image | audio | video | document | sticker
    voice: bool
    provider: str  # meta | twilio | local
    provider_ref: str | None  # never sent to a browser
    declared_mime: str | None
    mime: str | None
    size_bytes: int | None
    sha256: str | None
    filename: str | None
    storage_key: str | None
    status: str  # pending | stored | failed | gone | rejected
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    stored_at: datetime | None
    created_at: datetime
    transcript: str | None
    transcript_confidence: float | None
    transcript_status: str
    ocr_code: str | None
    provider_message_id: str | None  # the message's wamid / MessageSid (messages.provider_message_id)
    caption: str | None  # the message's text (caption), None after retention
    channel_number: str | None  # the business number it came in on (its credentials download it)


_FIELDS = frozenset(Media.__dataclass_fields__)


def _media(row: dict[str, Any]) -> Media:
    return Media(**{k: v for k, v in row.items() if k in _FIELDS})


_SELECT = """
    SELECT md.*, m.provider_message_id, m.body AS caption, m.payload->>'channel_number' AS channel_number
    FROM media md JOIN messages m ON m.id = md.message_id
"""


def record_inbound(conn: Connection[Any], *, tenant_id: int, conversation_id: int, message_id: int,
                   event: InboundMessage) -> list[int]:
    """The files of a MEDIA message as `pending` rows, in the caller's transaction; returns the new rows' ids.

    Twilio's several files of one message (MediaUrl0..N) are one row each, `position` N. Recording the same
    message again (a retried job) adds nothing.
    """
    if not event.media_type:
        return []
    files: list[tuple[str, str | None, str | None]] = [(event.media_type, event.media_ref, event.media_mime)]
    for url, mime in event.media_more or ():
        files.append((media_type_for_mime(mime or ""), url, mime))
    ids = []
    for position, (media_type, ref, mime) in enumerate(files):
        row = conn.execute(
            """
            INSERT INTO media (tenant_id, conversation_id, message_id, direction, position, media_type, voice,
                               provider, provider_ref, declared_mime, sha256, filename, next_attempt_at)
            VALUES (%s, %s, %s, 'in', %s, %s, %s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (message_id, position) DO NOTHING
            RETURNING id
            """,
            (tenant_id, conversation_id, message_id, position, media_type,
             bool(event.media_voice) and media_type == "audio", event.provider, ref, mime,
             event.media_sha256 if position == 0 else None, event.media_filename if position == 0 else None),
        ).fetchone()
        if row is not None:
            ids.append(int(row["id"]))
    return ids


def record_outbound(conn: Connection[Any], *, tenant_id: int, conversation_id: int, message_id: int,
                    media_type: str, mime: str, size_bytes: int, sha256: str, filename: str | None,
                    storage_key: str, position: int = 0) -> int:
    """A file an agent sent, already in the media store (`stored` from the start); returns its id."""
    row = conn.execute(
        """
        INSERT INTO media (tenant_id, conversation_id, message_id, direction, position, media_type, provider,
                           declared_mime, mime, size_bytes, sha256, filename, storage_key, status, stored_at)
        VALUES (%s, %s, %s, 'out', %s, %s, 'local', %s, %s, %s, %s, %s, %s, 'stored', now())
        RETURNING id
        """,
        (tenant_id, conversation_id, message_id, position, media_type, mime, mime, size_bytes, sha256, filename,
         storage_key),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def get(conn: Connection[Any], media_id: int, tenant_id: int) -> Media | None:
    """The row, only when it belongs to `tenant_id`."""
    row = conn.execute(_SELECT + " WHERE md.id = %s AND md.tenant_id = %s", (media_id, tenant_id)).fetchone()
    return None if row is None else _media(row)


def for_conversation(conn: Connection[Any], tenant_id: int, conversation_id: int) -> list[Media]:
    """A conversation's files in message order (the console shows them with their messages)."""
    rows = conn.execute(
        _SELECT + " WHERE md.tenant_id = %s AND md.conversation_id = %s ORDER BY md.message_id, md.position",
        (tenant_id, conversation_id),
    ).fetchall()
    return [_media(row) for row in rows]


def for_message(conn: Connection[Any], tenant_id: int, message_id: int) -> list[Media]:
    rows = conn.execute(
        _SELECT + " WHERE md.tenant_id = %s AND md.message_id = %s ORDER BY md.position", (tenant_id, message_id),
    ).fetchall()
    return [_media(row) for row in rows]


def claim(conn: Connection[Any], media_id: int, lease_s: int) -> Media | None:
    """Start a download attempt: a `pending` row whose time has come gets attempts + 1 and is leased for
    `lease_s` seconds (a second job for the same row finds nothing to do). None: nothing to do now."""
    row = conn.execute(
        """
        UPDATE media SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => %s)
        WHERE id = %s AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now() + interval '2 s')
        RETURNING id
        """,
        (lease_s, media_id),
    ).fetchone()
    if row is None:
        return None
    found = conn.execute(_SELECT + " WHERE md.id = %s", (media_id,)).fetchone()
    return None if found is None else _media(found)


def mark_stored(conn: Connection[Any], media_id: int, *, mime: str, size_bytes: int, sha256: str,
                storage_key: str) -> None:
    conn.execute(
        """
        UPDATE media SET status = 'stored', mime = %s, size_bytes = %s, sha256 = %s, storage_key = %s,
                         stored_at = now(), last_error = NULL, next_attempt_at = NULL
        WHERE id = %s
        """,
        (mime, size_bytes, sha256, storage_key, media_id),
    )


def mark_retry(conn: Connection[Any], media_id: int, *, error: str, delay_s: float) -> None:
    """Still `pending`: the next attempt is due in `delay_s` seconds (the recovery loop queues it if lost)."""
    conn.execute(
        "UPDATE media SET last_error = %s, next_attempt_at = now() + make_interval(secs => %s) "
        "WHERE id = %s AND status = 'pending'",
        (error, delay_s, media_id),
    )


def _finish(conn: Connection[Any], media_id: int, status: str, error: str | None,
            mime: str | None = None, size_bytes: int | None = None) -> None:
    conn.execute(
        "UPDATE media SET status = %s, last_error = %s, next_attempt_at = NULL, "
        "mime = COALESCE(%s, mime), size_bytes = COALESCE(%s, size_bytes) WHERE id = %s",
        (status, error, mime, size_bytes, media_id),
    )


def mark_failed(conn: Connection[Any], media_id: int, error: str) -> None:
    """Out of attempts: shown to the agent as a download that failed."""
    _finish(conn, media_id, FAILED, error)


def mark_gone(conn: Connection[Any], media_id: int, error: str) -> None:
    """The provider no longer has the file (404, Meta's 'does not exist', 131052)."""
    _finish(conn, media_id, GONE, error)


def mark_rejected(conn: Connection[Any], media_id: int, error: str, *, mime: str | None = None,
                  size_bytes: int | None = None) -> None:
    """Downloaded but not kept: too large for its type or not the type it claims (kept visible, not stored)."""
    _finish(conn, media_id, REJECTED, error, mime, size_bytes)


def set_transcript(conn: Connection[Any], media_id: int, text: str | None, confidence: float | None,
                   status: str) -> None:
    if status not in TRANSCRIPT_STATUSES:
        raise ValueError(f"unknown transcript status {status!r}")
    conn.execute("UPDATE media SET transcript = %s, transcript_confidence = %s, transcript_status = %s "
                 "WHERE id = %s", (text, confidence, status, media_id))


def set_ocr_code(conn: Connection[Any], media_id: int, code: str | None) -> None:
    conn.execute("UPDATE media SET ocr_code = %s WHERE id = %s", (code, media_id))


def due_pending(conn: Connection[Any], *, grace_s: int = 60, limit: int = 200) -> list[int]:
    """Pending rows whose next attempt is overdue by more than `grace_s` (their job was lost): to queue again."""
    rows = conn.execute(
        "SELECT id FROM media WHERE status = 'pending' AND next_attempt_at < now() - make_interval(secs => %s) "
        "ORDER BY next_attempt_at LIMIT %s",
        (grace_s, limit),
    ).fetchall()
    return [int(r["id"]) for r in rows]


def stuck_transcripts(conn: Connection[Any], *, older_than_s: int, limit: int = 100) -> list[tuple[int, int]]:
    """(id, tenant_id) of files whose transcription is still `pending` `older_than_s` after they were stored: its
    job was lost (worker.media_followup queues it again). A rare, scheduled scan: no index of its own."""
    rows = conn.execute(
        "SELECT id, tenant_id FROM media WHERE transcript_status = 'pending'"
        " AND stored_at < now() - make_interval(secs => %s) ORDER BY stored_at LIMIT %s",
        (older_than_s, limit),
    ).fetchall()
    return [(int(r["id"]), int(r["tenant_id"])) for r in rows]


def stored_keys(conn: Connection[Any], conversation_ids: list[int]) -> list[tuple[int, str]]:
    """(tenant_id, storage_key) of the files of these conversations (retention deletes them from the store)."""
    rows = conn.execute(
        "SELECT tenant_id, storage_key FROM media WHERE conversation_id = ANY(%s) AND storage_key IS NOT NULL",
        (conversation_ids,),
    ).fetchall()
    return [(int(r["tenant_id"]), str(r["storage_key"])) for r in rows]


def delete_for_conversations(conn: Connection[Any], conversation_ids: list[int]) -> int:
    """Delete the rows of these conversations (their files first: `stored_keys`); returns how many."""
    return len(conn.execute("DELETE FROM media WHERE conversation_id = ANY(%s) RETURNING id",
                            (conversation_ids,)).fetchall())
