"""The monthly report in a real Chromium: the admin opens it from the console's menu, picks a month, reads the
figures with their tooltips and the charts, downloads the CSV, and the printed page (print media, A4) shows the
report without the menu or the controls. The operator's report over every company too. docs/report-monthly.png.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from psycopg_pool import ConnectionPool

from config import Settings
from tests.browser import launch, screenshot
from tests.console_support import PASSWORD
from tests.harness import served
from tests.operator_support import OPERATOR_EMAIL, OPERATOR_PASSWORD, make_operator
from tests.report_support import configured_tenant, make_agent, refresh_rollups, write_months


def test_the_admin_reads_prints_and_downloads_the_report(settings: Settings, db_pool: ConnectionPool,
                                                         tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    a = configured_tenant(db_pool, settings.tenant_slug)
    write_months(db_pool, a)
    make_agent(db_pool, a, "admin@primera.sv", "admin")
    refresh_rollups(settings, db_pool)
    with served(settings) as (_app, base_url), sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/console/login")
            page.fill("input[name=email]", "admin@primera.sv")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Reporte")
            expect(page.locator(".report-kicker")).to_have_text("Reporte mensual del asistente")
            page.fill("input[name=month]", "2026-11")
            page.get_by_role("button", name="Ver").click()
            expect(page.locator("#report-month")).to_have_text("Noviembre 2026")
            conversations = page.locator(".figure[data-figure=conversations]")
            expect(conversations.locator(".figure-value")).to_have_text("4")
            expect(conversations).to_contain_text("Mes anterior: 2 · +100 %")
            expect(conversations).to_have_attribute("title", "Conversaciones de 24 horas que abrieron tus clientes: "
                                                             "la primera vez que alguien escribe, o cuando escribe 24 "
                                                             "horas o más después de empezar la anterior. Cuenta el "
                                                             "día en que empezó.")
            cost = page.locator(".figure[data-figure=cost_per_conversation]")
            expect(cost).to_have_class("figure ok")
            expect(cost.locator(".figure-value")).to_have_text("$0.0195")
            expect(page.locator(".figure[data-figure=nps] .figure-value")).to_have_text("No se preguntó")
            expect(page.locator(".section-note[data-note=calls_avoided]")).to_contain_text(
                "cada conversación resuelta sin una persona evita 1 llamada")
            expect(page.locator("[data-chart=days] svg.chart rect")).not_to_have_count(0)
            expect(page.locator("[data-chart=reasons] svg.chart")).to_contain_text("Reclamos")
            expect(page.locator(".case-item")).to_have_count(4)  # two reasons, one analysis, one unanswered group
            expect(page.locator(".case-item").last).to_contain_text("Por ejemplo:")
            screenshot(page, "report-monthly.png", full_page=True)

            with page.expect_download() as download:
                page.click("#download-csv")
            saved = tmp_path / "reporte.csv"
            download.value.save_as(saved)
            table = {row["clave"]: row for row in csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8")))}
            assert (table["conversations"]["valor"], table["conversations"]["periodo_anterior"]) == ("4", "2")
            assert table["cost_per_conversation"]["valor"] == "0.0195"

            # "Descargar PDF" opens the browser's print dialog (window.print); the print layout: A4, no menu
            page.evaluate("() => { window.__printed = 0; window.print = () => { window.__printed += 1; }; }")
            page.click("#print-report")
            assert page.evaluate("document.querySelectorAll('script[src*=report]').length") == 1
            assert page.evaluate("window.__printed") == 1
            page.emulate_media(media="print")
            expect(page.locator("header.topbar")).to_be_hidden()
            expect(page.locator(".report-controls")).to_be_hidden()
            expect(page.locator(".figure[data-figure=conversations]")).to_be_visible()
            columns = page.evaluate("getComputedStyle(document.querySelector('.figures')).gridTemplateColumns")
            assert len(columns.split()) == 3, columns
            pdf = page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
            page.emulate_media(media="screen")
            assert not errors, errors
        finally:
            browser.close()


def test_the_operator_reads_every_company_in_chromium(settings: Settings, db_pool: ConnectionPool) -> None:
    from playwright.sync_api import expect, sync_playwright

    write_months(db_pool, configured_tenant(db_pool, settings.tenant_slug))
    make_operator(db_pool)
    refresh_rollups(settings, db_pool)
    with served(settings) as (_app, base_url), sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base_url + "/operator/login")
            page.fill("input[name=email]", OPERATOR_EMAIL)
            page.fill("input[name=password]", OPERATOR_PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Reporte")
            page.fill("input[name=month]", "2026-11")
            page.get_by_role("button", name="Ver").click()
            expect(page.locator("h1")).to_contain_text("Todas las empresas")
            expect(page.locator(".figure[data-figure=conversations] .figure-value")).to_have_text("5")
            expect(page.locator(".figure[data-figure=companies_with_chatbot] .figure-value")).to_have_text("2 de 2")
            expect(page.locator("table.report-companies tbody tr")).to_have_count(2)
            page.select_option("#tenant-filter", "otra")
            page.get_by_role("button", name="Ver").click()
            expect(page.locator("h1")).to_contain_text("Otra")
            expect(page.locator(".figure[data-figure=conversations] .figure-value")).to_have_text("1")
            expect(page.locator(".case-examples")).to_have_count(0)  # customers' words stay with their company
        finally:
            browser.close()
