"""The simulator's customer files: what the customer attaches, and the pretend media host the worker downloads from.

Development only, beside web/simulator.py (issue 17). A photo, PDF, audio or voice note picked in the simulator
page is checked here against WhatsApp's limits for its type (channels.media_types: a photo 5 MB, an audio
16 MB, a document 100 MB; over the limit: 413 with the reason in Spanish), kept in Redis for KEEP_S under a
fresh media id, and described in the webhook exactly as Meta describes a customer's file (`image` /
`document` / `audio` with `voice: true` ... with `id`, `mime_type`, `sha256`, `caption`, `filename`). Nothing is
written to the company's media store: the worker downloads the file through the provider path like any
other (worker/media_job.py with channels.local_transport), from these routes:

- GET /simulator/media/<id>        Meta's media info: {messaging_product, url, mime_type, sha256, file_size, id}
- GET /simulator/media/<id>/file   the bytes at that url
Both want `Authorization: Bearer <channels.local_transport.simulator_token(META_APP_SECRET)>` (401 with Meta's
error 190 otherwise); a file no longer kept answers 404 with Meta's error 100 (the download ends `gone`).

- GET /simulator/api/files/<wamid> the customer's own copy, for the page to draw the photo in the chat (the
  customer's phone has the file; keyed by the message, never by the media id the worker fetches with).

Redis keys (this module's family): `simulator:media:<id>` a hash (data, mime, sha256, size, filename) and
`simulator:media-of:<wamid>` -> id, both expiring after KEEP_S. Logs carry ids and sizes, never a file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import mimetypes
import secrets
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.datastructures import FileStorage

from channels import media_types
from channels.local_transport import simulator_token
from config import Settings

log = logging.getLogger(__name__)

bp = Blueprint("simulator_files", __name__, url_prefix="/simulator")

KEEP_S = 3600  # longer than the worker's retries of one file (about 13 minutes with the default attempts)
FILE_KEY = "simulator:media:{media_id}"
MESSAGE_KEY = "simulator:media-of:{wamid}"
UPLOAD_PATH = "/simulator/api/media"
MAX_FILES = 10  # WhatsApp lets a customer pick up to 30 at once; ten photos make a big enough album
UPLOAD_MAX_BYTES = media_types.SIZE_LIMITS["document"] + media_types.MB  # a 100 MB PDF and the form around it
CAPTION_MAX = 1024  # Meta's limit for a media caption
CAPTIONED = ("image", "video", "document")
# What the customer's type is called in the simulator's answers.
_WHAT = {"image": "foto", "audio": "audio", "voice": "nota de voz", "document": "documento", "video": "video",
         "sticker": "sticker"}


class Refused(ValueError):
    """An upload WhatsApp would not take; `message` is Spanish, for the page; `status` the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Upload:
    """One file as the customer's WhatsApp would send it."""

    data: bytes
    media_type: str  # image | audio | video | document | sticker
    mime: str
    filename: str | None
    voice: bool = False


def read_uploads(files: list[FileStorage], *, voice: bool) -> list[Upload]:
    """The picked files as WhatsApp would send them, each checked against its type's limit. Raises Refused."""
    if not files or all(not f.filename and not f.content_length for f in files):
        raise Refused("Elige una foto, un PDF o un audio para enviar.")
    if len(files) > MAX_FILES:
        raise Refused(f"Puedes enviar hasta {MAX_FILES} archivos a la vez.")
    if voice and len(files) > 1:
        raise Refused("Una nota de voz es un solo audio.")
    found: list[Upload] = []
    for picked in files:
        data = picked.read(UPLOAD_MAX_BYTES + 1)
        name = (picked.filename or "").strip()[:240] or None
        shown = f"«{name}»" if name else "El archivo"
        if not data:
            raise Refused(f"{shown} está vacío.")
        upload = _classify(data, picked.mimetype, name, voice=voice)
        limit = media_types.SIZE_LIMITS[upload.media_type]
        if len(data) > limit:
            what = _WHAT["voice" if upload.voice else upload.media_type]
            raise Refused(f"{shown} pesa {_mb(len(data))} y WhatsApp permite hasta {_mb(limit)} por {what}.", 413)
        found.append(upload)
    return found


def caption_of(value: str | None) -> str | None:
    """The caption typed with the files (Meta: at most CAPTION_MAX characters). Raises Refused."""
    text = (value or "").strip()
    if len(text) > CAPTION_MAX:
        raise Refused(f"El texto que acompaña al archivo tiene {len(text)} caracteres; WhatsApp permite "
                      f"hasta {CAPTION_MAX}.")
    return text or None


def keep(conn: redis.Redis, upload: Upload, wamid: str) -> str:
    """Keep the file for KEEP_S under a new media id (a number, like Meta's) and return that id. Redis errors
    raise (the customer sees the message was not sent)."""
    media_id = str(10**15 + secrets.randbelow(9 * 10**15))
    key = FILE_KEY.format(media_id=media_id)
    with conn.pipeline() as pipe:
        pipe.hset(key, mapping={"data": upload.data, "mime": upload.mime, "size": len(upload.data),
                                "sha256": hashlib.sha256(upload.data).hexdigest(), "filename": upload.filename or ""})
        pipe.expire(key, KEEP_S)
        pipe.set(MESSAGE_KEY.format(wamid=wamid), media_id, ex=KEEP_S)
        pipe.execute()
    log.info("simulator file kept", extra={"media_id": media_id, "media_type": upload.media_type,
                                           "bytes": len(upload.data)})
    return media_id


