"""The operator onboards a company in a real Chromium, then a customer writes to its new number and gets its reply.

The operator logs in at /operator, opens "Nueva empresa", types the company (the slug follows the name), picks
Meta and types the number and token, sends the test message (the fake Graph API takes it from the new number
with the new token), types the core's URL and key and tests the connection (the sandbox core playing the second
demo company answers with its name), picks the plan and saves. The landing page lists the company with its
number verified; a customer's signed Meta webhook to that number is answered from it, with its token, and the
page then shows the customer's message. The usage page offers the CSV.

Screenshots of the pages are written to docs/ when missing or with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from psycopg_pool import ConnectionPool

from config import Settings
from sandbox_core import BackgroundServer, create_sandbox_app
from scripts.run_environment import DEMO_DATA
from tests.browser import launch, screenshot
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import rows, run_jobs
from tests.harness import served as harness_served
from tests.operator_support import OPERATOR_EMAIL, OPERATOR_PASSWORD, customer_writes, make_operator

NEW_NUMBER, NEW_TOKEN = "111222333444555", "token-de-la-empresa-nueva"
CORE_KEY = "clave-del-core-de-cuscatlan"


@pytest.fixture
def settings(base_env: dict[str, str], graph: FakeGraphAPI) -> Settings:
    return Settings.from_env(base_env).with_overrides(
        whatsapp_provider="meta", meta_access_token=GRAPH_TOKEN, meta_graph_base_url=graph.url,
        simulator_enabled=False, quiet_hours_start="00:00", quiet_hours_end="00:00")


@pytest.fixture
def company_core() -> Iterator[str]:
    with BackgroundServer(create_sandbox_app(DEMO_DATA[1], api_key=CORE_KEY)) as server:
        yield server.url


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


@pytest.mark.browser
def test_an_operator_onboards_a_company_that_then_answers_its_number(
        served: tuple[Flask, str], settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI,
        company_core: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url = served
    make_operator(db_pool)
    graph.add_number(NEW_NUMBER, NEW_TOKEN)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(base_url + "/operator")
            expect(page).to_have_url(base_url + "/operator/login?next=/operator")
            page.fill("input[name=email]", OPERATOR_EMAIL)
            page.fill("input[name=password]", OPERATOR_PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_contain_text("Empresas")
            expect(page.locator("tr.tenant-row")).to_have_count(1)

            page.click("text=+ Nueva empresa")
            page.fill("input[name=name]", "Envíos Rápidos Cuscatlán")
            expect(page.locator("input[name=slug]")).to_have_value("envios-rapidos-cuscatlan")
            page.fill("input[name=bot_name]", "Brisa")
            expect(page.locator("input[name=meta_number]")).to_be_hidden()
            page.check("input[name=provider][value=meta]")
            expect(page.locator("input[name=twilio_number]")).to_be_hidden()
            page.fill("input[name=meta_number]", NEW_NUMBER)
            page.fill("input[name=meta_token]", NEW_TOKEN)
            page.fill("input[name=test_phone]", "700 09")
            page.click("text=Enviar mensaje de prueba")
            channel_result = page.locator("#step-channel .check-result")
            expect(channel_result).to_have_class("check-result fail")
            expect(channel_result).to_contain_text("código de país")
            page.fill("input[name=test_phone]", "7000 0009")  # a Salvadoran number without +503
            page.click("text=Enviar mensaje de prueba")
            expect(channel_result).to_contain_text("Enviado: el proveedor lo aceptó")
            [test] = graph.sends_to("+50370000009")
            assert (test.phone_number_id, test.token, test.body["template"]["name"]) == (
                NEW_NUMBER, NEW_TOKEN, "hello_world")

            page.fill("input[name=core_api_url]", company_core)
            page.fill("input[name=core_api_key]", "una clave equivocada")
            page.click("text=Probar conexión")
            core_result = page.locator("#step-core .check-result")
            expect(core_result).to_have_text("El sistema logístico rechazó la clave: revisa la clave de API.")
            page.fill("input[name=core_api_key]", CORE_KEY)
            page.click("text=Probar conexión")
            expect(core_result).to_have_text("Conectado: el sistema responde como «Envíos Rápidos Cuscatlán».")
            page.click("label.plan-choice:has-text('Scale')")
            screenshot(page, "operator-new-company.png")
            page.click("#save")

            expect(page.locator(".flash")).to_contain_text("Envíos Rápidos Cuscatlán quedó creada y ya atiende")
            row = page.locator("tr.tenant-row[data-slug=envios-rapidos-cuscatlan]")
            expect(row.locator(".plan")).to_have_text("Scale")
            expect(row.locator(".channels")).to_contain_text(f"{NEW_NUMBER} verificado")
            expect(row.locator(".last-inbound")).to_have_text("nunca")

            # a customer writes to the new number: the company answers from it, with its own token
            customer_writes(app.test_client(), NEW_NUMBER, "+50370000011", "hola", name="Beatriz")
            run_jobs(settings)
            replies = graph.sends_to("+50370000011")
            assert replies and {(r.phone_number_id, r.token) for r in replies} == {(NEW_NUMBER, NEW_TOKEN)}
            assert "Brisa" in str([r.body for r in replies])
            tenant_id = rows(db_pool, "SELECT id FROM tenants WHERE slug = 'envios-rapidos-cuscatlan'")[0]["id"]
            assert rows(db_pool, "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND direction = 'in'",
                        (tenant_id,)) == [{"n": 1}]
            page.reload()
            expect(row.locator(".last-inbound")).to_have_text("hace un momento")
            expect(row.locator(".last-reply")).to_have_text("hace un momento")
            screenshot(page, "operator-tenants.png")

            page.click("nav >> text=Uso")
            expect(page.locator("tr.usage-row")).to_have_count(2)
            cuscatlan = page.locator("tr.usage-row[data-slug=envios-rapidos-cuscatlan]")
            expect(cuscatlan.locator("td[data-figure=customer_messages]")).to_have_text("1")
            with page.expect_download() as download:
                page.click("#download-csv")
            csv_text = Path(download.value.path()).read_text(encoding="utf-8")
            assert csv_text.startswith("tenant,month,") and "envios-rapidos-cuscatlan," in csv_text
            screenshot(page, "operator-usage.png")

            page.goto(base_url + "/operator/tenants/envios-rapidos-cuscatlan/edit")
            expect(page.locator("input[name=core_api_key]")).to_have_attribute(
                "placeholder", "guardada · déjala vacía para no cambiarla")
            assert CORE_KEY not in page.content() and NEW_TOKEN not in page.content()
            screenshot(page, "operator-edit-company.png")

            # suspending asks first: dismissed, nothing changes; accepted, the company is suspended
            page.goto(base_url + "/operator")
            demo = page.locator("tr.tenant-row[data-slug=demo]")
            page.once("dialog", lambda dialog: dialog.dismiss())
            demo.locator("button", has_text="Suspender").click()
            expect(demo.locator(".status")).to_have_text("activa")
            page.once("dialog", lambda dialog: dialog.accept())
            demo.locator("button", has_text="Suspender").click()
            expect(page.locator(".flash")).to_have_text("Transportes Express El Salvador quedó suspendida: sus mensajes"
                                                        " ya no se atienden.")
            expect(demo.locator(".status")).to_have_text("suspendida")
            assert rows(db_pool, "SELECT status FROM tenants WHERE slug = 'demo'") == [{"status": "suspended"}]
            assert errors == []
        finally:
            browser.close()
