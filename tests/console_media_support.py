"""Shared by the console's media tests (tests/test_console_media*.py): real files (a PNG Chromium can draw,
a PDF, an Ogg voice note), a customer's photo / voice note / document posted through the signed Meta
webhook, and files put in the media store the way the download job leaves them."""

from __future__ import annotations

import hashlib
import struct
import uuid
import zlib
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from storage import media
from storage.media_files import new_key, open_store
from tests.console_support import MARIA, TUESDAY_10AM
from tests.harness import post_meta, rows


def png(width: int = 48, height: int = 32, rgb: tuple[int, int, int] = (11, 122, 108)) -> bytes:
    """A real PNG of one colour (with a white band, so a screenshot shows it is a picture)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    lines = []
    for y in range(height):
        colour = bytes((255, 255, 255)) if height // 3 <= y < height // 2 else bytes(rgb)
        lines.append(b"\x00" + colour * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(lines)))
            + chunk(b"IEND", b""))


def box_photo(width: int = 360, height: int = 240) -> bytes:
    """A PNG that looks like a customer's photo of a parcel with its label (for the screenshot)."""
    from io import BytesIO

    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), (214, 204, 188))
    draw = ImageDraw.Draw(image)
    draw.polygon([(40, 70), (250, 40), (330, 90), (120, 125)], fill=(196, 146, 92))  # the box's top
    draw.polygon([(40, 70), (120, 125), (120, 225), (40, 170)], fill=(160, 112, 64))
    draw.polygon([(120, 125), (330, 90), (330, 190), (120, 225)], fill=(178, 126, 74))
    draw.line([(150, 120), (160, 170), (150, 215)], fill=(90, 60, 30), width=3)  # the dent
    draw.rectangle([(176, 112), (326, 172)], fill=(250, 250, 246))
    font = ImageFont.load_default(size=13)
    draw.text((184, 120), "ENCARGO", fill=(11, 95, 85), font=font)
    draw.text((184, 144), "SV20260106012345", fill=(20, 20, 20), font=font)
    out = BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def pdf(text: str = "Formulario de reclamo") -> bytes:
    body = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
            b"3 0 obj << /Length " + str(len(body)).encode() + b" >> stream\n" + body + b"\nendstream endobj\n"
            b"trailer << /Root 1 0 R >>\n%%EOF\n")


OGG = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead" + b"\x01" * 40


def media_message(kind: str, content: dict[str, Any], *, phone: str = MARIA, at: datetime = TUESDAY_10AM,
                  name: str = "María López") -> tuple[str, dict[str, Any]]:
    """(wamid, webhook body) of a customer's media message in Meta's shape (fixtures meta_image.json ...)."""
    wamid = f"wamid.MEDIA{uuid.uuid4().hex}"
    message = {"from": phone.lstrip("+"), "id": wamid, "timestamp": str(int(at.timestamp())), "type": kind,
               kind: content}
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"wa_id": phone.lstrip("+"), "profile": {"name": name}}],
            "messages": [message]}}]}]}
    return wamid, body


def send_media(client: FlaskClient, kind: str, content: dict[str, Any], **kw: Any) -> str:
    """Post a customer's media message through the signed webhook; returns its wamid."""
    wamid, body = media_message(kind, content, **kw)
    assert post_meta(client, body).status_code == 200
    return wamid


def media_row(pool: ConnectionPool, wamid: str) -> dict[str, Any]:
    found = rows(pool, "SELECT md.* FROM media md JOIN messages m ON m.id = md.message_id"
                       " WHERE m.provider_message_id = %s", (wamid,))
    assert found, f"no media row for {wamid}"
    return found[0]


def store_downloaded(settings: Settings, pool: ConnectionPool, media_id: int, data: bytes, mime: str) -> None:
    """Put a file in the media store and mark its row stored, as the download job does when it succeeds."""
    row = rows(pool, "SELECT tenant_id, media_type FROM media WHERE id = %s", (media_id,))[0]
    key = new_key(str(row["media_type"]))
    open_store(settings).put(int(row["tenant_id"]), key, data, mime)
    with pool.connection() as conn:
        media.mark_stored(conn, media_id, mime=mime, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                          storage_key=key)
