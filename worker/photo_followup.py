"""A customer's photo once it is stored (issue 17): a tracking code printed in it is read and confirmed.

`worker.media_followup.after_stored` calls `read_photo` for an inbound image (and a
document that is a JPEG, PNG or WebP: some customers send the receipt "as a file"),
in the download's job, after the file is in the media store:
1. Tesseract reads the photo (services/ocr.py; chatbot/photo_codes.py finds the codes
   with the bot's own reader), about 0.3-0.6 s of CPU;
2. no code: nothing more (the bot already answered the photo, chatbot/media_replies.py);
3. a code: it is stored on the media row (`ocr_code`, shown to agents) and re-enters
   the customer's inbox as a PHOTO_TEXT message whose text is the code only
   (worker.reentry, id `<wamid>:photo`), so the bot asks "¿es ese?" in order with the
   customer's other messages (chatbot/photo_reply.py). Several codes in one photo:
   the first one read. Several photos of an album are each read (each may be another
   receipt), but the bot asks about one code per album (chatbot/photo_reply.py).

OCR is off with PHOTO_OCR=false or without tesseract-ocr (`announce` says so once
when the worker starts).

Failure policy: `read_photo` never raises (the download is done whatever happens
here): a store, OCR or re-entry failure is logged with the media id, never the
image or the text read.
"""

from __future__ import annotations

import logging

from channels.events import MessageKind
from chatbot import photo_codes
from config import Settings
from observability import current_correlation_id
from runtime.resources import Runtime
from services import ocr
from storage import media
from storage.media import Media
from worker import reentry

log = logging.getLogger(__name__)

PHOTO_SUFFIX = "photo"
IMAGE_DOCUMENTS = frozenset({"image/jpeg", "image/png", "image/webp"})


def engine(settings: Settings) -> ocr.OcrEngine | None:
    """The OCR engine this deployment reads photos with (None: off by setting or not installed)."""
    return ocr.installed_engine(settings.photo_ocr_timeout_s) if settings.photo_ocr else None


def announce(settings: Settings) -> None:
    """At the worker's start: one line when photo OCR is wanted but Tesseract is missing."""
    if settings.photo_ocr and engine(settings) is None:
        log.warning("photo OCR is off: tesseract-ocr (with tesseract-ocr-spa) is not installed; "
                    "make run / make test install it (scripts/devservices.py)")


def is_photo(row: Media) -> bool:
    """A customer's image, or a document that is an image."""
    if row.direction != "in" or row.status != media.STORED:
        return False
    return row.media_type == "image" or (row.media_type == "document" and (row.mime or "") in IMAGE_DOCUMENTS)


def read_photo(rt: Runtime, row: Media) -> str | None:
    """Read a stored photo's tracking code and have the bot ask about it; the code, or None. Never raises."""
    reader = engine(rt.settings)
    if reader is None or row.direction != "in" or row.media_type not in ("image", "document"):
        return None
    try:
        with rt.pool.connection() as conn:
            fresh = media.get(conn, row.id, row.tenant_id)  # as stored: its checked MIME type, its key
        key = fresh.storage_key if fresh is not None else None
        if fresh is None or key is None or not is_photo(fresh) or fresh.ocr_code is not None:
            return None
        row = fresh
        image = rt.media_store.get(row.tenant_id, key)
        codes = photo_codes.codes_in_photo(reader, image)
        if not codes:
            return None
        code = codes[0]
        with rt.pool.connection() as conn:
            media.set_ocr_code(conn, row.id, code)
        reentry.reenter(rt, row, kind=MessageKind.PHOTO_TEXT, suffix=PHOTO_SUFFIX, text=code,
                        correlation_id=current_correlation_id())
        return code
    except Exception as exc:  # the photo is stored; reading it is a bonus that must not fail the download
        log.error("reading a photo's code failed: %s", type(exc).__name__, extra={"media_id": row.id})
        return None
