"""The console in a real Chromium: an agent logs in, sees a new escalation appear live, claims it, replies
(the reply reaches the local WhatsApp transport), sees the customer's answer appear without reloading, and
resolves the case. The app runs on a real threaded server on loopback; the customer writes through the signed
webhook and jobs run with a burst worker in this process, which publishes the live events through Redis.

Screenshots of the queue and the conversation are written to docs/ when missing or with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from flask import Flask
from psycopg_pool import ConnectionPool

from channels.local_transport import LOCAL_OUTBOX_CHANNEL
from config import Settings
from tests.browser import launch, screenshot
from tests.console_support import PASSWORD, Customer, make_agent
from tests.harness import rows, run_jobs
from tests.harness import served as harness_served


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


@pytest.mark.browser
def test_an_agent_works_a_case_live_in_chromium(served: tuple[Flask, str], settings: Settings,
                                                db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url = served
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    client = app.test_client()
    maria = Customer(client, settings, db_pool)
    ana = Customer(client, settings, db_pool, phone="+50370000005", name="Ana Torres")
    ana.escalate("quiero hablar con una persona")  # already waiting when the agent logs in

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(base_url + "/console")
            expect(page).to_have_url(base_url + "/console/login?next=/console")
            page.fill("input[name=email]", "carlos@example.com")
            page.fill("input[name=password]", "not the password")
            page.click("button[type=submit]")
            expect(page.locator(".error")).to_have_text("Correo o contraseña incorrectos.")
            page.fill("input[name=email]", "carlos@example.com")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator(".who")).to_have_text("Carlos Rivas · agente")
            expect(page.locator("tr.case-row")).to_have_count(1)
            expect(page.locator("body[data-live=on]")).to_have_count(1)  # the event stream is open

            # A complaint arrives: it appears at the top of the queue without reloading, as high priority.
            maria.escalate("hola mi paquete esta perdido, ya van tres veces que voy y no esta ahi!!!")
            newest = rows(db_pool, "SELECT case_number FROM escalations ORDER BY id DESC LIMIT 1")
            case_number = newest[0]["case_number"]
            expect(page.locator("tr.case-row")).to_have_count(2, timeout=10_000)
            first = page.locator("tr.case-row").first
            expect(first).to_contain_text(case_number)
            expect(first).to_contain_text("Alta")
            expect(first).to_contain_text("presentó un reclamo")
            expect(first.locator(".why")).to_contain_text("quedan")
            screenshot(page, "console-queue.png")

            first.locator("a.button").click()
            expect(page.locator("#case-status")).to_have_text("Esperando un agente")
            expect(page.locator("#summary")).to_contain_text("María López presentó un reclamo")
            page.click("#claim")
            expect(page.locator("#case-status")).to_have_text("Lo tienes tú")
            expect(page.locator("#claim")).to_be_hidden()
            expect(page.locator("#takeover")).to_be_hidden()

            outbox = redis_conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            outbox.subscribe(LOCAL_OUTBOX_CHANNEL)
            page.fill("#reply-text", "Acabo de contactar al punto de La Unión: tu paquete sí está ahí.")
            page.keyboard.press("Enter")
            agent_message = page.locator(".msg.agent", has_text="tu paquete sí está ahí")
            expect(agent_message).to_be_visible()
            run_jobs(settings)  # the worker delivers the greeting and the reply through the local transport
            notices = _drain(outbox, 2)
            outbox.close()
            references = [n["reference"] for n in notices]
            assert any(r.startswith("console:") and ":reply:" in r for r in references), notices
            expect(agent_message.locator(".delivery")).to_have_text("entregado ✓✓", timeout=10_000)
            expect(page.locator(".msg.agent", has_text="soy Carlos del equipo de soporte")).to_be_visible()
            delivered = rows(db_pool, "SELECT body, status FROM messages WHERE agent_id IS NOT NULL ORDER BY id")
            assert [m["status"] for m in delivered] == ["delivered", "delivered"]
            # ... and the customer's phone in the simulator shows it
            on_phone = httpx.get(base_url + "/simulator/api/messages", params={"phone": maria.phone}).json()
            assert "Acabo de contactar al punto de La Unión: tu paquete sí está ahí." in [
                m["body"] for m in on_phone["messages"] if m["direction"] == "out"]

            # The customer answers: the message shows up live; the bot stays quiet.
            maria.send("ok le digo que vaya ahorita")
            expect(page.locator(".msg.in", has_text="ok le digo que vaya ahorita")).to_be_visible(timeout=10_000)
            expect(page.locator(".msg.bot", has_text="ok le digo")).to_have_count(0)

            page.fill("#note-text", "El paquete estaba en el área de cobros.")
            page.click("#note-form button")
            expect(page.locator("#notes li")).to_have_text(["Carlos Rivas: El paquete estaba en el área de cobros."])
            screenshot(page, "console-conversation.png")

            page.click("#open-resolve")
            page.fill("#resolve-reason", "Paquete mal ubicado en el punto; listo para entrega")
            page.click("#resolve-form button")
            expect(page.locator("#case-status")).to_have_text("Resuelto")
            expect(page.locator("#reply-form")).to_be_hidden()
            run_jobs(settings)
            expect(page.locator(".msg.agent", has_text="Del 1 al 10")).to_be_visible(timeout=10_000)
            maria.send("10")
            assert rows(db_pool, "SELECT csat_score FROM escalations WHERE case_number = %s",
                        (case_number,))[0]["csat_score"] == 10
            assert errors == []
        finally:
            browser.close()


def _drain(pubsub: redis.client.PubSub, count: int, timeout_s: float = 5.0) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            found.append(json.loads(message["data"]))
    return found


# Records what the page asks of the browser's Notification and AudioContext APIs (browser APIs, not ours).
ALERT_SPY = """
window.__alerts = [];
window.Notification = class { constructor(title, options) { window.__alerts.push(["notification", title]); }
  static get permission() { return "granted"; } static requestPermission() { return Promise.resolve("granted"); } };
