"""Customers' files from the simulator (issue 17): the whole media path of `make run`, as it is with Meta.

The app runs on a real threaded server on loopback (the simulator posts its own webhook, and the worker
downloads from the simulator's pretend media host at PUBLIC_BASE_URL with the local transport's token);
jobs run in this process with a burst worker against the real Redis and PostgreSQL; files land in the
session's local media store.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from PIL import Image
from psycopg_pool import ConnectionPool

from channels.local_transport import simulator_token
from config import Settings
from sandbox_core import BackgroundServer, create_sandbox_app
from storage.crypto import Vault
from storage.media_files import open_store
from tests.harness import rows, run_jobs, served

PHONE = "+50370000004"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sandbox_core() -> Iterator[str]:
    with BackgroundServer(create_sandbox_app()) as core:
        yield core.url


@pytest.fixture
def settings(base_env: dict[str, str], sandbox_core: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": sandbox_core})


@pytest.fixture
def served_app(settings: Settings) -> Iterator[str]:
    with served(settings) as (_app, url):
        yield url


@pytest.fixture
def api(served_app: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served_app, timeout=20) as client:
        yield client


@pytest.fixture
def worker_settings(settings: Settings, served_app: str) -> Settings:
    """The worker as `make run` has it: WHATSAPP_PROVIDER=local, PUBLIC_BASE_URL the web's address."""
    return settings.with_overrides(public_base_url=served_app)


