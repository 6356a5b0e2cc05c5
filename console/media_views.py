"""The console's files: showing a customer's photo, audio or document to an agent, and an agent sending one.

- `GET /console/media/<id>?e=<expiry>&s=<signature>`: the file, for a logged-in agent of its tenant only,
  through a link of ours signed for that tenant that expires after about ten minutes (runtime.media_links).
  No session, another company's file or one that does not exist: 404 alike (nothing tells them apart); a
  wrong or expired signature: 403. The bytes come from the media store with the MIME type checked against
  the content, inline for images, audio and video, as an attachment for documents, never sniffed by the
  browser, cached privately.
- `GET /console/media/public/<id>/<name>?e=&s=`: the public link Twilio fetches an agent's file from (no
  login; files an agent sent only, direction 'out').
- `GET /console/api/media/<id>`: one file as the case page shows it (the live refresh of a finished download).
- `POST /console/api/files` (multipart: case_id, file, caption, client_key): an agent sends a JPEG/PNG image
  (up to 5 MB) or a PDF (up to 100 MB) to the customer of a case they hold, inside the 24-hour window
  (handoff.media_reply). The path is fixed so that its larger body limit can be set once.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import RequestEntityTooLarge

from channels.media_types import MB, SIZE_LIMITS
from console import auth, media_items
from console.blueprint import bp, state
from console.database import get_pool
from handoff import cases as handoff_texts
from handoff import media_reply
from runtime import media_links
from storage import media
from storage.media_files import MediaStore, open_store

log = logging.getLogger(__name__)

UPLOAD_PATH = "/console/api/files"
UPLOAD_MAX_BYTES = SIZE_LIMITS["document"] + 1024 * 1024  # a 100 MB PDF and the form around it
INLINE_TYPES = ("image", "audio", "video", "sticker")
STORE_KEY = "media_store"


@bp.record_once
def _larger_body_for_uploads(setup: BlueprintSetupState) -> None:
    """The upload path may carry a 100 MB PDF: past the app-wide body limit (web/body_limit.py's middleware,
    found through the app's extensions: the console does not import the web edge)."""
    limiter = setup.app.extensions.get("body_limit")
    if limiter is not None:
        limiter.limits[UPLOAD_PATH] = UPLOAD_MAX_BYTES


def store() -> MediaStore:
    """The media store of this app (MEDIA_STORE_URL), opened on first use."""
    app: Flask = current_app
    if STORE_KEY not in app.extensions:
        app.extensions[STORE_KEY] = open_store(state().settings)
    found: MediaStore = app.extensions[STORE_KEY]
    return found


def _key() -> bytes:
    return media_links.link_key(state().settings)


def _tz(conn: Any, tenant_id: int) -> ZoneInfo:
    """The company's own clock (its row), for the times an agent reads under a file."""
    row = conn.execute("SELECT timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    zone = (row["timezone"] if isinstance(row, dict) else row[0]) if row else None
    return ZoneInfo(str(zone or state().settings.tenant_timezone))


def attach(conn: Any, tenant_id: int, conversation_id: int, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case's messages with their files (console.media_items.attach with this app's key and settings)."""
    settings = state().settings
    return media_items.attach(conn, key=_key(), tenant_id=tenant_id, conversation_id=conversation_id,
                              messages=messages, now=datetime.now(UTC), album_window_s=settings.album_window_s,
                              tz=_tz(conn, tenant_id))


def _file_response(row: media.Media, *, inline: bool) -> Response:
    assert row.storage_key is not None
    try:
        data = store().get(row.tenant_id, row.storage_key)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable file is "not here" for the browser
        log.warning("media file unreadable: media=%s error=%s", row.id, type(exc).__name__)
        abort(404)
    mime = row.mime or "application/octet-stream"
    name = media_links.safe_name(row.filename, "archivo")
    response = Response(data, mimetype=mime)
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = f"{disposition}; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = f"private, max-age={media_links.VIEW_TTL_S}"
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
    # audio and video players seek with Range requests
    response.make_conditional(request, accept_ranges=True, complete_length=len(data))  # changes it in place
    return response


@bp.get("/media/<int:media_id>")
def media_file(media_id: int) -> Response:
    agent = auth.current_agent()
    if agent is None:
        abort(404)
    with get_pool().connection() as conn:
        row = media.get(conn, media_id, agent.tenant_id)
    if row is None or row.status != media.STORED or not row.storage_key:
        abort(404)
    verdict = media_links.check(_key(), media_links.VIEW, media_id, agent.tenant_id, request.args.get("e"),
                                request.args.get("s"), time.time())
    if verdict is not None:
        abort(403, description="El enlace del archivo venció o no es válido: recarga la página.")
    return _file_response(row, inline=row.media_type in INLINE_TYPES)


@bp.get("/media/public/<int:media_id>/<name>")
def public_file(media_id: int, name: str) -> Response:
    """An agent's file for the provider to fetch (Twilio's MediaUrl); no login, a signed `out` link."""
    with get_pool().connection() as conn:
        found = conn.execute("SELECT tenant_id FROM media WHERE id = %s AND direction = 'out'",
                             (media_id,)).fetchone()
        row = media.get(conn, media_id, int(found["tenant_id"])) if found else None  # type: ignore[call-overload]
    if row is None or row.status != media.STORED or not row.storage_key:
        abort(404)
    verdict = media_links.check(_key(), media_links.OUT, media_id, row.tenant_id, request.args.get("e"),
                                request.args.get("s"), time.time())
    if verdict is not None:
        abort(404)
    return _file_response(row, inline=True)


@bp.get("/api/media/<int:media_id>")
@auth.login_required
def api_media_item(media_id: int) -> Response:
    agent = auth.require_agent()
    with get_pool().connection() as conn:
        shown = media_items.one(conn, key=_key(), tenant_id=agent.tenant_id, media_id=media_id,
                                now=datetime.now(UTC), tz=_tz(conn, agent.tenant_id))
    if shown is None:
        abort(404, description="Ese archivo no existe.")
    return jsonify(shown)


@bp.post("/api/files")
@auth.login_required
def api_send_file() -> tuple[Response, int]:
    agent = auth.require_agent()
    request.max_content_length = UPLOAD_MAX_BYTES
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        abort(413, description=handoff_texts.error_text("file_too_large", what="un PDF",
                                                         max=SIZE_LIMITS["document"] // MB))
    case_id = form.get("case_id", "")
    if not case_id.isdigit():
        abort(400, description="Falta el caso.")
    upload = files.get("file")
    if upload is None:
        abort(400, description="Elige la foto o el PDF que quieres enviar.")
    data = upload.read(UPLOAD_MAX_BYTES + 1)
    key = form.get("client_key") or None
    message_id = media_reply.send_file(state().desk, store(), agent, int(case_id), data,
                                       filename=upload.filename, caption=form.get("caption", ""),
                                       client_key=key[:64] if key else None)
    return jsonify(ok=True, message_id=message_id, status="pending"), 202
