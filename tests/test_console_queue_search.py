"""The team console in a real Chromium: the queue's order and why each case is where it is, a supervisor
assigning a case (the agent sees it arrive live), tags, a search for a closed case by phone, and the queue and
search pages on a 390 px wide phone. The app runs on a real threaded server on loopback; customers write
through the signed webhook and jobs run with a burst worker in this process.

Screenshots go to docs/ (console-queue.png, console-search.png, console-queue-phone.png) when missing or with
UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from psycopg_pool import ConnectionPool

from config import Settings
from tests.browser import launch, screenshot
from tests.console_support import Customer, log_in, make_agent
from tests.harness import rows
from tests.harness import served as harness_served

PHONE: Any = {"width": 390, "height": 844}  # playwright's ViewportSize
DESKTOP: Any = {"width": 1280, "height": 800}


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "CONSOLE_SLA_NORMAL_S": "300",
                              "CONSOLE_SLA_HIGH_S": "120", "CONSOLE_MAX_STREAMS": "20"})


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


def number(pool: ConnectionPool, case_id: int) -> str:
    return str(rows(pool, "SELECT case_number FROM escalations WHERE id = %s", (case_id,))[0]["case_number"])


def waiting_cases(app: Flask, settings: Settings, pool: ConnectionPool) -> list[int]:
    """Three waiting cases: a normal one past its target, a fresh high-priority one, a fresh normal one."""
    people = [Customer(app.test_client(), settings, pool, phone=f"+5037000003{i}", name=n)
              for i, n in enumerate(("Rosa Alvarado", "Mario Hernández", "Lucía Campos"))]
    overdue = people[0].escalate("quiero hablar con una persona")
    high = people[1].escalate("mi paquete llegó dañado, quiero poner un reclamo")
    fresh = people[2].escalate("quiero hablar con un asesor por favor")
    now = datetime.now(UTC)
    with pool.connection() as conn:
        for case_id, ago in ((overdue, timedelta(minutes=25, seconds=10)), (high, timedelta(seconds=20)),
                             (fresh, timedelta(minutes=2))):
            conn.execute("UPDATE escalations SET created_at = %s WHERE id = %s", (now - ago, case_id))
    return [overdue, high, fresh]


@pytest.mark.browser
def test_queue_order_assigning_and_tagging_in_chromium(served: tuple[Flask, str], settings: Settings,
                                                       db_pool: ConnectionPool) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url = served
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    overdue, high, fresh = waiting_cases(app, settings, db_pool)
    with db_pool.connection() as conn:
        conn.execute("INSERT INTO case_tags (tenant_id, escalation_id, tag, tag_key) VALUES (1, %s, 'vip', 'vip')",
                     (high,))

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            ana = browser.new_context(viewport=DESKTOP).new_page()
            carlos = browser.new_context(viewport=DESKTOP).new_page()
            errors: list[str] = []
            for page in (ana, carlos):
                page.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(ana, base_url, "ana@example.com")
            log_in(carlos, base_url, "carlos@example.com")

            # The queue: past its target first (and it says so), then high priority, then the longest waiting.
            ranked = ana.locator("tr.case-row")
            expect(ranked).to_have_count(3)
            assert [int(r.get_attribute("data-case-id") or 0) for r in ranked.all()] == [overdue, high, fresh]
            expect(ranked.nth(0).locator(".why")).to_have_text("⚠ Fuera de tiempo · 25 min esperando")
            expect(ranked.nth(1).locator(".why")).to_contain_text("Prioridad alta · menos de 1 min esperando")
            expect(ranked.nth(1).locator(".tag")).to_have_text(["vip"])
            expect(ranked.nth(2).locator(".why")).to_contain_text("2 min esperando · quedan")
            assert ranked.nth(0).evaluate("r => getComputedStyle(r.querySelector('.why')).color") == "rgb(179, 38, 30)"
            screenshot(ana, "console-queue.png")

            # Carlos looks at his own cases: none yet.
            carlos.goto(base_url + "/console?status=mine")
            expect(carlos.locator("tr.empty")).to_have_text("No hay casos en la cola.")

            # Ana tags the late case and assigns it to Carlos from the case page.
            ana.locator(f'tr.case-row[data-case-id="{overdue}"] a.button').click()
            expect(ana.locator("#assignee")).to_have_text("Nadie lo tiene todavía.")
            ana.fill("#tag-text", "  #Daño ")
            ana.click("#tag-form button")
            expect(ana.locator("#case-tags li")).to_have_count(1)
            expect(ana.locator("#case-tags li").first).to_contain_text("daño")
            ana.fill("#tag-text", "VIP")
            ana.keyboard.press("Enter")
            expect(ana.locator("#case-tags li")).to_have_count(2)
            ana.click('#case-tags button[data-tag="vip"]')
            expect(ana.locator("#case-tags li")).to_have_count(1)
            ana.fill("#tag-text", "a/b")
            ana.click("#tag-form button")
            expect(ana.locator("#team-error")).to_have_text("Usa solo letras, números y guiones en la etiqueta.")

            ana.select_option("#assign-to", label="Carlos Rivas")
            ana.click("#assign")
            expect(ana.locator("#assignee")).to_have_text("Lo tiene Carlos Rivas.")
            expect(ana.locator("#assign")).to_have_text("Reasignar")
            expect(ana.locator("#team-error")).to_be_hidden()

            # Carlos's "Míos" shows it at once, with its tag, and tells him who gave it to him.
            mine = carlos.locator(f'tr.case-row[data-case-id="{overdue}"]')
            expect(mine).to_have_count(1, timeout=10_000)
            expect(mine.locator(".tag")).to_have_text(["daño"])
            expect(mine.locator(".status")).to_have_text("Atendido por Carlos Rivas")
            expect(carlos.locator("#queue-notice")).to_have_text(
                f"Ana Martínez te asignó el caso {number(db_pool, overdue)}.")
            # The greeting in his name was his first response: the case is no longer late.
            expect(mine.locator(".why")).to_contain_text("Respondido en 25 min · fuera de tiempo")

            # Carlos, now holding it, hands it on to a colleague (here Ana, the only other agent).
            carlos.locator(f'tr.case-row[data-case-id="{overdue}"] a.button').click()
            expect(carlos.locator("#assign")).to_have_text("Pasar el caso")
            carlos.select_option("#assign-to", label="Ana Martínez")
            carlos.click("#assign")
            expect(carlos.locator("#assignee")).to_have_text("Lo tiene Ana Martínez.")
            expect(carlos.locator("#assign-form")).to_be_hidden()  # no longer his to give

            # An agent cannot assign a case nobody has.
            carlos.goto(base_url + f"/console/cases/{fresh}")
            expect(carlos.locator("#assignee")).to_have_text("Nadie lo tiene todavía.")
            expect(carlos.locator("#assign-form")).to_be_hidden()

            ana.goto(base_url + "/console")
            expect(ana.locator("tr.case-row")).to_have_count(3)
            expect(ana.locator(f'tr.case-row[data-case-id="{overdue}"] .tag')).to_have_text(["daño"])
            assert errors == []
        finally:
            browser.close()


@pytest.mark.browser
def test_searching_a_closed_case_and_the_pages_on_a_phone(served: tuple[Flask, str], settings: Settings,
                                                          db_pool: ConnectionPool) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url = served
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    cases = waiting_cases(app, settings, db_pool)
    maria = Customer(app.test_client(), settings, db_pool)
    closed = maria.escalate("no encuentro mi paquete SV20260105007834, quiero hablar con una persona")
    with db_pool.connection() as conn:
        conn.execute("UPDATE escalations SET status = 'resolved', resolved_at = now(), resolution_reason = 'listo'"
                     " WHERE id = %s", (closed,))
        conn.execute("INSERT INTO case_tags (tenant_id, escalation_id, tag, tag_key) VALUES (1, %s, 'reembolso',"
                     " 'reembolso'), (1, %s, 'vip', 'vip')", (closed, cases[0]))

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport=DESKTOP).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(page, base_url, "ana@example.com")
            page.click("text=Buscar")
            expect(page).to_have_url(base_url + "/console/search")
            page.fill("#search-q", "+503 7000-0002")
            page.keyboard.press("Enter")
            expect(page.locator("#search-count")).to_have_text("1 caso encontrado")
            result = page.locator("li.result")
            expect(result.locator(".number")).to_have_text(number(db_pool, closed))
            expect(result.locator(".customer")).to_have_text("María López")
            expect(result.locator(".status")).to_have_text("Resuelto")
            expect(result.locator(".tag")).to_have_text(["reembolso"])
            page.fill("#search-q", "paquete")
            page.select_option("select[name=status]", "resolved")
            page.click("#search-form button[type=submit]")
            expect(page.locator("li.result .snippet")).to_contain_text("SV20260105007834")
            screenshot(page, "console-search.png")
            page.locator("li.result a").click()
            expect(page).to_have_url(base_url + f"/console/cases/{closed}")
            expect(page.locator("#case-tags li")).to_have_count(1)

            # A support lead on the bus: the same pages at 390 px, no sideways scrolling, thumb-sized targets.
            phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
            phone.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(phone, base_url, "ana@example.com")
            expect(phone.locator("tr.case-row")).to_have_count(3)
            expect(phone.locator("tr.case-row").first.locator(".why")).to_contain_text("⚠ Fuera de tiempo")
            assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390
            for box in [b.bounding_box() for b in phone.locator("tr.case-row a.button").all()]:
                assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 390
            for link in phone.locator(".topbar nav a").all():
                box = link.bounding_box()
                assert box is not None and box["height"] >= 44, link.text_content()
            screenshot(phone, "console-queue-phone.png", full_page=True)

            phone.goto(base_url + "/console/search?q=maria")
            expect(phone.locator("li.result")).to_have_count(1)
            assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390
            box = phone.locator("li.result a").bounding_box()
            assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 390
            phone.select_option("select[name=status]", "open")
            phone.fill("#search-q", "")
            phone.locator("#search-form button[type=submit]").tap()
            expect(phone.locator("#search-count")).to_have_text("3 casos encontrados")
            assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390
            assert re.search(r"Página|casos encontrados", phone.content())
            assert errors == []
        finally:
            browser.close()