def photo(color: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


OGG = b"OggS" + b"\x00" * 24 + b"OpusHead" + bytes(range(256)) * 8  # an Ogg page's signature, Opus inside
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def send_files(api: httpx.Client, files: list[tuple[str, bytes, str]], **form: str) -> httpx.Response:
    return api.post("/simulator/api/media", data={"from": PHONE, **form},
                    files=[("file", (name, data, mime)) for name, data, mime in files])


def media_rows(pool: ConnectionPool) -> list[dict[str, Any]]:
    return rows(pool, "SELECT md.*, m.provider_message_id FROM media md JOIN messages m ON m.id = md.message_id"
                      " ORDER BY md.id")


def bot_texts(pool: ConnectionPool) -> str:
    found = rows(pool, "SELECT payload FROM messages WHERE direction = 'out' ORDER BY id")
    parts: list[str] = []
    for row in found:
        payload = row["payload"]
        parts.append(str(payload.get("body") or ""))
        parts += [str(c["title"]) for c in payload.get("buttons") or payload.get("rows") or []]
    return "\n".join(parts)


def webhook_message(pool: ConnectionPool, settings: Settings, wamid: str) -> dict[str, Any]:
    """The message object the simulator posted, as the webhook stored it (decrypted)."""
    row = rows(pool, "SELECT payload_encrypted FROM webhook_events WHERE event_id = %s", (wamid,))[0]
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    message: dict[str, Any] = json.loads(vault.decrypt(row["payload_encrypted"]))["event"]["raw"]["message"]
    return message


def test_a_photo_is_downloaded_into_the_media_store_byte_for_byte(
        api: httpx.Client, settings: Settings, worker_settings: Settings, db_pool: ConnectionPool) -> None:
    picture = photo()
    answer = send_files(api, [("recibo.jpg", picture, "image/jpeg")], caption="mi recibo", name="Carla")
    assert answer.status_code == 200, answer.text
    [wamid] = answer.json()["message_ids"]

    posted = webhook_message(db_pool, settings, wamid)  # described exactly as Meta describes a customer's photo
    assert posted["type"] == "image" and posted["from"] == PHONE.removeprefix("+")
    image = posted["image"]
    assert set(image) == {"id", "mime_type", "sha256", "caption"}
    assert (image["mime_type"], image["caption"]) == ("image/jpeg", "mi recibo")
    assert image["id"].isdigit() and image["sha256"] == base64.b64encode(hashlib.sha256(picture).digest()).decode()

    run_jobs(worker_settings)  # the message is answered, then the file downloaded through the provider path

    [row] = media_rows(db_pool)
    assert (row["status"], row["provider"], row["provider_ref"]) == ("stored", "meta", image["id"])
    assert (row["mime"], row["size_bytes"], row["sha256"]) == ("image/jpeg", len(picture),
                                                               hashlib.sha256(picture).hexdigest())
    assert open_store(settings).get(row["tenant_id"], row["storage_key"]) == picture
    assert "Recibí tu imagen" in bot_texts(db_pool)

    # the customer's own phone shows the photo in the chat
    [mine] = [m for m in api.get("/simulator/api/messages", params={"phone": PHONE}).json()["messages"]
              if m["direction"] == "in"]
    assert (mine["kind"], mine["body"], mine["payload"]["media_type"]) == ("media", "mi recibo", "image")
    shown = api.get(mine["file_url"])
    assert (shown.status_code, shown.content, shown.headers["content-type"]) == (200, picture, "image/jpeg")


def test_a_receipt_photo_from_the_simulator_is_read_for_its_code(
        api: httpx.Client, worker_settings: Settings, db_pool: ConnectionPool) -> None:
    """The whole photo path of `make run`: simulator, webhook, download, OCR, the question with buttons."""
    from services import ocr
    from tests.test_photo_codes import CODE, receipt_photo

    if ocr.find_engine(timeout_s=5) is None:
        pytest.skip("tesseract-ocr is not installed here (make test installs it: scripts/devservices.py)")
    answer = send_files(api, [("recibo.jpg", receipt_photo(fmt="JPEG", quality=88), "image/jpeg")])
    assert answer.status_code == 200, answer.text

    run_jobs(worker_settings)

    text = bot_texts(db_pool)
    assert f"En tu foto leí el código *{CODE}*, ¿es ese?" in text and "Sí" in text
    [row] = media_rows(db_pool)
    assert (row["status"], row["ocr_code"]) == ("stored", CODE)
    kinds = [(m["direction"], m["kind"]) for m in
             api.get("/simulator/api/messages", params={"phone": PHONE}).json()["messages"]]
    assert ("in", "photo_text") in kinds  # the page shows it as a note: what the bot read, not typed


def test_the_pretend_media_host_wants_the_token_like_meta(api: httpx.Client, settings: Settings,
                                                          db_pool: ConnectionPool) -> None:
    picture = photo("blue")
    [wamid] = send_files(api, [("foto.jpg", picture, "image/jpeg")]).json()["message_ids"]
    media_id = webhook_message(db_pool, settings, wamid)["image"]["id"]

    refused = api.get(f"/simulator/media/{media_id}")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == 190
    assert api.get(f"/simulator/media/{media_id}/file", headers={"Authorization": "Bearer nope"}).status_code == 401

    token = {"Authorization": f"Bearer {simulator_token(settings.meta_app_secret)}"}
    info = api.get(f"/simulator/media/{media_id}", headers=token).json()
    assert {k: info[k] for k in ("id", "mime_type", "file_size", "sha256", "messaging_product")} == {
        "id": media_id, "mime_type": "image/jpeg", "file_size": len(picture),
        "sha256": hashlib.sha256(picture).hexdigest(), "messaging_product": "whatsapp"}
    assert httpx.get(info["url"], headers=token).content == picture

    missing = api.get("/simulator/media/1234567890123456", headers=token)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 100


def test_three_photos_at_once_are_an_album_with_one_reply(
        api: httpx.Client, worker_settings: Settings, db_pool: ConnectionPool) -> None:
    pictures = [photo(c) for c in ("red", "green", "blue")]
    answer = send_files(api, [(f"foto{i}.jpg", p, "image/jpeg") for i, p in enumerate(pictures)])
    assert answer.status_code == 200, answer.text
    wamids = answer.json()["message_ids"]
    assert len(set(wamids)) == 3  # three webhooks, each with its own id

    run_jobs(worker_settings)

    sent = rows(db_pool, "SELECT payload FROM messages WHERE direction = 'out'")
    assert len(sent) == 1 and "Recibí tu imagen" in bot_texts(db_pool)
    routes = {r["provider_message_id"]: r["route"]["stage"] for r in rows(
        db_pool, "SELECT provider_message_id, route FROM messages WHERE direction = 'in'")}
    assert [routes[w] for w in wamids] == ["none", "album", "album"]
    stored = media_rows(db_pool)
    assert [r["status"] for r in stored] == ["stored"] * 3
    store = open_store(worker_settings)
    assert [store.get(r["tenant_id"], r["storage_key"]) for r in stored] == pictures


def test_a_voice_note_without_a_transcriber_is_told_honestly(
        api: httpx.Client, worker_settings: Settings, db_pool: ConnectionPool, settings: Settings) -> None:
    answer = send_files(api, [("nota.ogg", OGG, "audio/ogg")], voice="1")
    assert answer.status_code == 200, answer.text
    [wamid] = answer.json()["message_ids"]
    audio = webhook_message(db_pool, settings, wamid)["audio"]
    assert (audio["voice"], audio["mime_type"]) == (True, "audio/ogg; codecs=opus") and "caption" not in audio

    run_jobs(worker_settings)

    text = bot_texts(db_pool)
    assert "no puedo escuchar audios" in text and "Hablar con persona" in text
    [row] = media_rows(db_pool)
    assert (row["status"], row["media_type"], row["voice"]) == ("stored", "audio", True)
    assert open_store(settings).get(row["tenant_id"], row["storage_key"]) == OGG


def test_a_pdf_keeps_its_name(api: httpx.Client, worker_settings: Settings, db_pool: ConnectionPool,
                              settings: Settings) -> None:
    [wamid] = send_files(api, [("guía de envío.pdf", PDF, "application/pdf")], caption="la guía").json()["message_ids"]
    document = webhook_message(db_pool, settings, wamid)["document"]
    assert (document["filename"], document["mime_type"], document["caption"]) == (
        "guía de envío.pdf", "application/pdf", "la guía")
    run_jobs(worker_settings)
    [row] = media_rows(db_pool)
    assert (row["status"], row["filename"], row["mime"]) == ("stored", "guía de envío.pdf", "application/pdf")


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    ("name", "data", "declared", "media_type", "mime"),
    [
        ("foto.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "image/png", "image", "image/png"),
        ("foto.jpg", photo(), "", "image", "image/jpeg"),  # the browser gave no type: the content says
        ("sticker.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(32), "image/webp", "sticker", "image/webp"),
        ("cancion.mp3", b"ID3\x04" + bytes(64), "audio/mpeg", "audio", "audio/mpeg"),
        ("nota.m4a", b"\x00\x00\x00\x20ftypM4A " + bytes(32), "audio/mp4", "audio", "audio/mp4"),
        ("video.mp4", b"\x00\x00\x00\x20ftypisom" + bytes(32), "video/mp4", "video", "video/mp4"),
        ("lista.docx", b"PK\x03\x04" + bytes(32), DOCX, "document", DOCX),
        ("notas.txt", "¿ya llegó?".encode(), "text/plain", "document", "text/plain"),
        ("guia.pdf", PDF, "application/octet-stream", "document", "application/pdf"),
    ],
)
def test_each_file_goes_as_whatsapp_sends_it(api: httpx.Client, settings: Settings, db_pool: ConnectionPool,
                                             name: str, data: bytes, declared: str, media_type: str,
                                             mime: str) -> None:
    answer = send_files(api, [(name, data, declared)], caption="mira")
    assert answer.status_code == 200, answer.text
    posted = webhook_message(db_pool, settings, answer.json()["message_ids"][0])
    assert posted["type"] == media_type
    item = posted[media_type]
    assert item["mime_type"] == mime
    assert item.get("filename") == (name if media_type == "document" else None)
    assert item.get("caption") == ("mira" if media_type in ("image", "video", "document") else None)
    assert item.get("voice") == (False if media_type == "audio" else None)


@pytest.mark.parametrize(
    ("files", "form", "status", "complaint"),
    [
        ([("grande.jpg", b"\xff\xd8\xff\xe0" + bytes(6 * 1024 * 1024), "image/jpeg")], {}, 413,
         "«grande.jpg» pesa 6 MB y WhatsApp permite hasta 5 MB por foto."),
        ([("largo.ogg", b"OggS" + bytes(17 * 1024 * 1024), "audio/ogg")], {"voice": "1"}, 413,
         "«largo.ogg» pesa 17 MB y WhatsApp permite hasta 16 MB por nota de voz."),
        ([("recibo.pdf", PDF, "application/pdf")], {"voice": "1"}, 415, "Una nota de voz tiene que ser un audio"),
        ([("vacio.jpg", b"", "image/jpeg")], {}, 400, "«vacio.jpg» está vacío."),
        ([], {}, 400, "Elige una foto, un PDF o un audio"),
        ([(f"f{i}.jpg", b"\xff\xd8\xff", "image/jpeg") for i in range(11)], {}, 400, "hasta 10 archivos"),
        ([("a.jpg", b"\xff\xd8\xff", "image/jpeg")], {"caption": "x" * 1025}, 400, "WhatsApp permite hasta 1024"),
    ],
)
def test_what_whatsapp_would_not_take_is_refused_in_spanish(
        api: httpx.Client, db_pool: ConnectionPool, files: list[tuple[str, bytes, str]], form: dict[str, str],
        status: int, complaint: str) -> None:
    answer = send_files(api, files, **form)
    assert answer.status_code == status
    assert complaint in answer.json()["error"]
    assert rows(db_pool, "SELECT id FROM webhook_events") == []  # nothing was sent


def test_a_file_the_simulator_no_longer_keeps_is_gone(
        api: httpx.Client, worker_settings: Settings, redis_conn: redis.Redis, db_pool: ConnectionPool) -> None:
    send_files(api, [("foto.jpg", photo(), "image/jpeg")])
    for key in redis_conn.scan_iter(match="simulator:media:*"):  # an hour went by (or Redis was flushed)
        redis_conn.delete(key)
    run_jobs(worker_settings)
    [row] = media_rows(db_pool)
    assert (row["status"], row["last_error"]) == ("gone", "provider_404")


def test_without_public_base_url_the_worker_has_nowhere_to_ask(
        api: httpx.Client, settings: Settings, db_pool: ConnectionPool) -> None:
    send_files(api, [("foto.jpg", photo(), "image/jpeg")])
    run_jobs(settings)
    [row] = media_rows(db_pool)
    assert (row["status"], row["last_error"]) == ("gone", "no_provider")


# ---------- the page, in Chromium ----------


@pytest.mark.browser
def test_the_page_sends_a_photo_and_a_voice_note(served_app: str, worker_settings: Settings,
                                                 db_pool: ConnectionPool) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    from tests.browser import launch, screenshot

    def wait_with_worker(page: Page, selector: str, text: str | None = None) -> None:
        """Run queued jobs until `selector` (with `text`) shows up: the page polls every 700 ms, no reload."""
        target = page.locator(selector, has_text=text) if text else page.locator(selector)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run_jobs(worker_settings)
            try:
                expect(target.first).to_be_visible(timeout=500)
                return
            except AssertionError:
                continue
        expect(target.first).to_be_visible(timeout=1)

    from tests.test_photo_codes import receipt_photo

    picture = receipt_photo(fmt="JPEG", quality=88, rotate=2)  # docs/simulator-media.png: its code is read too
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 400, "height": 1180}, device_scale_factor=1)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(served_app + "/simulator")
            expect(page.locator("#attach-toggle")).to_have_attribute("aria-label", "Adjuntar foto, PDF o audio")
            page.fill("#name", "Carla")
            page.set_input_files("#file-pick", files=[{"name": "recibo.jpg", "mimeType": "image/jpeg",
                                                       "buffer": picture}])
            expect(page.locator("#attach-panel")).to_be_visible()
            expect(page.locator("#attach-list li")).to_have_text(["recibo.jpg"])
            page.fill("#attach-caption", "este es mi recibo")
            with page.expect_response("**/simulator/api/media") as sent:
                page.click("#attach-send")
            assert sent.value.status == 200
            expect(page.locator("#attach-panel")).to_be_hidden()

            wait_with_worker(page, ".row.bot .text", "Recibí tu imagen")
            mine = page.locator(".row.me:not(.pending)").first
            expect(mine.locator(".text")).to_have_text("este es mi recibo")
            expect(mine.locator("img.photo")).to_be_visible()
            assert mine.locator("img.photo").evaluate("img => img.complete && img.naturalWidth") > 800
            [row] = media_rows(db_pool)
            assert row["status"] == "stored"
            assert open_store(worker_settings).get(row["tenant_id"], row["storage_key"]) == picture

            page.set_input_files("#voice-pick", files=[{"name": "nota.ogg", "mimeType": "audio/ogg",
                                                        "buffer": OGG}])
            wait_with_worker(page, ".row.bot .text", "no puedo escuchar audios")
            voice = page.locator(".row.me:not(.pending)").last
            expect(voice.locator(".file-label")).to_have_text("🎤 Nota de voz")
            expect(voice.locator("audio")).to_have_count(1)
            page.locator("#chat").evaluate("chat => { chat.scrollTop = chat.scrollHeight; }")
            screenshot(page, "simulator-media.png")
            assert errors == []
        finally:
            browser.close()


