"""The operator's area (/operator): its own login and session, the tenants' health, suspending, the two
onboarding checks against loopback fakes (Meta, Twilio, a logistics core), onboarding and editing a tenant
without a restart, and the usage table with its CSV.

Everything runs through the real app, the real worker (a `Runtime` built once, as a running worker's is) and
real PostgreSQL/Redis; Meta's Graph API and Twilio are the loopback fakes of tests/fakes, the core is the
sandbox core on loopback.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg import sql
from psycopg_pool import ConnectionPool

from config import Settings
from console.operator_checks import TEST_TEXT
from runtime.resources import Runtime, build_runtime
from sandbox_core import BackgroundServer, create_sandbox_app
from scripts.run_environment import DEMO_DATA
from storage import plans, tenant_admin, tenant_changes
from storage.crypto import Vault
from tests.console_support import PASSWORD, make_agent
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import rows
from tests.operator_support import (
    OPERATOR_EMAIL,
    OPERATOR_PASSWORD,
    customer_writes,
    make_operator,
    operator_client,
    operator_csrf,
    page_csrf,
)
from web.app import create_app
from worker.main import EncargoWorker

ROOT = Path(__file__).resolve().parent.parent
NEW_NUMBER, NEW_TOKEN = "111222333444555", "token-de-la-empresa-nueva"
STRANGER_NUMBER = "999888777666555"
CORE_KEY = "clave-del-core-de-cuscatlan"
TWILIO_SUB = "AC" + "1" * 32


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI().start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(base_env: dict[str, str], graph: FakeGraphAPI, twilio: FakeTwilioAPI) -> Settings:
    """Replies leave through Meta's transport to the fake Graph API; Twilio's fake for Twilio numbers."""
    return Settings.from_env(base_env).with_overrides(
        whatsapp_provider="meta", meta_access_token=GRAPH_TOKEN, meta_graph_base_url=graph.url,
        twilio_api_base_url=twilio.url, simulator_enabled=False, quiet_hours_start="00:00", quiet_hours_end="00:00")


@pytest.fixture(scope="module")
def company_core() -> Iterator[str]:
    """The second demo company's core, which wants its own key."""
    with BackgroundServer(create_sandbox_app(DEMO_DATA[1], api_key=CORE_KEY)) as server:
        yield server.url


@pytest.fixture
def worker(settings: Settings) -> Iterator[Runtime]:
    """One worker's Runtime for the whole test: its tenant caches live across the operator's changes."""
    rt = build_runtime(settings)
    yield rt
    rt.close()


def work(rt: Runtime) -> None:
    EncargoWorker([rt.queue], connection=rt.redis, runtime=rt).work(burst=True, with_scheduler=False)


class Rows(HTMLParser):
    """The rows of a page's table whose <tr> has `row_class`: their data-* attributes and cell texts."""

    def __init__(self, html: str, row_class: str) -> None:
        super().__init__()
        self.row_class = row_class
        self.found: list[dict[str, Any]] = []
        self._row: dict[str, Any] | None = None
        self._cell: list[str] | None = None
        self._attrs: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "tr" and self.row_class in values.get("class", "").split():
            self._row = {"attrs": values, "cells": [], "by": {}}
        elif tag == "td" and self._row is not None:
            self._cell, self._attrs = [], values

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            text = " ".join(" ".join(self._cell).split())
            self._row["cells"].append(text)
            for key in ("data-figure", "class"):
                if self._attrs.get(key):
                    self._row["by"][self._attrs[key]] = text
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.found.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table(client: FlaskClient, path: str, row_class: str) -> list[dict[str, Any]]:
    answer = client.get(path)
    assert answer.status_code == 200, answer.status_code
    return Rows(answer.get_data(as_text=True), row_class).found


# -- login and the two separate sessions ----------------------------------------------------------------------


def operator_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every operator route but the login and logout, with a real tenant's slug."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("operator.") or rule.endpoint in ("operator.login", "operator.login_submit",
                                                                           "operator.logout"):
            continue
        built = rule.build({"slug": "demo"}, append_unknown=False)
        assert built is not None
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, built[1]))
    return found


