"""WhatsApp's media types: size limits, the MIME types allowed per type, and the check of content against MIME.

Limits and types are Meta's (WhatsApp Cloud API, "Supported media types"): audio 16 MB (aac, amr, mpeg,
mp4, ogg/opus), document 100 MB (text, pdf, the Office formats), image 5 MB (jpeg, png), sticker 500 KB
animated / 100 KB static (webp), video 16 MB (3gpp, mp4). The same limits apply to what we download (a
file larger than its type allows is rejected, not stored) and to what an agent sends (`ALLOWED_OUT`).

`sniff` reads a file's first bytes (magic numbers) and names its format; `check` compares that with the
MIME type the provider declared. A file whose content is not what it claims (a "photo" that is a program)
is rejected with reason `mime_mismatch`. Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024
SIZE_LIMITS = {
    "audio": 16 * MB,
    "document": 100 * MB,
    "image": 5 * MB,
    "sticker": 500 * 1024,  # animated; a static sticker is at most 100 KB (Meta), not told apart here
    "video": 16 * MB,
}
STATIC_STICKER_LIMIT = 100 * 1024

_OOXML = (
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)
_OLE = ("application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint")
# What Meta accepts for each type when WE send (an agent's file); inbound files are checked by `check`.
ALLOWED_OUT = {
    "audio": ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
    "document": ("text/plain", "application/pdf", *_OLE, *_OOXML),
    "image": ("image/jpeg", "image/png"),
    "sticker": ("image/webp",),
    "video": ("video/3gpp", "video/mp4"),
}

# Formats told apart by content, and the declared MIME types each one may honestly carry.
_COMPATIBLE = {
    "image/jpeg": ("image/jpeg", "image/jpg", "image/pjpeg"),
    "image/png": ("image/png",),
    "image/webp": ("image/webp",),
    "image/gif": ("image/gif",),
    "audio/ogg": ("audio/ogg", "audio/opus", "application/ogg", "video/ogg"),
    "video/mp4": ("video/mp4", "video/3gpp", "video/quicktime", "audio/mp4", "audio/aac", "audio/m4a",
                  "audio/x-m4a", "audio/3gpp"),
    "audio/mpeg": ("audio/mpeg", "audio/mp3"),
    "audio/amr": ("audio/amr", "audio/amr-nb", "audio/3gpp"),
    "audio/aac": ("audio/aac", "audio/aacp", "audio/x-aac", "audio/mp4"),
    "application/pdf": ("application/pdf",),
    "application/zip": ("application/zip", "application/x-zip-compressed", *_OOXML,
                        "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet"),
    "application/x-ole-storage": _OLE,
}
# Declared types that must show their magic number (a declared PDF that has none is not a PDF).
_NEEDS_MAGIC = {mime for mimes in _COMPATIBLE.values() for mime in mimes}
# Types that are plain bytes without a signature: accepted as declared when no known format is detected.
_NO_MAGIC = ("text/plain", "text/csv", "text/vcard", "text/x-vcard")
# Declared types that claim nothing (a file of an extension the phone did not know): the content decides.
_GENERIC = ("application/octet-stream", "binary/octet-stream", "application/unknown")


@dataclass(frozen=True)
class Verdict:
    mime: str | None  # the type the content has (the declared one when the format has no signature)
    reason: str | None  # None: keep it; else too_large | mime_mismatch | empty


def sniff(data: bytes) -> str | None:
    """The format of `data` from its first bytes, or None when it has no signature we know."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head[4:8] == b"ftyp":
        return "video/mp4"  # the ISO family: mp4, m4a, 3gp, mov
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
                                   and head[1] & 0x06 != 0):
        return "audio/mpeg"  # MPEG audio frame sync (layer bits not 00); ADTS has layer 00
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio/aac"  # ADTS
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "application/x-ole-storage"
    return None


def media_type_for_mime(mime: str) -> str:
    """WhatsApp's type for a MIME type (Twilio gives only the MIME type): image | audio | video | sticker | document."""
    major = mime.split("/", 1)[0].lower()
    if major in ("image", "audio", "video"):
        return "sticker" if mime.lower() == "image/webp" else major
    return "document"


def check(media_type: str, declared_mime: str | None, data: bytes) -> Verdict:
    """Whether a downloaded file may be kept: within its type's size limit, and its content what it claims."""
    if not data:
        return Verdict(None, "empty")
    if len(data) > SIZE_LIMITS.get(media_type, SIZE_LIMITS["document"]):
        return Verdict(None, "too_large")
    declared = (declared_mime or "").split(";", 1)[0].strip().lower()
    detected = sniff(data)
    if detected is None:
        if declared in _NEEDS_MAGIC or media_type in ("image", "sticker", "video"):
            return Verdict(None, "mime_mismatch")
        return Verdict(declared or "application/octet-stream", None)
    if declared and declared not in _COMPATIBLE[detected] and declared not in _GENERIC:
        return Verdict(detected, "mime_mismatch")
    if media_type in ("image", "sticker") and not detected.startswith("image/"):
        return Verdict(detected, "mime_mismatch")
    if media_type in ("audio", "video") and detected not in _AV:
        return Verdict(detected, "mime_mismatch")
    return Verdict(declared if declared in _COMPATIBLE[detected] else detected, None)


_AV = ("audio/ogg", "video/mp4", "audio/mpeg", "audio/amr", "audio/aac")
