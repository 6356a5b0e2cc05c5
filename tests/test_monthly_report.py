"""The executive monthly report (console/report_views.py, storage/monthly_report.py) on a month whose answers
are known (tests/report_support.py): its figures on the company's clock against the month before, the CSV equal
to the page, and who may read which company's report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from psycopg_pool import ConnectionPool

from config import Settings
from storage import plans
from tests.console_support import logged_in
from tests.harness import run_jobs
from tests.operator_support import customer_writes, make_operator, operator_client
from tests.report_support import (
    QUESTION,
    SUGGESTION,
    cases,
    configured_tenant,
    figures,
    make_agent,
    refresh_rollups,
    write_months,
)

MONTH = "2026-11"


@pytest.fixture
def report_app(base_env: dict[str, str]) -> Iterator[Flask]:
    from web.app import create_app

    app = create_app(Settings.from_env({**base_env, "REPORT_CALLS_PER_RESOLVED": "1.5"}))
    yield app
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


@pytest.fixture
def scenario(settings: Settings, db_pool: ConnectionPool) -> tuple[int, int]:
    a = configured_tenant(db_pool, settings.tenant_slug)
    made = write_months(db_pool, a)
    make_agent(db_pool, a, "admin@primera.sv", "admin")
    make_agent(db_pool, a, "agente@primera.sv", "agent", "Amanda Agente")
    make_agent(db_pool, a, "super@primera.sv", "supervisor", "Arturo Supervisor")
    make_agent(db_pool, made.b, "admin@otra.sv", "admin", "Bruno Bodega")
    refresh_rollups(settings, db_pool)
    return a, made.b


def test_the_months_figures_on_the_companys_clock_against_the_month_before(
        report_app: Flask, scenario: tuple[int, int]) -> None:
    page = logged_in(report_app, "admin@primera.sv").get(f"/console/report?month={MONTH}")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    text = page.get_data(as_text=True)
    shown = figures(text)
    # 00:30 on Nov 1st and 23:30 on Nov 30th are November's on the company's clock; 23:30 on Oct 31st October's
    assert shown["conversations"] == ("4", "2")
    assert shown["unique_customers"] == ("4", "2")
    assert shown["resolution_rate"] == ("0.5000", "0.5000")  # 2 of 4 cases now, 1 of 2 before
    assert shown["escalation_rate"] == ("0.5000", "0.5000")
    assert shown["not_understood_rate"][0] == "0.5000"  # 2 of the 4 messages the bot routed
    assert shown["calls_avoided"] == ("3", "1")  # 2 resolved x 1.5 (REPORT_CALLS_PER_RESOLVED), 1 x 1.5
    assert "evita 1.5 llamadas" in text  # the assumption is on the page
    # one template of no known category (priced as marketing, $0.0740) + $0.004 of model, over 4 conversations
    assert shown["templates_uncategorised"] == ("1", "0")
    assert shown["templates_usd"] == ("0.0740", "0.0000")
    assert shown["llm_usd"] == ("0.0040", "0.0000")
    assert shown["total_usd"] == ("0.0780", "0.0000")
    assert shown["cost_per_conversation"] == ("0.0195", "0.0000")
    assert 'class="figure ok" data-figure="cost_per_conversation"' in text  # under the $0.02 target
    assert "marketing $0.074" in text and "utilidad $0.0113" in text  # the prices used are stated
    assert shown["csat_5"] == ("4.00", "") and shown["csat_10"] == ("9.00", "")
    assert shown["nps"] == ("", "") and "No se preguntó" in text
    assert "Noviembre 2026" in text
    # improvement cases: escalation reasons, the analysis with its suggestion, the unanswered group with examples
    found = cases(text)
    assert found["escalation_reason:complaint"] == 1 and found["escalation_reason:change_delivery"] == 1
    assert found["analysis:cambio_de_datos:fuera_de_capacidad"] == 1 and SUGGESTION in text
    assert [n for key, n in found.items() if key.startswith("not_understood:")] == [2]
    assert f"«{QUESTION}»".replace("¿", "&iquest;") in text or QUESTION in text
    assert "customer_request" not in found  # October's
    # every figure carries its tooltip
    assert text.count('aria-describedby="tip-') == len(shown)
    assert "mi paquete de otra empresa" not in text and "Bruno" not in text


def test_the_csv_equals_the_page(report_app: Flask, scenario: tuple[int, int]) -> None:
    client = logged_in(report_app, "admin@primera.sv")
    page = client.get(f"/console/report?month={MONTH}").get_data(as_text=True)
    answer = client.get(f"/console/report.csv?month={MONTH}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert f'filename="reporte-{MONTH}.csv"' in answer.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    by_key = {row["clave"]: row for row in table}
    assert {k: (row["valor"], row["periodo_anterior"]) for k, row in by_key.items() if ":" not in k} == figures(page)
    assert {k: int(row["valor"]) for k, row in by_key.items() if ":" in k} == cases(page)
    assert by_key["cost_per_conversation"]["objetivo"] == "menos de $0.02"
    assert by_key["calls_avoided"]["nota"].startswith("Supuesto:")
    assert by_key["escalation_reason:complaint"]["nota"]  # the suggested action


def test_agents_and_supervisors_get_403_and_another_companys_report_is_404(
        report_app: Flask, scenario: tuple[int, int], settings: Settings) -> None:
    for email in ("agente@primera.sv", "super@primera.sv"):
        client = logged_in(report_app, email)
        for path in ("/console/report", "/console/report.csv"):
            assert client.get(f"{path}?month={MONTH}").status_code == 403, (email, path)
    admin = logged_in(report_app, "admin@primera.sv")
    for path in ("/console/report", "/console/report.csv"):
        other = admin.get(f"{path}?month={MONTH}&tenant=otra")
        nowhere = admin.get(f"{path}?month={MONTH}&tenant=nadie-la-tiene")
        assert other.status_code == 404 and other.get_data() == nowhere.get_data()
        assert admin.get(f"{path}?month={MONTH}&tenant={settings.tenant_slug}").status_code == 200
    assert admin.get("/console/report?month=2026-13").status_code == 400
    # B's admin reads B's month only
    b_page = logged_in(report_app, "admin@otra.sv").get(f"/console/report?month={MONTH}").get_data(as_text=True)
    assert figures(b_page)["conversations"] == ("1", "0") and QUESTION not in b_page
    # a plan without reports
    with report_app.extensions["db_pool"].connection() as conn:
        plans.set_plan(conn, "otra", "starter")
    assert logged_in(report_app, "admin@otra.sv").get("/console/report").status_code == 403


def test_the_operator_reads_every_company_and_each_one(report_app: Flask, scenario: tuple[int, int],
                                                       db_pool: ConnectionPool, settings: Settings) -> None:
    make_operator(db_pool)
    operator = operator_client(report_app)
    page = operator.get(f"/operator/report?month={MONTH}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    every = figures(text)
    assert every["conversations"] == ("5", "2")
    assert every["companies_using"] == ("2", "1")
    assert every["companies_with_chatbot"][0] == "2" and "2 de 2" in text
    assert QUESTION not in text and "hacen envios" not in text  # customers' words stay with their company
    assert 'data-slug="otra"' in text
    per_company = list(csv.DictReader(io.StringIO(
        operator.get(f"/operator/report.csv?month={MONTH}&por=empresa").get_data(as_text=True))))
    assert {row["slug"]: row["conversaciones"] for row in per_company} == {"otra": "1", settings.tenant_slug: "4"}
    one = figures(operator.get(f"/operator/report?month={MONTH}&tenant=otra").get_data(as_text=True))
    assert one["conversations"] == ("1", "0")
    assert operator.get(f"/operator/report?month={MONTH}&tenant=nadie").status_code == 404
    # an agent's session never opens the operator's report
    agent = logged_in(report_app, "admin@primera.sv")
    answer = agent.get(f"/operator/report?month={MONTH}")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/operator/login")


def test_conversations_through_the_webhook_and_worker_reach_the_report(base_env: dict[str, str], core_url: str,
                                                                       db_pool: ConnectionPool) -> None:
    """Two customers write through the signed webhook and the worker; one asks for a person. After the
    scheduler's rollup job, this month's report counts them."""
    from web.app import create_app

    settings = Settings.from_env({**base_env, "CORE_API_URL": core_url})
    a = configured_tenant(db_pool, settings.tenant_slug)
    make_agent(db_pool, a, "admin@primera.sv", "admin")
    app = create_app(settings)
    try:
        client = app.test_client()
        customer_writes(client, settings.meta_phone_number_id, "+50370000051", "hola, ¿a qué hora abren?", "Rosa")
        customer_writes(client, settings.meta_phone_number_id, "+50370000052", "quiero hablar con una persona",
                        "Tomás")
        run_jobs(settings)
        refresh_rollups(settings, db_pool, datetime.now(UTC) + timedelta(minutes=1))
        today = datetime.now(ZoneInfo(settings.tenant_timezone))
        page = logged_in(app, "admin@primera.sv").get(f"/console/report?month={today:%Y-%m}")
        text = page.get_data(as_text=True)
        shown = figures(text)
        assert shown["conversations"] == ("2", "0") and shown["unique_customers"] == ("2", "0")
        assert shown["escalation_rate"][0] == "0.5000" and shown["calls_avoided"][0] == "1"
        assert cases(text)["escalation_reason:customer_request"] == 1
        assert "(en curso)" in text
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