const RealAudio = window.AudioContext;
window.AudioContext = class extends RealAudio {
  createOscillator() { window.__alerts.push(["sound"]); return super.createOscillator(); } };
"""


@pytest.mark.browser
def test_two_agents_stay_in_sync(served: tuple[Flask, str], settings: Settings, db_pool: ConnectionPool) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    app, base_url = served
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    maria = Customer(app.test_client(), settings, db_pool)

    def log_in(page: Page, email: str) -> None:
        page.goto(base_url + "/console/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("body[data-live=on]")).to_have_count(1)

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            carlos = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            ana = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            ana.add_init_script(ALERT_SPY)
            log_in(carlos, "carlos@example.com")
            log_in(ana, "ana@example.com")

            case_id = maria.escalate("mi paquete llegó dañado, quiero poner un reclamo")
            expect(ana.locator("tr.case-row")).to_have_count(1, timeout=10_000)
            alerts = ana.evaluate("window.__alerts")
            assert ["notification", "Nuevo caso de prioridad alta"] in alerts and ["sound"] in alerts

            ana.goto(f"{base_url}/console/cases/{case_id}")
            expect(ana.locator("#claim")).to_be_visible()
            carlos.goto(f"{base_url}/console/cases/{case_id}")
            carlos.click("#claim")
            # Ana's page learns at once who has it, and offers a deliberate take-over instead of claiming.
            expect(ana.locator("#case-status")).to_have_text("Atendido por Carlos Rivas", timeout=10_000)
            expect(ana.locator("#claim")).to_be_hidden()
            expect(ana.locator("#takeover")).to_have_text("Tomar el control (lo tiene Carlos Rivas)")
            expect(ana.locator("#reply-form")).to_be_hidden()

            carlos.type("#reply-text", "Estoy revisando")
            expect(ana.locator("#typing")).to_have_text("Carlos Rivas está escribiendo…", timeout=10_000)

            ana.once("dialog", lambda dialog: dialog.accept())
            ana.click("#takeover")
            expect(ana.locator("#case-status")).to_have_text("Lo tienes tú")
            expect(carlos.locator("#case-status")).to_have_text("Atendido por Ana Martínez", timeout=10_000)
            expect(carlos.locator("#reply-form")).to_be_hidden()
            history = rows(db_pool, "SELECT action FROM handoff_events WHERE escalation_id = %s ORDER BY id",
                           (case_id,))
            assert [h["action"] for h in history] == ["claim", "takeover"]
            expect(ana.locator("#history li").last).to_contain_text("Tomó el control del chat · Ana Martínez")
        finally:
            browser.close()
