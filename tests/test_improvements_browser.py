"""The "Mejoras" page in a real Chromium (issue 16): customers' unanswered questions (through the signed webhook and
the worker) grouped, an admin turning a group into an FAQ answer from the page, the history and "Deshacer", the
date range; a phone number in a message is never shown. Screenshot: docs/improvements.png."""

from __future__ import annotations

import pytest
from psycopg_pool import ConnectionPool

from config import Settings
from tests.browser import launch, screenshot
from tests.console_support import PASSWORD
from tests.harness import served
from tests.test_improvements import GUATEMALA, GUATEMALA_ANSWER, GUATEMALA_NEXT, NUMBER_A, Stack, ask
from tests.test_improvements import settings as settings  # noqa: F401 - the fixtures of the pipeline test
from tests.test_improvements import stack as stack  # noqa: F401

OTHERS = ("¿venden cajas de cartón?", "¿venden cajas?", "¿tienen bodega refrigerada?")
WITH_PHONE = "¿hacen envíos a Guatemala? mi número es 7000-0091"


@pytest.mark.browser
def test_the_admin_turns_a_group_into_an_answer_and_undoes_it_in_chromium(
        settings: Settings, stack: Stack, db_pool: ConnectionPool) -> None:  # noqa: F811 - pytest fixtures
    from playwright.sync_api import expect, sync_playwright

    for n, text in enumerate((*GUATEMALA, WITH_PHONE, *OTHERS)):
        ask(stack, NUMBER_A, text, f"+5037500000{n}")
    with served(settings) as (_app, base_url), sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/console/login")
            page.fill("input[name=email]", stack.a.admin.email)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Mejoras")
            expect(page.locator("h1")).to_contain_text("Mejoras")
            expect(page.locator("#total-now")).to_have_text(str(len(GUATEMALA) + 1 + len(OTHERS)))
            first = page.locator("article.improvement-group").first
            expect(first.locator(".group-counts .count")).to_have_text(f"{len(GUATEMALA) + 1} en este periodo")
            expect(first.locator(".group-counts .count")).to_have_attribute("title", "Mensajes de este grupo en el "
                                                                                       "periodo elegido.")
            expect(first.locator("ul.examples li")).to_have_count(5)
            expect(first).to_contain_text("mi número es •••")
            expect(page.locator("main")).not_to_contain_text("7000")  # the phone is masked everywhere
            expect(page.locator("article.improvement-group")).to_have_count(3)  # guatemala, cajas, bodega

            first.get_by_text("Agregar a preguntas frecuentes").click()
            form = first.locator("form.improvement-faq")
            expect(form.locator("input[name=keywords]")).to_have_value("guatemala, envios")
            form.locator("input[name=question]").fill("¿Envían paquetes a Guatemala?")
            form.get_by_role("button", name="Agregar pregunta").click()  # no answer yet: refused, nothing lost
            expect(page.locator(".error")).to_have_text("No se guardó: Escribe la respuesta que recibirá el cliente.")
            first = page.locator("article.improvement-group").first
            form = first.locator("form.improvement-faq")
            expect(first.locator("details").first).to_have_attribute("open", "")
            expect(form.locator("input[name=question]")).to_have_value("¿Envían paquetes a Guatemala?")
            form.locator("textarea[name=answer]").fill(GUATEMALA_ANSWER)
            form.get_by_role("button", name="Agregar pregunta").click()
            expect(page.locator(".flash")).to_contain_text("el asistente ya responde esa pregunta")
            row = page.locator("table.improvement-history tbody tr").first
            expect(row).to_contain_text("Alicia Admin")
            expect(row).to_contain_text("Pregunta frecuente «¿Envían paquetes a Guatemala?»")
            screenshot(page, "improvements.png", full_page=True)

            replies = ask(stack, NUMBER_A, GUATEMALA_NEXT, "+50375000099")  # the next customer gets the answer
            assert any(GUATEMALA_ANSWER in r for r in replies), replies

            row.get_by_role("button", name="Deshacer").click()
            expect(page.locator(".flash")).to_contain_text("El asistente vuelve a responder como antes")
            expect(page.locator("table.improvement-history tbody tr").first).to_contain_text(
                "Deshecho por Alicia Admin")
            expect(page.locator("table.improvement-history tbody tr").first.get_by_role(
                "button", name="Deshacer")).to_have_count(0)

            page.fill("#improvements-range input[name=desde]", "2025-01-01")
            page.fill("#improvements-range input[name=hasta]", "2025-01-31")
            page.locator("#improvements-range").get_by_role("button", name="Ver").click()
            expect(page.locator("#no-groups")).to_be_visible()
            expect(page.locator("#total-now")).to_have_text("0")

            phone = browser.new_page(viewport={"width": 390, "height": 844})  # the admin on a phone
            phone.goto(base_url + "/console/login")
            phone.fill("input[name=email]", stack.a.admin.email)
            phone.fill("input[name=password]", PASSWORD)
            phone.click("button[type=submit]")
            phone.goto(base_url + "/console/improvements")
            wide = phone.evaluate("[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right"
                                  " > window.innerWidth + 1).map(e => e.tagName + '.' + e.className).slice(0, 8)")
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), wide
            assert not errors, errors
        finally:
            browser.close()