def message_content(upload: Upload, media_id: str, caption: str | None) -> dict[str, Any]:
    """The type-specific part of Meta's message object for this file (fixtures meta_image.json, meta_document.json,
    meta_audio_voice.json): the sha256 in base64 as Meta's webhooks carry it."""
    item: dict[str, Any] = {"mime_type": upload.mime,
                            "sha256": base64.b64encode(hashlib.sha256(upload.data).digest()).decode(),
                            "id": media_id}
    if caption and upload.media_type in CAPTIONED:
        item["caption"] = caption
    if upload.media_type == "document":
        item["filename"] = upload.filename or "documento"
    if upload.media_type == "audio":
        item["voice"] = upload.voice
    return {"type": upload.media_type, upload.media_type: item}


# ---------- the pretend media host ----------


@bp.get("/media/<provider_media_id>")
def media_info(provider_media_id: str) -> tuple[Response, int]:
    """Meta's GET /<ver>/<media_id>: where the file is and what it is."""
    refused = _unauthorised()
    if refused is not None:
        return refused
    fields = _redis().hmget(FILE_KEY.format(media_id=provider_media_id), ["mime", "size", "sha256"])
    if not provider_media_id.isdigit() or fields[0] is None:
        return _does_not_exist(provider_media_id)
    mime, size, sha256 = (f.decode() if isinstance(f, bytes) else str(f) for f in fields)
    url = url_for("simulator_files.media_bytes", provider_media_id=provider_media_id, _external=True)
    return jsonify(messaging_product="whatsapp", id=provider_media_id, mime_type=mime, sha256=sha256,
                   file_size=int(size), url=url), 200


@bp.get("/media/<provider_media_id>/file")
def media_bytes(provider_media_id: str) -> Response | tuple[Response, int]:
    """The bytes at the URL `media_info` gave (Meta's lookaside host)."""
    refused = _unauthorised()
    if refused is not None:
        return refused
    data, mime = _redis().hmget(FILE_KEY.format(media_id=provider_media_id), ["data", "mime"])
    if not provider_media_id.isdigit() or not isinstance(data, bytes) or not isinstance(mime, bytes):
        return Response(b"", status=404)
    return _file(data, mime)


@bp.get("/api/files/<wamid>")
def customer_file(wamid: str) -> Response | tuple[Response, int]:
    """The customer's own copy of the file of their message `wamid` (the page draws it); 404 once expired."""
    conn = _redis()
    media_id = conn.get(MESSAGE_KEY.format(wamid=wamid))
    if not isinstance(media_id, bytes):
        return Response(b"", status=404)
    data, mime = conn.hmget(FILE_KEY.format(media_id=media_id.decode()), ["data", "mime"])
    if not isinstance(data, bytes) or not isinstance(mime, bytes):
        return Response(b"", status=404)
    return _file(data, mime)


def _file(data: bytes, mime: bytes) -> Response:
    response = Response(data, mimetype=mime.decode().split(";", 1)[0])
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=300"
    response.make_conditional(request, accept_ranges=True, complete_length=len(data))  # the audio player seeks
    return response


def _unauthorised() -> tuple[Response, int] | None:
    """None when the request carries the simulator's token; else Meta's answer to a bad token."""
    settings: Settings = current_app.extensions["settings"]
    given = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
    if settings.meta_app_secret and hmac.compare_digest(given, simulator_token(settings.meta_app_secret)):
        return None
    return jsonify(error={"message": "Invalid OAuth access token - Cannot parse access token",
                          "type": "OAuthException", "code": 190}), 401


def _does_not_exist(media_id: str) -> tuple[Response, int]:
    return jsonify(error={"message": f"Unsupported get request. Object with ID '{media_id[:40]}' does not exist, "
                                     "cannot be loaded due to missing permissions, or does not support this "
                                     "operation.", "type": "GraphMethodException", "code": 100,
                          "error_subcode": 33}), 404


def _redis() -> redis.Redis:
    conn: redis.Redis = current_app.extensions["redis"]
    return conn


# ---------- what a picked file is ----------


def _classify(data: bytes, declared: str | None, filename: str | None, *, voice: bool) -> Upload:
    """The WhatsApp type and MIME type of a picked file, from its content first (what the phone would send)."""
    sniffed = media_types.sniff(data)
    given = (declared or "").split(";", 1)[0].strip().lower()
    if given in ("", "application/octet-stream"):
        given = (mimetypes.guess_type(filename or "")[0] or "").lower()
    is_audio = sniffed in ("audio/ogg", "audio/mpeg", "audio/amr", "audio/aac") or (
        given.startswith("audio/") and sniffed in (None, "video/mp4"))
    if voice:
        if not is_audio:
            raise Refused("Una nota de voz tiene que ser un audio (por ejemplo .ogg, .mp3 o .m4a).", 415)
        mime = "audio/ogg; codecs=opus" if sniffed == "audio/ogg" else (given or sniffed or "audio/ogg")
        return Upload(data, "audio", mime, filename, voice=True)
    if sniffed in ("image/jpeg", "image/png"):
        return Upload(data, "image", sniffed, filename)
    if sniffed == "image/webp":
        return Upload(data, "sticker", sniffed, filename)
    if is_audio:
        return Upload(data, "audio", sniffed if sniffed and sniffed != "video/mp4" else given, filename)
    if sniffed == "video/mp4":
        return Upload(data, "video", given if given.startswith("video/") else "video/mp4", filename)
    return Upload(data, "document", given or sniffed or "application/octet-stream", filename)


def _mb(size: int) -> str:
    """Bytes as people read them: '6,2 MB', '500 KB'."""
    if size < media_types.MB:
        return f"{round(size / 1024)} KB"
    return f"{size / media_types.MB:.1f}".replace(".", ",").removesuffix(",0") + " MB"
