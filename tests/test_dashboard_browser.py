"""The operations view in a real Chromium, for an agent, a company admin and the operator.

The figures were produced through the signed webhook and the worker (tests/dashboard_support.py: three
conversations at company A, one escalated, one not understood, one rated 5; one at company B). Each role opens
"Panel" from the menu and reads them; the agent moves the range with the quick picks and the date fields; every
figure carries its tooltip; the page fits a 390 px phone; an agent's session never opens the operator's panel;
the operator switches between every company and one. The admin's page is docs/dashboard-operations.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from psycopg_pool import ConnectionPool

from config import Settings
from tests.browser import launch, screenshot
from tests.console_support import PASSWORD
from tests.dashboard_support import World, today, two_companies
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import served as harness_served
from tests.operator_support import OPERATOR_EMAIL, OPERATOR_PASSWORD, make_operator

FIGURES = ("conversations", "customer_messages", "unique_customers", "notifications", "resolution_rate",
           "escalation_rate", "not_understood_rate", "response_p50_s", "response_p95_s", "csat_average",
           "first_response_in_sla_rate", "first_response_average_s", "top_intents", "rules_share", "llm_share",
           "templates", "llm_usd", "llm_usd_per_conversation")


@pytest.fixture
def settings(meta_settings: Settings, core_url: str) -> Settings:
    return meta_settings.with_overrides(core_api_url=core_url, quiet_hours_start="00:00", quiet_hours_end="00:00")


@pytest.fixture
def world(settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI) -> Iterator[World]:
    with two_companies(settings, db_pool, graph) as made:
        yield made


@pytest.fixture
def served(settings: Settings, world: World) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


def value(page: Any, key: str) -> str:
    return str(page.locator(f".figure[data-figure={key}] .figure-value").inner_text())


def console_login(page: Any, base_url: str, email: str) -> None:
    page.goto(base_url + "/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav >> text=Panel")


def check_tooltips(page: Any) -> None:
    """Every figure has a tooltip (title) and the same words in the element its aria-describedby names."""
    for key in FIGURES:
        element = page.locator(f"[data-figure={key}]").first
        title = element.get_attribute("title")
        assert title and len(title) > 20, key
        described = element.get_attribute("aria-describedby")
        assert described and page.locator(f"#{described}").text_content() == title, key


@pytest.mark.browser
def test_an_agent_reads_the_figures_and_moves_the_range(served: tuple[Flask, str], world: World) -> None:
    from playwright.sync_api import expect, sync_playwright

    _, base_url = served
    first = today().first
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            console_login(page, base_url, world.a_people["agent"].email)
            expect(page.locator("h1")).to_contain_text("Panel")
            expect(page.locator("#period-title")).to_have_text("Hoy")
            assert (value(page, "conversations"), value(page, "unique_customers")) == ("3", "3")
            assert (value(page, "escalation_rate"), value(page, "resolution_rate")) == ("33 %", "67 %")
            assert value(page, "csat_average") == "10.0 / 10"
            expect(page.locator(".figure[data-figure=escalation_rate]")).to_have_class("figure bad")
            expect(page.locator(".figure[data-figure=resolution_rate]")).to_have_class("figure bad")
            expect(page.locator(".figure[data-figure=escalation_rate] .figure-target")).to_have_text(
                "✗ objetivo < 20 %")
            expect(page.locator("li.alert[data-alert=escalation_rate]")).to_contain_text("Escalamiento alto: 33 %")
            expect(page.locator("svg.chart-series title")).to_have_text("Conversaciones por hora")
            check_tooltips(page)

            page.click("a.pick[data-pick=ayer]")
            expect(page.locator("#period-title")).to_have_text("Ayer")
            assert value(page, "conversations") == "0"
            page.click("a.pick[data-pick='7d']")
            expect(page.locator("#period-title")).to_have_text("Últimos 7 días")
            assert value(page, "conversations") == "3"
            expect(page.locator("svg.chart-series title")).to_have_text("Conversaciones por día")
            page.fill("input[name=desde]", (first - timedelta(days=2)).isoformat())
            page.fill("input[name=hasta]", (first - timedelta(days=1)).isoformat())
            page.click("#range-form button[type=submit]")
            expect(page.locator("#period-title")).to_contain_text("Del ")
            assert value(page, "conversations") == "0"
            expect(page.locator(".dash-period")).to_contain_text("los 2 días anteriores")

            # an agent's session never opens the operator's panel
            page.goto(base_url + "/operator/dashboard")
            expect(page).to_have_url(base_url + "/operator/login?next=/operator/dashboard")
            assert not errors
        finally:
            browser.close()


@pytest.mark.browser
def test_an_admin_sees_the_panel_on_a_desk_and_on_a_phone(served: tuple[Flask, str], world: World) -> None:
    from playwright.sync_api import expect, sync_playwright

    _, base_url = served
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="es-SV")
            console_login(page, base_url, world.a_people["admin"].email)
            expect(page.locator("#period-title")).to_have_text("Hoy")
            assert value(page, "conversations") == "3"
            assert value(page, "not_understood_rate") != "—"
            assert value(page, "first_response_in_sla_rate") == "100 %"  # Amanda answered the case at once
            expect(page.locator(".csat svg.chart-dist desc")).to_contain_text("5 1 (100 %)")
            check_tooltips(page)
            screenshot(page, "dashboard-operations.png", full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844})
            console_login(phone, base_url, world.a_people["admin"].email)
            assert value(phone, "conversations") == "3"
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the panel scrolls sideways on a phone ({width} px)"
            chart = phone.locator("svg.chart-series").bounding_box()
            assert chart and chart["width"] <= 390
        finally:
            browser.close()


@pytest.mark.browser
def test_the_operator_sees_every_company_or_one(served: tuple[Flask, str], world: World,
                                                db_pool: ConnectionPool) -> None:
    from playwright.sync_api import expect, sync_playwright

    _, base_url = served
    make_operator(db_pool)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base_url + "/operator/login")
            page.fill("input[name=email]", OPERATOR_EMAIL)
            page.fill("input[name=password]", OPERATOR_PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Panel")
            expect(page.locator("h1")).to_contain_text("Todas las empresas")
            assert value(page, "conversations") == "4"
            expect(page.locator("li.alert[data-alert=escalation_rate]")).to_contain_text(world.settings.tenant_name)
            check_tooltips(page)
            page.select_option("#company-filter", "cuscatlan")
            page.click("#range-form button[type=submit]")
            expect(page.locator("h1")).to_contain_text("Envíos Rápidos Cuscatlán")
            assert value(page, "conversations") == "1"
            page.click("a.pick[data-pick='30d']")  # the quick picks keep the company
            expect(page.locator("h1")).to_contain_text("Envíos Rápidos Cuscatlán")
            expect(page.locator("#period-title")).to_have_text("Últimos 30 días")
            assert value(page, "conversations") == "1"
            page.select_option("#company-filter", "")
            page.click("#range-form button[type=submit]")
            assert value(page, "conversations") == "4"
        finally:
            browser.close()
