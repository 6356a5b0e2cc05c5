"""The operations view ("Panel"): figures produced through the real webhook and worker, the date range, the roles,
and the alerts (handoff/alerts.py), each from the real thing that raises it.

Company A (the configured one) gets a few conversations through the signed Meta webhook and the worker: one
answered from the FAQ and rated 5 after a goodbye, one escalated ("quiero hablar con una persona"), one the bot
did not understand. Company B gets one conversation of its own. The page must show A's figures, as
`storage.metrics` counts them, to A's agent, supervisor and admin; the operator sees both companies, or one.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from config import Settings
from console import dashboard
from handoff import alerts
from llm import breaker
from llm.session import policy_of
from runtime.cores import TenantCores
from storage import metrics
from storage.crypto import Vault
from tests.console_support import logged_in
from tests.dashboard_support import (
    UNKNOWN_NUMBER,
    World,
    alert_kinds,
    figure,
    today,
    two_companies,
    write,
)
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import rows, run_jobs
from tests.operator_support import make_operator, operator_client


@pytest.fixture
def settings(meta_settings: Settings, core_url: str) -> Settings:
    return meta_settings.with_overrides(core_api_url=core_url, quiet_hours_start="00:00", quiet_hours_end="00:00")


@pytest.fixture
def world(settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI) -> Iterator[World]:
    with two_companies(settings, db_pool, graph) as made:
        yield made


def test_each_of_a_companys_people_sees_its_figures_as_the_worker_produced_them(
        world: World, db_pool: ConnectionPool) -> None:
    period = today()
    with db_pool.connection() as conn:
        ops = metrics.operations(conn, [world.a], period.start, period.end, period.tz)
    # what the scenario produced, as storage.metrics counts it
    assert (ops.volume.conversations, ops.volume.unique_customers) == (3, 3)
    assert (ops.quality.escalation.numerator, ops.quality.not_understood.numerator) == (1, 1)
    assert ops.quality.csat[0].distribution == (0, 0, 0, 0, 1)
    [case_number] = [r["case_number"] for r in rows(db_pool, "SELECT case_number FROM escalations"
                                                             " WHERE tenant_id = %s", (world.a,))]
    for role, person in world.a_people.items():
        page = logged_in(world.app, person.email).get("/console/dashboard").get_data(as_text=True)
        assert "Hoy" in page and "comparado con ayer" in page, role
        assert figure(page, "conversations") == "3"
        assert figure(page, "customer_messages") == str(ops.volume.customer_messages)
        assert figure(page, "unique_customers") == "3"
        assert figure(page, "escalation_rate") == "33 %"
        assert figure(page, "resolution_rate") == "67 %"
        assert figure(page, "not_understood_rate") == dashboard.pct(ops.quality.not_understood.value)
        assert figure(page, "csat_average") == "10.0 / 10"  # a 5 of 5
        assert figure(page, "first_response_in_sla_rate") == "100 %"  # the agent answered the case at once
        assert re.search(r'data-figure="escalation_rate"\s+title="De las conversaciones', page)  # its tooltip
        assert 'aria-describedby="tip-escalation_rate"' in page and 'id="tip-escalation_rate"' in page
        assert re.search(r'class="figure bad" data-figure="escalation_rate"', page)  # 33 % against < 20 %
        assert "objetivo &lt; 20 %" in page and "objetivo &gt; 75 %" in page
        assert "Calificaciones al asistente (de 1 a 5): promedio" in page and "5: 1" in page
        assert "Conversaciones por hora" in page and "<svg" in page
        assert "escalation_rate" in alert_kinds(page)  # 1 of 3 conversations this hour: over 30 %
        link = re.search(r'data-alert="escalation_rate".*?<a class="alert-link" href="([^"]+)"', page, re.S)
        assert link
        behind = logged_in(world.app, person.email).get(link.group(1).replace("&amp;", "&"))
        assert behind.status_code == 200 and case_number in behind.get_data(as_text=True)  # the case behind it
        assert "Cuscatlán" not in page and "cuscatlan" not in page


def test_the_range_picker(world: World) -> None:
    client = logged_in(world.app, world.a_people["agent"].email)
    period = today()
    yesterday = (period.first - timedelta(days=1)).isoformat()
    page = client.get("/console/dashboard?rango=ayer").get_data(as_text=True)
    assert "Ayer" in page and figure(page, "conversations") == "0"
    week = client.get("/console/dashboard?rango=7d").get_data(as_text=True)
    assert "Últimos 7 días" in week and "los 7 días anteriores" in week and "Conversaciones por día" in week
    assert figure(week, "conversations") == "3"
    page = client.get(f"/console/dashboard?desde={yesterday}&hasta={period.first.isoformat()}").get_data(as_text=True)
    assert f"Del {dashboard._day(period.first - timedelta(days=1))}" in page and figure(page, "conversations") == "3"
    for bad in ("desde=2026-13-01", f"desde={period.first}&hasta={yesterday}", "desde=2020-01-01&hasta=2026-01-01",
                "rango=siempre"):
        answer = client.get(f"/console/dashboard?{bad}")
        assert answer.status_code == 400, bad


def test_company_people_see_their_own_company_whatever_the_query_says(world: World) -> None:
    for query in ("", "?company=cuscatlan", f"?tenant={world.b}&tenant_id={world.b}"):
        page = logged_in(world.app, world.b_admin.email).get("/console/dashboard" + query).get_data(as_text=True)
        assert figure(page, "conversations") == "1", query  # B's own single conversation
        answer = logged_in(world.app, world.a_people["agent"].email).get("/console/dashboard" + query)
        assert figure(answer.get_data(as_text=True), "conversations") == "3", query
    agent = logged_in(world.app, world.a_people["admin"].email)
    answer = agent.get("/operator/dashboard")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/operator/login")


def test_the_operator_sees_every_company_or_one(world: World, db_pool: ConnectionPool) -> None:
    make_operator(db_pool)
    client = operator_client(world.app)
    every = client.get("/operator/dashboard").get_data(as_text=True)
    assert "Todas las empresas" in every and figure(every, "conversations") == "4"
    assert "Envíos Rápidos Cuscatlán" in every  # in the company filter
    one = client.get("/operator/dashboard?company=cuscatlan&rango=7d").get_data(as_text=True)
    assert figure(one, "conversations") == "1" and "Últimos 7 días" in one
    assert client.get("/operator/dashboard?company=nadie").status_code == 404
    # the operator's own session never opens the console
    assert client.get("/console/dashboard").status_code == 302


def test_alerts_from_their_real_causes(world: World, db_pool: ConnectionPool, graph: FakeGraphAPI) -> None:
    settings, app = world.settings, world.app
    redis_conn = app.extensions["redis"]
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    client = app.test_client()

    def current(tenant_ids: list[int] | None, audience: alerts.Audience, *, later_s: float = 0) -> dict[str, Any]:
        found = alerts.current_alerts(db_pool, redis_conn, settings, vault, tenant_ids,
                                      datetime.now(UTC) + timedelta(seconds=later_s), audience=audience)
        return {a.kind: a for a in found}

    assert set(current([world.a], "company")) == {"escalation_rate"}
    # a send WhatsApp refuses (outside the 24-hour window): by code, with what it means
    graph.fail_next(1, status=400, code=131047, details="Re-engagement message")
    write(client, settings.meta_phone_number_id, "+50370000104", "hola")
    run_jobs(settings)
    errors = current([world.a], "company")["provider_errors"]
    assert errors.items == (("Código 131047: 1",
                             "Pasaron más de 24 horas desde que el cliente escribió: solo se puede enviar una "
                             "plantilla."),)
    assert errors.link == "#errores-proveedor"
    assert "provider_errors" not in current([world.b], "company")
    # a case waits past its SLA without a first answer
    write(client, settings.meta_phone_number_id, "+50370000107", "quiero hablar con una persona")
    run_jobs(settings)
    backlog = current([world.a], "company", later_s=settings.console_sla_high_s + settings.console_sla_normal_s)
    assert backlog["case_backlog"].title == "1 caso espera una primera respuesta fuera de tiempo"
    assert backlog["case_backlog"].link == "/console?status=waiting"
    # the model's circuit breaker opens
    model = settings.with_overrides(llm_provider="openai", llm_api_key="sk-test")
    for _ in range(model.llm_breaker_failures):
        breaker.record_failure(redis_conn, "openai", datetime.now(UTC).timestamp(), policy_of(model))
    assert "llm_breaker" in {a.kind for a in alerts.current_alerts(
        db_pool, redis_conn, model, vault, [world.a], datetime.now(UTC), audience="company")}
    assert "llm_breaker" not in current([world.a], "company")  # rules-only deployment: no model, no breaker
    # the logistics core times out for A's (the deployment's) core
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        slow = settings.with_overrides(core_api_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        cores = TenantCores(slow, db_pool, redis_conn, vault, timeout_s=0.2)
        with pytest.raises(Exception, match="unreachable"):
            cores.client(world.a).company()
        cores.close()
        timed_out = {a.kind: a for a in alerts.current_alerts(db_pool, redis_conn, slow, vault, [world.a],
                                                              datetime.now(UTC), audience="company")}
        assert timed_out["core_timeouts"].title == (  # a GET, tried twice
            "El sistema logístico no respondió a tiempo (2 consultas esta hora)")
    finally:
        silent.close()
    # operator: a message to a number nobody serves, and one the workers have not taken yet
    write(client, UNKNOWN_NUMBER, "+50370000105", "hola")
    run_jobs(settings)
    write(client, settings.meta_phone_number_id, "+50370000106", "hola")  # queued, no worker runs
    everything = current(None, "operator", later_s=120)
    assert everything["unroutable"].link == "/operator#sin-empresa"
    assert everything["bot_backlog"].title == "Mensajes sin atender: 1"
    assert everything["provider_errors"].link == f"/operator#{settings.tenant_slug}"
    assert everything["escalation_rate"].link == f"/operator/dashboard?company={settings.tenant_slug}"
    only_b = current([world.b], "operator", later_s=120)
    assert not {"unroutable", "bot_backlog"} & set(only_b)  # the deployment's own alerts: every company's view
    make_operator(db_pool)
    page = operator_client(app).get("/operator/dashboard").get_data(as_text=True)
    assert {"unroutable", "provider_errors", "escalation_rate"} <= set(alert_kinds(page))
    assert 'href="/operator#sin-empresa"' in page
