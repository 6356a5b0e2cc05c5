"""Shared by the operations view's tests (tests/test_dashboard.py, tests/test_dashboard_browser.py): two companies
whose day went through the signed Meta webhook and the worker, their people, the rollups brought up to date.

Company A (the configured one): one customer answered from the FAQ who says goodbye and rates the bot 5, one
escalated ("quiero hablar con una persona"), one the bot did not understand. Company B: one conversation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from console import dashboard
from handoff import agents
from storage import metric_rollups, tenant_admin, tenant_templates
from storage.crypto import Vault
from storage.metric_counts import Sla
from tests.console_support import PASSWORD, TUESDAY_10AM, logged_in
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs
from web.app import create_app

NUMBER_B = "106540352299992"
UNKNOWN_NUMBER = "999000111222333"


def figure(page: str, key: str) -> str:
    """The value a figure card shows."""
    match = re.search(rf'data-figure="{key}".*?<strong class="figure-value">([^<]*)</strong>', page, re.S)
    assert match, key
    return match.group(1)


def alert_kinds(page: str) -> list[str]:
    return re.findall(r'<li class="alert" data-alert="([a-z_]+)"', page)


def write(client: FlaskClient, number: str, phone: str, text: str | None = None, *,
          reply: tuple[str, str] | None = None) -> None:
    """A customer's signed Meta message to `number` (the worker runs afterwards), written on a Tuesday at 10 a.m.
    for the bot's clock (support open); the rows are stamped now, which is what the figures count."""
    message: dict[str, Any] = {"from": phone.lstrip("+"), "id": f"wamid.DASH{uuid.uuid4().hex}",
                               "timestamp": str(int(TUESDAY_10AM.timestamp()))}  # inside support hours
    if reply is not None:
        message.update(type="interactive", interactive={
            "type": "button_reply", "button_reply": {"id": reply[0], "title": reply[1]}})
    else:
        message.update(type="text", text={"body": text or ""})
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
        "contacts": [{"wa_id": phone.lstrip("+"), "profile": {"name": "Cliente"}}], "messages": [message]}}]}]}
    assert post_meta(client, body).status_code == 200


@dataclass
class World:
    app: Flask
    settings: Settings
    a: int
    b: int
    a_people: dict[str, agents.Agent]
    b_admin: agents.Agent


def conversations(settings: Settings, client: FlaskClient, number: str) -> None:
    """A's day: answered and rated, escalated, not understood."""
    for text in ("aceptan tarjeta?", "adiós"):
        write(client, number, "+50370000101", text)
        run_jobs(settings)
    write(client, number, "+50370000101", reply=("csat:5", "😊 Excelente"))
    write(client, number, "+50370000102", "quiero hablar con una persona")
    write(client, number, "+50370000103", "hola")
    run_jobs(settings)
    write(client, number, "+50370000103", "cuéntame un chiste")
    run_jobs(settings)


def roll_up(settings: Settings, pool: ConnectionPool) -> None:
    """What the scheduler's rollup job does, for everything stored until now (its lag included)."""
    with pool.connection() as conn:
        metric_rollups.refresh(conn, datetime.now(UTC) + metric_rollups.LAG + timedelta(seconds=1),
                               sla=Sla(settings.console_sla_normal_s, settings.console_sla_high_s),
                               categories=lambda tenant: tenant_templates.categories(conn, tenant))


@contextmanager
def two_companies(settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI) -> Iterator[World]:
    redis_conn = redis.Redis.from_url(settings.redis_url)
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    b_tenant = tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="cuscatlan",
                                          name="Envíos Rápidos Cuscatlán", core_api_url=settings.core_api_url)
    tenant_admin.add_channel(db_pool, vault, redis_conn, "cuscatlan", provider="meta", number=NUMBER_B)
    graph.add_number(NUMBER_B, settings.meta_access_token)
    a_id = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    people = {}
    with db_pool.connection() as conn:
        for role, name in (("agent", "Amanda Reyes"), ("supervisor", "Sergio Flores"), ("admin", "Alicia Mejía")):
            people[role] = agents.create_agent(conn, tenant_id=a_id, name=name, role=role,
                                               password=PASSWORD, email=f"{role}@primera.sv")
        b_admin = agents.create_agent(conn, tenant_id=b_tenant.id, name="Bruno Bodega", role="admin",
                                      password=PASSWORD, email="admin@cuscatlan.sv")
    app = create_app(settings)
    try:
        client = app.test_client()
        conversations(settings, client, settings.meta_phone_number_id)
        answer_the_case(app, people["agent"], a_id)
        write(client, NUMBER_B, "+50370000201", "aceptan tarjeta?")
        run_jobs(settings)
        roll_up(settings, db_pool)
        yield World(app, settings, a_id, b_tenant.id, people, b_admin)
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
        redis_conn.close()


def answer_the_case(app: Flask, agent: agents.Agent, tenant_id: int) -> None:
    """The agent takes the escalated case in the console and answers it (the agents' first response)."""
    pool = app.extensions["db_pool"]
    [case] = rows(pool, "SELECT id FROM escalations WHERE tenant_id = %s", (tenant_id,))
    client = logged_in(app, agent.email)
    with client.session_transaction("/console") as session:
        token = session["csrf"]
    for path, body in (("claim", {}), ("reply", {"text": "Hola, soy Amanda. ¿En qué te ayudo?"})):
        answer = client.post(f"/console/api/cases/{case['id']}/{path}", json=body, headers={"X-CSRF-Token": token})
        assert answer.status_code < 300, answer.get_data(as_text=True)


def today(tz: str = "America/El_Salvador") -> dashboard.Period:
    return dashboard.period_from({}, tz, datetime.now(UTC))