@pytest.mark.browser
def test_a_voice_note_recorded_in_the_page(served_app: str, worker_settings: Settings,
                                           db_pool: ConnectionPool) -> None:
    """Chromium's fake microphone (a beep): recorded with MediaRecorder, sent as a voice note, downloaded."""
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, launch

    with sync_playwright() as pw:
        launch(pw).close()  # fails with the fix when Chromium is missing
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844})
            context.grant_permissions(["microphone"], origin=served_app)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(served_app + "/simulator")
            page.click("#voice-toggle")
            expect(page.locator("#voice-panel")).to_be_visible()
            page.click("#voice-record")
            expect(page.locator("#voice-status")).to_contain_text("Grabando", timeout=5000)
            page.wait_for_timeout(1500)
            with page.expect_response("**/simulator/api/media") as sent:
                page.click("#voice-record")  # "Detener y enviar"
            assert sent.value.status == 200, sent.value.text()
            expect(page.locator("#voice-panel")).to_be_hidden()

            run_jobs(worker_settings)  # the webhook was posted before the API answered
            [row] = media_rows(db_pool)
            assert (row["status"], row["media_type"], row["voice"]) == ("stored", "audio", True)
            assert row["mime"] in ("audio/mp4", "audio/ogg", "audio/webm") and row["size_bytes"] > 1000
            expect(page.locator(".row.bot .text", has_text="no puedo escuchar audios")).to_be_visible(timeout=10000)
            expect(page.locator(".row.me:not(.pending) .file-label")).to_have_text("🎤 Nota de voz")
            assert errors == []
        finally:
            browser.close()


