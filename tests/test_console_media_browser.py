"""Files in the console, in a real Chromium: the customer's photo shows inline through our signed link and
opens in the lightbox, the voice note has its player and transcript, a failed download says why in Spanish,
and the agent attaches a photo that reaches the customer (local transport) and shows in the conversation.

The app runs on a real threaded server on loopback; the customer writes through the signed webhook and jobs
run with a burst worker in this process. docs/console-media.png is written when missing or with
UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from flask import Flask
from psycopg_pool import ConnectionPool

from config import Settings
from storage import media
from tests.browser import launch, screenshot
from tests.console_media_support import OGG, box_photo, media_row, png, send_media, store_downloaded
from tests.console_support import TUESDAY_10AM, Customer, log_in, make_agent
from tests.harness import rows, run_jobs
from tests.harness import served as harness_served

TRANSCRIPT = "¿Ya llegó lo que me mandaron de San Miguel? Es una caja mediana."


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url,
                              "MEDIA_STORE_URL": f"file:{tmp_path / 'media'}"})


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


@pytest.mark.browser
def test_an_agent_sees_hears_and_sends_files_in_chromium(served: tuple[Flask, str], settings: Settings,
                                                         db_pool: ConnectionPool) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url = served
    client = app.test_client()
    maria = Customer(client, settings, db_pool)
    case_id = maria.escalate("mi paquete llegó dañado, quiero poner un reclamo")
    later = TUESDAY_10AM + timedelta(minutes=1)
    photo = send_media(client, "image", {"id": "7001", "mime_type": "image/png", "caption": "así llegó la caja 😡"},
                       at=later)
    voice = send_media(client, "audio", {"id": "7002", "mime_type": "audio/ogg; codecs=opus", "voice": True},
                       at=later + timedelta(minutes=1))
    receipt = send_media(client, "document", {"id": "7003", "mime_type": "application/pdf",
                                              "filename": "factura.pdf"}, at=later + timedelta(minutes=2))
    run_jobs(settings)
    store_downloaded(settings, db_pool, int(media_row(db_pool, photo)["id"]), box_photo(), "image/png")
    voice_id = int(media_row(db_pool, voice)["id"])
    store_downloaded(settings, db_pool, voice_id, OGG, "audio/ogg")
    with db_pool.connection() as conn:
        media.set_transcript(conn, voice_id, TRANSCRIPT, 0.87, "done")
        conn.execute("UPDATE media SET attempts = 6 WHERE id = %s", (media_row(db_pool, receipt)["id"],))
        media.mark_failed(conn, int(media_row(db_pool, receipt)["id"]), "provider_5xx")
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(page, base_url, "carlos@example.com")
            page.goto(f"{base_url}/console/cases/{case_id}")

            picture = page.locator(".msg.in .media-thumb img")
            expect(picture).to_have_count(1)
            expect(page.locator(".msg.in", has=page.locator(".media-thumb"))).to_contain_text("así llegó la caja")
            page.wait_for_function("() => document.querySelector('.media-thumb img').naturalWidth === 360")
            picture.click()
            lightbox = page.locator("#lightbox")
            expect(lightbox).to_be_visible()
            expect(lightbox.locator("img")).to_have_attribute("src", picture.get_attribute("src") or "")
            page.keyboard.press("Escape")
            expect(lightbox).to_be_hidden()

            expect(page.locator(".media-audio audio")).to_have_count(1)
            transcript = page.locator(".media-audio .media-transcript")
            expect(transcript).to_contain_text("Transcripción (confianza 87 %)")
            expect(transcript).to_contain_text(TRANSCRIPT)
            expect(page.locator(".media-failed .media-status")).to_contain_text(
                "No se pudo descargar (WhatsApp no respondió bien)")
            html = page.content()
            assert "7001" not in html and "7002" not in html  # Meta's media ids never reach the page

            page.click("#claim")
            expect(page.locator("#case-status")).to_have_text("Lo tienes tú")
            sent_photo = png(200, 140, (40, 90, 160))
            page.set_input_files("#file-input", files=[{"name": "guia-devolucion.png", "mimeType": "image/png",
                                                        "buffer": sent_photo}])
            expect(page.locator("#file-name")).to_have_text("guia-devolucion.png")
            page.fill("#file-caption", "Esta es la guía para la devolución")
            page.click("#file-send")
            sent = page.locator(".msg.agent", has_text="Esta es la guía para la devolución")
            expect(sent.locator(".media-thumb img")).to_have_count(1, timeout=10_000)
            run_jobs(settings)  # the local transport delivers it
            expect(sent.locator(".delivery")).to_have_text("entregado ✓✓", timeout=10_000)
            assert rows(db_pool, "SELECT status FROM messages WHERE kind = 'media' AND direction = 'out'") == [
                {"status": "delivered"}]
            # ... and the customer's phone in the simulator shows the picture
            on_phone = httpx.get(base_url + "/simulator/api/messages", params={"phone": maria.phone}).json()
            (shown,) = [m for m in on_phone["messages"] if m["kind"] == "media" and m["direction"] == "out"]
            assert shown["file_type"] == "image" and shown["file_name"] == "guia-devolucion.png"
            assert httpx.get(base_url + shown["file_url"]).content == sent_photo
            page.evaluate("""() => {
                const list = document.getElementById('transcript');
                const photo = document.querySelector('.msg.in .media-thumb').closest('.msg');
                list.scrollTop = photo.offsetTop - list.offsetTop - 8;
                window.scrollTo(0, 0);
            }""")
            screenshot(page, "console-media.png")
            assert errors == []
        finally:
            browser.close()
