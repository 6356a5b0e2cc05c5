"""The admin reads Meta's notices on "Plantillas" in Chromium (issue 17): a paused template's state, the fallback,
"Avisos de WhatsApp" on the company's clock, and the Panel's alert linking to them."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from flask import Flask
from psycopg_pool import ConnectionPool

from config import Settings
from tests.browser import launch
from tests.conftest import load_fixture
from tests.console_support import PASSWORD, make_agent
from tests.harness import post_meta, run_jobs
from tests.harness import served as harness_served
from tests.notifications_helpers import notification_settings

WABA = "102290129340398"


@pytest.fixture
def served(meta_settings: Settings, core_url: str, db_pool: ConnectionPool) -> Iterator[tuple[Flask, str, Settings]]:
    settings = notification_settings(meta_settings, core_url)
    with db_pool.connection() as conn:
        conn.execute("UPDATE tenant_channels SET waba_id = %s WHERE provider = 'meta'", (WABA,))
    with harness_served(settings) as (app, url):
        yield app, url, settings


@pytest.mark.browser
def test_the_admin_sees_a_paused_template_and_the_notices_in_chromium(
    served: tuple[Flask, str, Settings], db_pool: ConnectionPool
) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url, settings = served
    paused = copy.deepcopy(load_fixture("meta_template_status_paused.json"))
    paused["entry"][0]["id"] = WABA
    paused["entry"][0]["time"] = 1765000000
    paused["entry"][0]["changes"][0]["value"].update(message_template_name="paquete_llego",
                                                     message_template_language="es")
    with app.test_client() as client:
        for payload in (paused, load_fixture("meta_phone_number_quality_flagged.json")):
            assert post_meta(client, payload).status_code == 200
    run_jobs(settings)
    make_agent(db_pool, "Ana Admin", "ana@demo.encargo", role="admin")
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/console/login")
            page.fill("input[name=email]", "ana@demo.encargo")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(base_url + "/console/dashboard")
            alert = page.locator("text=Meta pausó una plantilla de avisos")
            expect(alert).to_be_visible()
            page.goto(base_url + "/console/templates#avisos-whatsapp")
            row = page.locator("tr.template[data-kind=arrived]")
            expect(row.locator(".meta-state")).to_have_text("Pausada desde 05/12/2025 23:46")
            expect(page.locator("tr.fallback-template[data-name=paquete_llego_aviso] .meta-state")).to_have_text(
                "Aprobada")
            notices = page.locator("#avisos-whatsapp li.whatsapp-notice")
            expect(notices).to_have_count(2)
            expect(notices.first).to_contain_text("Meta pausó la plantilla «paquete_llego»")
            expect(notices.nth(1)).to_contain_text("11/02/2025 18:43")
            expect(notices.nth(1)).to_contain_text("WhatsApp marcó tu número por baja calidad")
            assert errors == []
        finally:
            browser.close()