def test_the_terminal_chat_sends_files(served_app: str, worker_settings: Settings, tmp_path: Path) -> None:
    """scripts/chat.py: /file PATH[,PATH] [comment] and /voice PATH through the same API."""
    (tmp_path / "recibo.jpg").write_bytes(photo())
    (tmp_path / "nota.ogg").write_bytes(OGG)
    (tmp_path / "in.txt").write_text(f"/file {tmp_path}/recibo.jpg mi recibo\n/voice {tmp_path}/nota.ogg\n"
                                     "/file /no/such/file.jpg\n", encoding="utf-8")
    command = [sys.executable, str(ROOT / "scripts" / "chat.py"), "--from", PHONE, "--url", served_app, "--wait", "8"]
    with (tmp_path / "in.txt").open("rb") as stdin, (tmp_path / "out.txt").open("wb") as stdout, \
            (tmp_path / "err.txt").open("wb") as stderr:
        proc = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr)  # noqa: S603 - our own script
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            run_jobs(worker_settings)
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    out = (tmp_path / "out.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text(encoding="utf-8")
    assert "tú: 📷 foto mi recibo" in out and "Recibí tu imagen" in out
    assert "tú: 🎤 nota de voz" in out and "no puedo escuchar audios" in out
    assert "no such file: /no/such/file.jpg" in out