def test_an_agents_session_never_opens_the_operator_area_and_the_other_way_round(
        app: Flask, db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    make_operator(db_pool)
    make_agent(db_pool, "Ana Admin", OPERATOR_EMAIL, role="admin")  # the same address as the operator's
    agent = app.test_client()
    token = page_csrf(agent, "/console/login")
    assert agent.post("/console/login", data={"email": OPERATOR_EMAIL, "password": PASSWORD,
                                              "csrf_token": token}).status_code == 302
    assert agent.get("/console").status_code == 200
    version = tenant_changes.version(redis_conn)
    routes = operator_routes(app)
    assert len(routes) >= 10
    for method, path in routes:
        answer = agent.open(path, method=method, data={"csrf_token": token, "status": "suspended"},
                            headers={"X-CSRF-Token": token})
        if method == "GET":
            assert answer.status_code == 302 and answer.headers["Location"].startswith("/operator/login"), path
        else:
            assert answer.status_code == 403, (method, path, answer.status_code)
    assert rows(db_pool, "SELECT status FROM tenants WHERE slug = 'demo'") == [{"status": "active"}]
    assert tenant_changes.version(redis_conn) == version  # nothing changed
    # the agent's password is not the operator's: no operator session from it
    refused = agent.post("/operator/login", data={"email": OPERATOR_EMAIL, "password": PASSWORD,
                                                  "csrf_token": page_csrf(agent, "/operator/login")})
    assert refused.status_code == 401

    ops = operator_client(app)
    assert "Empresas" in ops.get("/operator").get_data(as_text=True)
    assert ops.get("/console").headers["Location"].startswith("/console/login")  # not an agent's session
    # one cookie copied under the other's name opens nothing (another salt)
    console_cookie = agent.get_cookie("encargo_console")
    operator_cookie = ops.get_cookie("encargo_operator", path="/operator")
    assert console_cookie is not None and operator_cookie is not None
    forged = app.test_client()
    forged.set_cookie("encargo_operator", console_cookie.value, path="/operator")
    assert forged.get("/operator").status_code == 302
    forged = app.test_client()
    forged.set_cookie("encargo_console", operator_cookie.value)
    assert forged.get("/console").status_code == 302

    # logging out ends the session for every copy of the cookie
    copy = app.test_client()
    copy.set_cookie("encargo_operator", operator_cookie.value, path="/operator")
    assert copy.get("/operator").status_code == 200
    assert ops.post("/operator/logout", data={"csrf_token": operator_csrf(ops)}).status_code == 302
    assert copy.get("/operator").status_code == 302


def test_the_operator_login_is_limited_like_the_agents_and_needs_csrf(app: Flask, db_pool: ConnectionPool,
                                                                       settings: Settings) -> None:
    make_operator(db_pool)
    client = app.test_client()
    token = page_csrf(client, "/operator/login")
    assert client.post("/operator/login", data={"email": OPERATOR_EMAIL,
                                                "password": OPERATOR_PASSWORD}).status_code == 403  # no CSRF token
    for _ in range(settings.console_login_attempts):
        answer = client.post("/operator/login", data={"email": OPERATOR_EMAIL, "password": "wrong password!",
                                                      "csrf_token": token})
        assert answer.status_code == 401
        assert "Correo o contraseña incorrectos." in answer.get_data(as_text=True)
    blocked = client.post("/operator/login", data={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD,
                                                   "csrf_token": token})
    assert blocked.status_code == 429 and "Demasiados intentos" in blocked.get_data(as_text=True)
    # an agent with the same address is not locked out by the operator's failures
    make_agent(db_pool, "Ana", OPERATOR_EMAIL)
    agent = app.test_client()
    assert agent.post("/console/login", data={"email": OPERATOR_EMAIL, "password": PASSWORD,
                                              "csrf_token": page_csrf(agent, "/console/login")}).status_code == 302


def test_operator_create_on_the_command_line_then_log_in(app: Flask, base_env: dict[str, str]) -> None:
    env = {**os.environ, **base_env, "ENCARGO_OPERATOR_PASSWORD": OPERATOR_PASSWORD}
    made = subprocess.run([sys.executable, "-m", "console.cli", "operator-create", "--email", "Jefa@Proveedor.sv"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert "operator jefa@proveedor.sv created" in made.stdout and OPERATOR_PASSWORD not in made.stdout
    again = subprocess.run([sys.executable, "-m", "console.cli", "operator-create", "--email", "jefa@proveedor.sv"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1 and "Ya existe" in again.stdout
    operator_client(app, "jefa@proveedor.sv")
    # make run's demo operator: created once from OPERATOR_DEMO_PASSWORD, kept afterwards
    demo_env = {**env, "OPERATOR_DEMO_EMAIL": OPERATOR_EMAIL, "OPERATOR_DEMO_PASSWORD": OPERATOR_PASSWORD}
    for run_env in (demo_env, {**demo_env, "OPERATOR_DEMO_PASSWORD": ""}):
        demo = subprocess.run([sys.executable, "-m", "console.cli", "demo-operator"], cwd=ROOT, env=run_env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert demo.returncode == 0 and f"/operator as {OPERATOR_EMAIL}" in demo.stdout, demo.stdout + demo.stderr
    operator_client(app)


# -- Empresas: the health page ---------------------------------------------------------------------------------


def test_the_health_page_counts_what_the_rows_say(app: Flask, db_pool: ConnectionPool, redis_conn: redis.Redis,
                                                  settings: Settings, graph: FakeGraphAPI, worker: Runtime) -> None:
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="cuscatlan", name="Envíos Rápidos Cuscatlán")
    tenant_admin.add_channel(db_pool, vault, redis_conn, "cuscatlan", provider="meta", number=NEW_NUMBER,
                             secret=NEW_TOKEN)
    graph.add_number(NEW_NUMBER, NEW_TOKEN)
    make_operator(db_pool)
    ops = operator_client(app)
    demo_number = settings.meta_phone_number_id
    web = app.test_client()

    before = {r["attrs"]["data-slug"]: r for r in table(ops, "/operator", "tenant-row")}
    assert before["demo"]["by"]["last-inbound"] == "nunca"
    assert f"Meta {demo_number} sin verificar" in before["demo"]["by"]["channels"]

    customer_writes(web, demo_number, "+50370000002", "hola")
    work(worker)
    graph.fail_next(2, status=400, code=131026, details="not a WhatsApp user")
    customer_writes(web, demo_number, "+50370000003", "hola")
    work(worker)
    graph.fail_next(1, status=401, code=190, message="Invalid OAuth access token")
    customer_writes(web, demo_number, "+50370000004", "buenas")
    work(worker)
    customer_writes(web, STRANGER_NUMBER, "+50370000005", "hola")  # nobody's number
    customer_writes(web, STRANGER_NUMBER, "+50370000006", "hola")
    tenant_admin.set_status(db_pool, redis_conn, "cuscatlan", "suspended")
    time.sleep(tenant_changes.CHECK_INTERVAL_S + 0.1)  # the worker's routing cache sees the suspension
    customer_writes(web, NEW_NUMBER, "+50370000007", "hola")
    work(worker)
    with db_pool.connection() as conn:  # one failure and one unroutable event from long ago
        conn.execute("UPDATE messages SET failed_at = now() - interval '2 days' WHERE id = (SELECT min(id)"
                     " FROM messages WHERE status = 'failed' AND error_code = '131026')")
        conn.execute("UPDATE webhook_events SET received_at = now() - interval '3 days' WHERE id = (SELECT min(id)"
                     " FROM webhook_events WHERE status = 'unroutable' AND channel_number = %s)", (STRANGER_NUMBER,))

    expected = rows(db_pool, "SELECT error_code, count(*) AS n FROM messages WHERE status = 'failed'"
                             " AND failed_at > now() - interval '24 hours' GROUP BY error_code")
    expected_codes = {r["error_code"]: r["n"] for r in expected}
    assert expected_codes.get("190") == 1 and expected_codes.get("131026", 0) >= 1
    after = {r["attrs"]["data-slug"]: r for r in table(ops, "/operator", "tenant-row")}
    demo, cuscatlan = after["demo"]["by"], after["cuscatlan"]["by"]
    assert demo["last-inbound"] == "hace un momento" and demo["last-reply"] == "hace un momento"
    # a signed event reached the Meta number; nothing reached the Twilio one
    assert f"Meta {demo_number} verificado" in demo["channels"]
    assert "Twilio +14155238886 sin verificar" in demo["channels"]
    for code, n in expected_codes.items():
        assert f"{n} × código {code}" in demo["errors"], (code, demo["errors"])
    assert "token de acceso no es válido" in demo["errors"] and "no tiene WhatsApp" in demo["errors"]
    assert cuscatlan["status"] == "suspendida" and cuscatlan["last-inbound"] == "nunca"
    assert cuscatlan["errors"] == "ninguno" and "sin verificar" in cuscatlan["channels"]  # suspended: not routed

    unroutable = {r["attrs"]["data-number"]: r["cells"] for r in Rows(ops.get("/operator").get_data(as_text=True),
                                                                     "unroutable-row").found}
    assert unroutable[STRANGER_NUMBER][1:5] == ["Meta", "ninguna empresa tiene ese número", "1", "2"]
    assert unroutable[NEW_NUMBER][1:5] == ["Meta", "la empresa está suspendida", "1", "1"]


def statements_of(services: dict[str, str], load: Any) -> int:
    """How many SQL statements PostgreSQL ran while `load()` ran (its log, with log_statement = all)."""
    log = Path(services["base"]) / "pg" / "postgres.log"
    before = log.stat().st_size
    load()
    time.sleep(0.2)  # the server writes its log lines as it runs them
    with log.open("rb") as found:
        found.seek(before)
        written = found.read().decode("utf-8", "replace")
    return len(re.findall(r"LOG:\s+(?:statement|execute [^:]*):", written))


def test_the_health_page_costs_the_same_queries_for_fifty_tenants(
        services: dict[str, str], settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    """One page load is a fixed number of statements: grouped queries, never one per tenant."""
    make_operator(db_pool)
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    with psycopg.connect(services["database_url"], autocommit=True) as admin:
        database = admin.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        admin.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(database)))
    app = create_app(settings)  # its connections log every statement
    try:
        ops = operator_client(app)
        counts = []
        for wanted in (2, 50):
            while len(rows(db_pool, "SELECT id FROM tenants")) < wanted:
                n = len(rows(db_pool, "SELECT id FROM tenants"))
                tenant_admin.create_tenant(db_pool, vault, redis_conn, slug=f"empresa-{n:02d}", name=f"Empresa {n}")
                tenant_admin.add_channel(db_pool, vault, redis_conn, f"empresa-{n:02d}", provider="meta",
                                         number=f"5000000000{n:05d}")
            ops.get("/operator")  # the pool's connections are open and its statements prepared
            counts.append(statements_of(services, lambda: ops.get("/operator")))
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
        with psycopg.connect(services["database_url"], autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} RESET log_statement").format(sql.Identifier(database)))
    assert counts[0] == counts[1] and 0 < counts[0] <= 12, counts


def test_the_health_page_lists_fifty_tenants(app: Flask, db_pool: ConnectionPool, redis_conn: redis.Redis,
                                             settings: Settings) -> None:
    make_operator(db_pool)
    ops = operator_client(app)
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    for n in range(50):
        tenant_admin.create_tenant(db_pool, vault, redis_conn, slug=f"empresa-{n:02d}", name=f"Empresa {n}")
        tenant_admin.add_channel(db_pool, vault, redis_conn, f"empresa-{n:02d}", provider="meta",
                                 number=f"5000000000{n:05d}")
    found = {r["attrs"]["data-slug"]: r["by"] for r in table(ops, "/operator", "tenant-row")}
    assert len(found) == 51
    assert found["empresa-07"]["channels"] == "Meta 500000000000007 sin verificar"
    assert found["empresa-07"]["plan"] == "Pro" and found["empresa-07"]["status"] == "activa"


def test_suspend_and_resume_from_the_page(app: Flask, db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    make_operator(db_pool)
    ops = operator_client(app)
    version = tenant_changes.version(redis_conn) or 0
    answer = ops.post("/operator/tenants/demo/status", data={"status": "suspended", "csrf_token": operator_csrf(ops)})
    assert answer.status_code == 302
    assert rows(db_pool, "SELECT status FROM tenants WHERE slug = 'demo'") == [{"status": "suspended"}]
    assert (tenant_changes.version(redis_conn) or 0) > version  # announced: every process drops its copy
    page = ops.get("/operator").get_data(as_text=True)
    assert "quedó suspendida" in page and "Reanudar" in page
    ops.post("/operator/tenants/demo/status", data={"status": "active", "csrf_token": operator_csrf(ops)})
    assert rows(db_pool, "SELECT status FROM tenants WHERE slug = 'demo'") == [{"status": "active"}]
    missing = ops.post("/operator/tenants/nadie/status", data={"status": "active", "csrf_token": operator_csrf(ops)})
    assert missing.status_code == 404


# -- the two onboarding checks -------------------------------------------------------------------------------


def check(client: FlaskClient, path: str, **form: str) -> dict[str, Any]:
    answer = client.post(path, data=form, headers={"X-CSRF-Token": operator_csrf(client)})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found: dict[str, Any] = answer.get_json()
    return found


def test_the_test_message_reaches_meta_with_the_typed_number_and_token(app: Flask, db_pool: ConnectionPool,
                                                                      graph: FakeGraphAPI) -> None:
    make_operator(db_pool)
    ops = operator_client(app)
    graph.add_number(NEW_NUMBER, NEW_TOKEN)
    sent = check(ops, "/operator/api/test-message", provider="meta", meta_number=NEW_NUMBER, meta_token=NEW_TOKEN,
                 test_phone="+503 7000-0009")
    assert sent["ok"] and sent["text"].startswith("Enviado"), sent
    [accepted] = graph.sends_to("+50370000009")
    assert (accepted.phone_number_id, accepted.token) == (NEW_NUMBER, NEW_TOKEN)
    assert accepted.body["type"] == "template"
    assert accepted.body["template"]["name"] == "hello_world"
    assert accepted.body["template"]["language"]["code"] == "en_US"

    refused = check(ops, "/operator/api/test-message", provider="meta", meta_number=NEW_NUMBER,
                    meta_token="un-token-viejo", test_phone="+50370000009")
    assert not refused["ok"] and refused["code"] == "190"
    assert "El token de acceso no es válido o ya venció" in refused["text"]
    graph.fail_next(1, status=400, code=133010, details="Account not registered")
    unregistered = check(ops, "/operator/api/test-message", provider="meta", meta_number=NEW_NUMBER,
                         meta_token=NEW_TOKEN, test_phone="+50370000009")
    assert not unregistered["ok"] and "no está registrado" in unregistered["text"]
    bad = check(ops, "/operator/api/test-message", provider="meta", meta_number="no es un número",
                meta_token=NEW_TOKEN, test_phone="+50370000009")
    assert not bad["ok"] and "phone number id" in bad["text"]
    assert len(graph.sends_to("+50370000009")) == 1  # nothing else was accepted
    assert "(código 190)" in refused["text"]
    assert NEW_TOKEN not in str(rows(db_pool, "SELECT * FROM webhook_events"))


def test_the_test_message_through_twilio(app: Flask, db_pool: ConnectionPool, twilio: FakeTwilioAPI) -> None:
    make_operator(db_pool)
    ops = operator_client(app)
    twilio.add_account(TWILIO_SUB, "token-de-la-subcuenta")
    sent = check(ops, "/operator/api/test-message", provider="twilio", twilio_number="+1 415 555 0100",
                 account_sid=TWILIO_SUB, twilio_token="token-de-la-subcuenta", test_phone="+50370000009")
    assert sent["ok"], sent
    [(account, params)] = twilio.sends_to("+50370000009")
    assert account == TWILIO_SUB and params["From"] == "whatsapp:+14155550100" and params["Body"] == TEST_TEXT
    wrong = check(ops, "/operator/api/test-message", provider="twilio", twilio_number="+14155550100",
                  account_sid=TWILIO_SUB, twilio_token="otro", test_phone="+50370000009")
    assert not wrong["ok"] and "Account SID o el Auth Token no son correctos" in wrong["text"]
    assert DEFAULT_ACCOUNT_SID not in wrong["text"]


def test_test_connection_names_the_company_or_says_why_not(app: Flask, db_pool: ConnectionPool,
                                                          company_core: str) -> None:
    make_operator(db_pool)
    ops = operator_client(app)
    ok = check(ops, "/operator/api/test-core", core_api_url=company_core, core_api_key=CORE_KEY)
    assert ok == {"ok": True, "text": "Conectado: el sistema responde como «Envíos Rápidos Cuscatlán»."}
    wrong_key = check(ops, "/operator/api/test-core", core_api_url=company_core, core_api_key="otra")
    assert wrong_key == {"ok": False, "text": "El sistema logístico rechazó la clave: revisa la clave de API."}
    with BackgroundServer(create_sandbox_app()) as gone:
        nobody = gone.url
    down = check(ops, "/operator/api/test-core", core_api_url=nobody, core_api_key=CORE_KEY)
    assert not down["ok"] and down["text"].startswith("No pudimos conectar con el sistema logístico")
    not_a_url = check(ops, "/operator/api/test-core", core_api_url="sistema.empresa.com", core_api_key=CORE_KEY)
    assert not not_a_url["ok"] and "https://" in not_a_url["text"]


# -- onboarding and editing --------------------------------------------------------------------------------


def new_company_form(core: str, **changes: str) -> dict[str, str]:
    return {"name": "Envíos Rápidos Cuscatlán", "slug": "", "timezone": "America/El_Salvador", "bot_name": "Brisa",
            "greeting": "", "provider": "meta", "meta_number": NEW_NUMBER, "waba_id": "1002003004",
            "meta_token": NEW_TOKEN, "core_api_url": core, "core_api_key": CORE_KEY,
            "events_secret": "secreto-de-eventos-de-cuscatlan", "plan": "scale", **changes}


def test_a_company_onboarded_from_the_page_answers_its_number_without_a_restart(
        app: Flask, db_pool: ConnectionPool, settings: Settings, graph: FakeGraphAPI, worker: Runtime,
        company_core: str) -> None:
    make_operator(db_pool)
    ops = operator_client(app)
    web = app.test_client()
    graph.add_number(NEW_NUMBER, NEW_TOKEN)
    customer_writes(web, NEW_NUMBER, "+50370000011", "hola")  # before it exists: unroutable, the worker remembers
    work(worker)
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "unroutable"}]

    assert check(ops, "/operator/api/test-message", provider="meta", meta_number=NEW_NUMBER, meta_token=NEW_TOKEN,
                 test_phone="+50370000012")["ok"]  # proven before saving
    form = new_company_form(company_core)
    answer = ops.post("/operator/tenants/new", data={**form, "csrf_token": operator_csrf(ops)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    [tenant] = rows(db_pool, "SELECT * FROM tenants WHERE slug = 'envios-rapidos-cuscatlan'")
    assert (tenant["name"], tenant["bot_name"], tenant["plan_code"], tenant["core_api_url"]) == (
        "Envíos Rápidos Cuscatlán", "Brisa", "scale", company_core)
    for secret in (CORE_KEY, "secreto-de-eventos-de-cuscatlan"):
        assert secret not in str(tenant)  # encrypted at rest
    [channel] = rows(db_pool, "SELECT * FROM tenant_channels WHERE number = %s", (NEW_NUMBER,))
    assert channel["waba_id"] == "1002003004" and NEW_TOKEN not in str(channel)
    assert channel["verified_at"] is not None  # the test message proved it
    edit = ops.get("/operator/tenants/envios-rapidos-cuscatlan/edit").get_data(as_text=True)
    for secret in (CORE_KEY, NEW_TOKEN, "secreto-de-eventos-de-cuscatlan"):
        assert secret not in edit
    assert "guardada · déjala vacía para no cambiarla" in edit

    time.sleep(tenant_changes.CHECK_INTERVAL_S + 0.1)  # the same worker, no restart: it sees the change
    customer_writes(web, NEW_NUMBER, "+50370000011", "hola", name="Beatriz")
    work(worker)
    replies = graph.sends_to("+50370000011")
    assert replies and all((r.phone_number_id, r.token) == (NEW_NUMBER, NEW_TOKEN) for r in replies)
    assert "Brisa" in str([r.body for r in replies])
    assert rows(db_pool, "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND direction = 'in'",
                (tenant["id"],)) == [{"n": 1}]

    again = ops.post("/operator/tenants/new", data={**form, "csrf_token": operator_csrf(ops)})
    assert again.status_code == 400
    page = again.get_data(as_text=True)
    assert "Ya hay una empresa con ese identificador" in page and "Ese número ya es de otra empresa" in page
    assert NEW_TOKEN not in page and CORE_KEY not in page


def test_editing_keeps_blank_secrets_and_manages_numbers(app: Flask, db_pool: ConnectionPool, settings: Settings,
                                                          graph: FakeGraphAPI, company_core: str) -> None:
    make_operator(db_pool)
    ops = operator_client(app)
    assert ops.post("/operator/tenants/new", data={**new_company_form(company_core, provider=""),
                                                   "csrf_token": operator_csrf(ops)}).status_code == 302
    slug = "envios-rapidos-cuscatlan"
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)

    def stored_key() -> str:
        sealed = rows(db_pool, "SELECT core_api_key_encrypted FROM tenants WHERE slug = %s", (slug,))[0]
        return vault.decrypt(sealed["core_api_key_encrypted"])

    edit = {"name": "Cuscatlán Envíos", "timezone": "America/Guatemala", "bot_name": "", "greeting": "¡Hola!",
            "core_api_url": company_core, "core_api_key": "", "events_secret": "", "plan": "pro"}
    saved = ops.post(f"/operator/tenants/{slug}/edit", data={**edit, "csrf_token": operator_csrf(ops)})
    assert saved.status_code == 302
    [row] = rows(db_pool, "SELECT name, timezone, bot_name, greeting, plan_code FROM tenants WHERE slug = %s", (slug,))
    assert row == {"name": "Cuscatlán Envíos", "timezone": "America/Guatemala", "bot_name": None,
                   "greeting": "¡Hola!", "plan_code": "pro"}
    assert stored_key() == CORE_KEY  # blank: unchanged
    # "Probar conexión" with the key left blank uses the saved one
    assert check(ops, "/operator/api/test-core", core_api_url=company_core, core_api_key="", tenant=slug)["ok"]
    ops.post(f"/operator/tenants/{slug}/edit", data={**edit, "core_api_key": "clave-nueva",
                                                      "csrf_token": operator_csrf(ops)})
    assert stored_key() == "clave-nueva"

    graph.add_number(NEW_NUMBER, NEW_TOKEN)
    added = ops.post(f"/operator/tenants/{slug}/channels", data={
        "provider": "meta", "meta_number": NEW_NUMBER, "meta_token": NEW_TOKEN, "csrf_token": operator_csrf(ops)})
    assert added.status_code == 302
    assert rows(db_pool, "SELECT number, verified_at FROM tenant_channels WHERE number = %s",
                (NEW_NUMBER,)) == [{"number": NEW_NUMBER, "verified_at": None}]
    # the saved number's test with its token left blank: the saved token, and the number is verified
    sent = check(ops, "/operator/api/test-message", provider="meta", meta_number=NEW_NUMBER, meta_token="",
                 test_phone="+50370000013", tenant=slug)
    assert sent["ok"] and graph.sends_to("+50370000013")[0].token == NEW_TOKEN
    assert rows(db_pool, "SELECT verified_at IS NOT NULL AS v FROM tenant_channels WHERE number = %s",
                (NEW_NUMBER,)) == [{"v": True}]
    # another company cannot test or take that number
    other = check(ops, "/operator/api/test-message", provider="meta", meta_number=NEW_NUMBER, meta_token="",
                  test_phone="+50370000013", tenant="demo")
    assert other == {"ok": False, "text": "Ese número ya es de otra empresa."}
    taken = ops.post("/operator/tenants/demo/channels", data={
        "provider": "meta", "meta_number": NEW_NUMBER, "csrf_token": operator_csrf(ops)}, follow_redirects=True)
    assert "Ese número ya es de otra empresa." in taken.get_data(as_text=True)

    removed = ops.post(f"/operator/tenants/{slug}/channels/remove", data={
        "provider": "meta", "number": NEW_NUMBER, "csrf_token": operator_csrf(ops)})
    assert removed.status_code == 302
    assert rows(db_pool, "SELECT * FROM tenant_channels WHERE number = %s", (NEW_NUMBER,)) == []
    assert ops.get("/operator/tenants/nadie/edit").status_code == 404


# -- Uso ---------------------------------------------------------------------------------------------------


def test_the_usage_csv_holds_the_pages_rows(app: Flask, db_pool: ConnectionPool, graph: FakeGraphAPI,
                                            settings: Settings, worker: Runtime, redis_conn: redis.Redis) -> None:
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="cuscatlan", name="Envíos Rápidos Cuscatlán")
    make_operator(db_pool)
    ops = operator_client(app)
    web = app.test_client()
    for phone in ("+50370000021", "+50370000022"):
        customer_writes(web, settings.meta_phone_number_id, phone, "hola")
    work(worker)
    with db_pool.connection() as conn:  # Starter allows no bot conversations: two of them are over its limit
        plans.set_plan(conn, "demo", "starter")
    month = rows(db_pool, "SELECT to_char(now() AT TIME ZONE 'America/El_Salvador', 'YYYY-MM') AS m")[0]["m"]

    page_rows = {r["attrs"]["data-slug"]: r["by"] for r in table(ops, f"/operator/usage?month={month}", "usage-row")}
    answer = ops.get(f"/operator/usage.csv?month={month}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == f'attachment; filename="uso-{month}.csv"'
    csv_rows = {r["tenant"]: r for r in csv.DictReader(io.StringIO(answer.get_data(as_text=True)))}
    assert set(page_rows) == set(csv_rows) == {"demo", "cuscatlan"}
    for slug, shown in page_rows.items():
        figures = {k: v for k, v in shown.items() if k not in ("num", "overage", "plan")}
        shown_all = set(csv_rows[slug]) - {"tenant", "month", "plan", "over_limits"}
        assert set(figures) == shown_all and all(csv_rows[slug][k] == v for k, v in figures.items()), (slug, figures)
        assert csv_rows[slug]["month"] == month
    assert (page_rows["demo"]["plan"], csv_rows["demo"]["plan"]) == ("Starter", "starter")
    assert csv_rows["demo"]["over_limits"] == "bot_conversations:rules_only"
    assert page_rows["demo"]["overage"] == "conversaciones del bot: responde solo con reglas"
    assert csv_rows["cuscatlan"]["over_limits"] == "" and page_rows["cuscatlan"]["overage"] == "ninguno"
    assert csv_rows["demo"]["customer_messages"] == "2" and csv_rows["cuscatlan"]["customer_messages"] == "0"
    assert int(csv_rows["demo"]["bot_conversations"]) == 2
    assert ops.get("/operator/usage?month=diciembre").status_code == 400
