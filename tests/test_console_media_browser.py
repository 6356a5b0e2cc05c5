"""Files in the console, in a real Chromium: the customer's photo, whose first download fails, shows as
"Descargando…" with the reason, then inline through our signed link as soon as the retry stores it (the live
stream), and opens in the lightbox; the voice note has its player and transcript, a failed download says why
in Spanish, and the agent attaches a photo that reaches Meta (fake Graph API: upload + image message) and
the customer's phone in the simulator, and shows in the conversation.

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
from runtime.resources import build_runtime
from storage import media
from tests.browser import launch, screenshot
from tests.console_media_support import OGG, box_photo, media_row, png, send_media
from tests.console_support import TUESDAY_10AM, Customer, log_in, make_agent
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import run_jobs
from tests.harness import served as harness_served
from worker import media_job

TRANSCRIPT = "¿Ya llegó lo que me mandaron de San Miguel? Es una caja mediana."


@pytest.fixture
def settings(base_env: dict[str, str], graph: FakeGraphAPI, core_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "MEDIA_STORE_URL": f"file:{tmp_path / 'media'}",
                              "WHATSAPP_PROVIDER": "meta", "META_ACCESS_TOKEN": GRAPH_TOKEN,
                              "META_GRAPH_BASE_URL": graph.url})


def time_passes(settings: Settings, pool: ConnectionPool) -> None:
    """A download's back-off is over: the scheduler's recovery loop queues it again, a burst worker runs it."""
    with pool.connection() as conn:
        conn.execute("UPDATE media SET next_attempt_at = now() - interval '1 hour' WHERE status = 'pending'")
    rt = build_runtime(settings, pool_size=1)
    try:
        media_job.recover_downloads(rt)
    finally:
        rt.close()
    run_jobs(settings)


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


@pytest.mark.browser
def test_an_agent_sees_hears_and_sends_files_in_chromium(served: tuple[Flask, str], settings: Settings,
                                                         db_pool: ConnectionPool, graph: FakeGraphAPI) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url = served
    client = app.test_client()
    maria = Customer(client, settings, db_pool)
    case_id = maria.escalate("mi paquete llegó dañado, quiero poner un reclamo")
    later = TUESDAY_10AM + timedelta(minutes=1)
    graph.media.add("7002", OGG, "audio/ogg")
    voice = send_media(client, "audio", {"id": "7002", "mime_type": "audio/ogg; codecs=opus", "voice": True},
                       at=later + timedelta(minutes=1))
    receipt = send_media(client, "document", {"id": "7003", "mime_type": "application/pdf",
                                              "filename": "factura.pdf"}, at=later + timedelta(minutes=2))
    run_jobs(settings)
    voice_id = int(media_row(db_pool, voice)["id"])
    assert media_row(db_pool, voice)["status"] == "stored"
    with db_pool.connection() as conn:
        media.set_transcript(conn, voice_id, TRANSCRIPT, 0.87, "done")
        conn.execute("UPDATE media SET attempts = 6 WHERE id = %s", (media_row(db_pool, receipt)["id"],))
        media.mark_failed(conn, int(media_row(db_pool, receipt)["id"]), "provider_5xx")
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500}, timezone_id="America/El_Salvador")
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(page, base_url, "carlos@example.com")
            page.goto(f"{base_url}/console/cases/{case_id}")

            # A photo whose first download fails: the agent reads so, then sees it once the retry stores it.
            graph.media.add("7001", box_photo(), "image/png", failures=1)
            photo = send_media(client, "image", {"id": "7001", "mime_type": "image/png",
                                                 "caption": "así llegó la caja 😡"}, at=later + timedelta(minutes=3))
            run_jobs(settings)
            waiting = page.locator(f'.media-item[data-media-id="{media_row(db_pool, photo)["id"]}"]')
            expect(waiting).to_contain_text("Descargando… (falló un intento: WhatsApp no respondió bien",
                                            timeout=10_000)
            time_passes(settings, db_pool)
            picture = page.locator(".msg.in .media-thumb img")
            expect(picture).to_have_count(1, timeout=10_000)  # the live stream's "media" event, no reload
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

            page.evaluate("window.__voice = document.querySelector('.media-audio')")
            page.click("#claim")
            expect(page.locator("#case-status")).to_have_text("Lo tienes tú")
            # the transcript was drawn again: the voice note's player is the same one (a playing note goes on)
            assert page.evaluate("document.querySelector('.media-audio') === window.__voice")
            sent_photo = png(200, 140, (40, 90, 160))
            page.set_input_files("#file-input", files=[{"name": "guia-devolucion.png", "mimeType": "image/png",
                                                        "buffer": sent_photo}])
            expect(page.locator("#file-name")).to_have_text("guia-devolucion.png")
            # typed in the reply box and sent with "Enviar", as with a text: the file goes, the text its caption
            page.fill("#reply-text", "Esta es la guía para la devolución")
            page.locator("#reply-form button[type=submit]").click()
            sent = page.locator(".msg.agent", has_text="Esta es la guía para la devolución")
            expect(sent.locator(".media-thumb img")).to_have_count(1, timeout=10_000)
            run_jobs(settings)  # uploaded to Meta, then sent as an image message
            expect(sent.locator(".delivery")).to_have_text("aceptado", timeout=10_000)
            (upload,) = graph.uploads
            assert upload.data == sent_photo and upload.mime == "image/png"
            assert [b["image"] for b in graph.messages_to(maria.phone) if b["type"] == "image"] == [
                {"id": upload.id, "caption": "Esta es la guía para la devolución"}]
            # ... and the customer's phone in the simulator shows the picture
            on_phone = httpx.get(base_url + "/simulator/api/messages", params={"phone": maria.phone}).json()
            (shown,) = [m for m in on_phone["messages"] if m["kind"] == "media" and m["direction"] == "out"]
            assert shown["file_type"] == "image" and shown["file_name"] == "guia-devolucion.png"
            assert httpx.get(base_url + shown["file_url"]).content == sent_photo
            page.evaluate("""() => {
                const list = document.getElementById('transcript');
                const photo = document.querySelector('.msg.in .media-audio').closest('.msg');
                list.scrollTop = photo.offsetTop - list.offsetTop - 8;
                window.scrollTo(0, 0);
            }""")
            screenshot(page, "console-media.png")
            assert errors == []
        finally:
            browser.close()
