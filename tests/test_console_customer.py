"""The case page in a real Chromium knows who the customer is: the customer panel (name, phone, own packages with
role and amount to collect, open and past cases), a call the customer asked for and its outcome, WhatsApp
formatting without any way in for markup, no internal ids anywhere, a lost claim shown at once, the core down,
and the page on a 390 px phone. The app runs on a real threaded server on loopback; the customer writes through
the signed webhook and a burst worker in this process, which publishes the live events through Redis.

Screenshots: docs/console-case-customer.png (desktop) and docs/console-case-phone.png (390 px), written when
missing or with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from psycopg_pool import ConnectionPool

from config import Settings
from tests.browser import launch, screenshot
from tests.console_support import Customer, log_in, make_agent
from tests.harness import rows, run_jobs
from tests.harness import served as harness_served
from web.app import create_app

CALLBACK = ("console:callback", "📞 Que me llamen")
# Stored ids that must never reach an agent's eyes: point ids, dialog states, history actions, reasons,
# statuses and message kinds.
INTERNAL_IDS = ("la_union", "santa_ana", "in_handoff", "wait_notice", "callback_requested", "customer_request",
                "awaiting_", "ARRIVED_AT_DESTINATION", "IN_TRANSIT", "[image]", "no_answer", "resolved")


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            yield browser
        finally:
            browser.close()


def add_rows(pool: ConnectionPool, case_id: int) -> None:
    """What an older bot version or another part may have stored: a bot message naming a point by its id, an
    image from the customer, and a waiting notice in the history."""
    with pool.connection() as conn:
        case: Any = conn.execute("SELECT tenant_id, conversation_id FROM escalations WHERE id = %s",
                                 (case_id,)).fetchone()
        assert case is not None
        conn.execute(
            "INSERT INTO messages (tenant_id, conversation_id, direction, channel, kind, body, status)"
            " VALUES (%(t)s, %(c)s, 'in', 'meta', 'image', NULL, 'received'),"
            "        (%(t)s, %(c)s, 'out', 'meta', 'text', 'Tu paquete te espera en *la_union* 📦', 'delivered')",
            {"t": case["tenant_id"], "c": case["conversation_id"]})
        conn.execute("INSERT INTO handoff_events (tenant_id, escalation_id, action, data)"
                     " VALUES (%s, %s, 'wait_notice', '{\"told\": true}')", (case["tenant_id"], case_id))


@pytest.mark.browser
def test_the_case_page_shows_who_the_customer_is_and_the_call_they_asked_for(
        served: tuple[Flask, str], settings: Settings, db_pool: ConnectionPool, chromium: Any) -> None:
    from playwright.sync_api import expect

    app, base_url = served
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    maria = Customer(app.test_client(), settings, db_pool)
    maria.send("SV20260105007834")  # the bot answers with *bold* lines
    maria.send("*<b>x</b>* <script>window.__hacked = 1; alert('xss')</script>")
    case_id = maria.escalate("quiero hablar con una persona")
    add_rows(db_pool, case_id)
    case_number = rows(db_pool, "SELECT case_number FROM escalations WHERE id = %s", (case_id,))[0]["case_number"]

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    log_in(page, base_url, "carlos@example.com")
    page.goto(f"{base_url}/console/cases/{case_id}")

    # Who the customer is: name, phone to call, her own packages with her role, status and amount, her cases.
    expect(page.locator("#customer-name")).to_have_text("María López")
    phone = page.locator("#customer-phone")
    expect(phone).to_have_text("+503 7000 0002")
    expect(phone).to_have_attribute("href", "tel:+50370000002")
    ready = page.locator("#customer-packages li[data-code=SV20260105007834]")
    expect(ready).to_contain_text("destinatario")
    expect(ready).to_contain_text("Listo para retirar · Santa Ana - Punto Principal")
    expect(ready).to_contain_text("$35.00 por cobrar al retirar")
    expect(page.locator("#customer-packages li[data-code=SV20260106012345]")).to_contain_text("En tránsito")
    expect(page.locator("#customer-cases li")).to_have_count(1)
    expect(page.locator("#customer-cases li.current")).to_contain_text(case_number)
    expect(page.locator("#customer-cases li.current")).to_contain_text("En espera · pidió hablar con una persona")

    # WhatsApp formatting is rendered, and nothing the customer wrote became markup.
    mine = page.locator(".msg.in .body", has_text="<script>")
    expect(mine.locator("strong")).to_have_text("<b>x</b>")
    expect(mine).to_contain_text("<script>window.__hacked = 1; alert('xss')</script>")
    assert page.locator("#transcript b, #transcript script, #transcript img").count() == 0
    assert page.evaluate("window.__hacked") is None and dialogs == []
    expect(page.locator(".msg.bot .body strong", has_text="Paquete encontrado")).to_be_visible()
    # ... and ids are never shown: the point has its name, the image is an image, the history is words.
    expect(page.locator(".msg.bot .body", has_text="Tu paquete te espera en")).to_have_text(
        "Tu paquete te espera en La Unión - Punto Centro 📦")
    expect(page.locator(".msg.bot .body strong", has_text="La Unión - Punto Centro")).to_be_visible()
    expect(page.locator(".msg.in .body", has_text="[imagen]")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Se le avisó al cliente que todos los asesores están ocupados")
    expect(page.locator("#facts")).to_contain_text("pasó la conversación a un agente")
    _assert_no_ids(page)

    # The customer presses "Que me llamen": the call to return appears without reloading.
    expect(page.locator("#callback")).to_be_hidden()
    maria.send(reply=CALLBACK)
    expect(page.locator("#callback")).to_be_visible(timeout=10_000)
    expect(page.locator("#callback-tel")).to_have_text("+503 7000 0002")
    expect(page.locator("#callback-tel")).to_have_attribute("href", "tel:+50370000002")
    expect(page.locator("#case-status")).to_have_text("Devolver llamada")
    expect(page.locator("#history li").last).to_contain_text("El cliente pidió que lo llamen")

    page.click("#open-called")
    expect(page.locator("#called-outcomes label")).to_have_text(
        ["Contestó y se resolvió", "No contestó", "Número equivocado", "Pidió que lo llamen después"])
    page.get_by_label("No contestó").check()
    page.fill("#called-note", "Sonó cinco veces, buzón lleno")
    page.click("#called-form button[type=submit]")
    expect(page.locator("#history li").last).to_contain_text(
        "Llamó al cliente: No contestó — «Sonó cinco veces, buzón lleno» · Carlos Rivas")
    expect(page.locator("#called-form")).to_be_hidden()
    expect(page.locator("#callback")).to_be_visible()  # the case stays open, the call still to do
    expect(page.locator("#case-status")).to_have_text("Devolver llamada")
    run_jobs(settings)
    assert maria.received()[-1].startswith("Te llamamos hace un momento y no pudimos comunicarnos 📞")
    expect(page.locator(".msg.agent", has_text="no pudimos comunicarnos")).to_be_visible(timeout=10_000)
    _assert_no_ids(page)

    page.click("#open-called")
    page.evaluate("""() => {
      const transcript = document.getElementById('transcript');
      const shown = [...transcript.querySelectorAll('.msg.in')].find((m) => m.textContent.includes('<script>'));
      transcript.scrollTop = shown.offsetTop - transcript.offsetTop - 8;
    }""")
    screenshot(page, "console-case-customer.png")
    page.get_by_label("Contestó y se resolvió").check()
    page.click("#called-form button[type=submit]")
    expect(page.locator("#case-status")).to_have_text("Resuelto")
    expect(page.locator("#callback")).to_be_hidden()
    expect(page.locator("#history li").last).to_contain_text("Llamó al cliente: Contestó y se resolvió · Carlos Rivas")
    expect(page.locator("#customer-cases li.current")).to_contain_text("Resuelto")
    called = rows(db_pool, "SELECT data FROM handoff_events WHERE action = 'called' ORDER BY id")
    assert [c["data"]["outcome"] for c in called] == ["no_answer", "resolved"]
    assert errors == []


def _assert_no_ids(page: Any) -> None:
    shown = page.locator("main").inner_text()
    for internal in INTERNAL_IDS:
        assert internal not in shown, f"{internal!r} is shown to the agent"


@pytest.mark.browser
def test_a_lost_claim_updates_the_page_at_once(served: tuple[Flask, str], settings: Settings,
                                              db_pool: ConnectionPool, chromium: Any) -> None:
    from playwright.sync_api import expect

    app, base_url = served
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Martínez", "ana@example.com")
    make_agent(db_pool, "Luis Gómez", "luis@example.com")
    case_id = Customer(app.test_client(), settings, db_pool).escalate()

    def agent_page(email: str) -> Any:
        page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
        log_in(page, base_url, email)
        return page

    carlos, ana, luis = agent_page("carlos@example.com"), agent_page("ana@example.com"), agent_page("luis@example.com")
    ana.goto(f"{base_url}/console/cases/{case_id}")
    # Luis's page hears no live events (a flaky connection): it learns only when he acts.
    luis.route("**/console/api/events", lambda route: route.abort())
    luis.goto(f"{base_url}/console/cases/{case_id}")
    for page in (ana, luis):
        expect(page.locator("#claim")).to_be_visible()
        page.evaluate("window.__loadedOnce = true")
    carlos.goto(f"{base_url}/console/cases/{case_id}")
    carlos.click("#claim")
    expect(carlos.locator("#case-status")).to_have_text("Lo tienes tú")

    # Ana was looking at it: she is told at once, and her buttons change, without a reload.
    expect(ana.locator("#case-notice")).to_have_text("Este caso ya lo tomó Carlos Rivas.", timeout=10_000)
    expect(ana.locator("#claim")).to_be_hidden()
    expect(ana.locator("#takeover")).to_have_text("Tomar el control (lo tiene Carlos Rivas)")
    expect(ana.locator("#case-status")).to_have_text("Atendido por Carlos Rivas")
    assert ana.evaluate("window.__loadedOnce") is True

    # Luis still sees "Tomar el chat"; his click loses, and the page says why and changes the same way.
    expect(luis.locator("#claim")).to_be_visible()
    luis.click("#claim")
    expect(luis.locator("#case-notice")).to_have_text("Este caso ya lo tomó Carlos Rivas.")
    expect(luis.locator("#claim")).to_be_hidden()
    expect(luis.locator("#takeover")).to_be_visible()
    expect(luis.locator("#action-error")).to_be_hidden()  # said once, not twice
    assert luis.evaluate("window.__loadedOnce") is True
    assert rows(db_pool, "SELECT count(*) AS n FROM handoff_events WHERE action = 'claim'")[0]["n"] == 1


@pytest.mark.browser
def test_the_case_page_on_a_390_px_phone(served: tuple[Flask, str], settings: Settings, db_pool: ConnectionPool,
                                         chromium: Any) -> None:
    from playwright.sync_api import expect

    app, base_url = served
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    with db_pool.connection() as conn:  # this company hides customers' phones from the agent role
        conn.execute("UPDATE tenants SET mask_phones_for_agents = true")
    maria = Customer(app.test_client(), settings, db_pool)
    maria.send("SV20260105007834")
    case_id = maria.escalate("hola, mi paquete está *dañado* y quiero hablar con alguien")

    context = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                   has_touch=True)
    page = context.new_page()
    log_in(page, base_url, "carlos@example.com")
    page.goto(f"{base_url}/console/cases/{case_id}")
    expect(page.locator("#customer-phone")).to_have_text("+503 7••• ••02")
    assert page.locator("#customer-phone").get_attribute("href") is None
    assert "7000 0002" not in page.content() and "70000002" not in page.content()
    page.click("#claim")
    expect(page.locator("#case-status")).to_have_text("Lo tienes tú")
    expect(page.locator("#reply-form")).to_be_visible()

    # No horizontal scroll, and the customer panel sits under the conversation, full width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.body.scrollWidth") <= 390
    conversation = page.locator("section.conversation").bounding_box()
    panel = page.locator("#customer").bounding_box()
    assert conversation is not None and panel is not None
    assert panel["y"] >= conversation["y"] + conversation["height"]
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= 390
    for selector in ("#reply-text", "#send", "#hand-back", "#open-resolve", "#customer-packages li >> nth=0"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
    expect(page.locator("#customer-packages li[data-code=SV20260105007834]")).to_contain_text("$35.00")
    expect(page.locator("header .who")).to_have_text("Carlos Rivas · agente")  # the role in words too
    assert "agent" not in page.locator("header").inner_text().replace("agente", "")
    screenshot(page, "console-case-phone.png", clip_to="#customer")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.browser
def test_with_the_core_down_the_panel_says_so_and_the_agent_still_works(base_env: dict[str, str], settings: Settings,
                                                                        db_pool: ConnectionPool,
                                                                        chromium: Any) -> None:
    from playwright.sync_api import expect

    customer_app = create_app(settings)
    try:
        case_id = Customer(customer_app.test_client(), settings, db_pool).escalate()
    finally:
        customer_app.extensions["db_pool"].close()
        customer_app.extensions["redis"].close()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    down = Settings.from_env({**base_env, "CORE_API_URL": f"http://127.0.0.1:{_closed_port()}"})
    with harness_served(down) as (_, base_url):
        page = chromium.new_page(viewport={"width": 1280, "height": 800})
        log_in(page, base_url, "carlos@example.com")
        page.goto(f"{base_url}/console/cases/{case_id}")
        expect(page.locator("#customer-packages-notice")).to_have_text(
            "No pudimos consultar los paquetes en este momento: el sistema de paquetes no responde. "
            "Intenta de nuevo en unos minutos.")
        expect(page.locator("#customer-packages li")).to_have_count(0)
        expect(page.locator("#customer-name")).to_have_text("María López")
        page.click("#claim")
        expect(page.locator("#case-status")).to_have_text("Lo tienes tú")
        page.fill("#reply-text", "Hola María, el sistema de paquetes está lento; ya reviso tu caso.")
        page.keyboard.press("Enter")
        expect(page.locator(".msg.agent", has_text="ya reviso tu caso")).to_be_visible()
