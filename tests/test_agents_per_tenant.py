"""Agents' e-mails are unique per company, not across companies (migration 0013, handoff/agents.py).

The same address may hold an account at two companies: the login opens the one whose password matches (and
asks which company when the password opens both); a company's admin adds an agent whose address is used at
another company without learning it; the password reset mails each account its own link and resets only
that account; `encargo-admin create-agent --tenant` and `reset-link --tenant` pick the company.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from console.mailer import Mailer
from handoff import agents
from storage import tenant_admin
from storage.crypto import Vault
from tests.fakes.smtp_server import FakeSMTPServer
from tests.harness import rows
from web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
SHARED = "ana@correo.sv"
PASSWORD_A, PASSWORD_B = "clave de ana en la primera", "clave de ana en cuscatlan"


@pytest.fixture
def companies(settings: Settings, db_pool: ConnectionPool) -> tuple[int, int]:
    """The configured company (A) and a second one (B) made as the operator makes it."""
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    second = tenant_admin.create_tenant(db_pool, vault, None, slug="cuscatlan", name="Envíos Rápidos Cuscatlán")
    first = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    return first, second.id


@pytest.fixture
def smtp() -> Iterator[FakeSMTPServer]:
    with FakeSMTPServer(users={"soporte@encargo.test": "clave-smtp"}) as server:
        yield server


@pytest.fixture
def app(settings: Settings, smtp: FakeSMTPServer) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(smtp_url=f"smtp://soporte%40encargo.test:clave-smtp@127.0.0.1:{smtp.port}",
                                                     smtp_from="Soporte <soporte@encargo.test>"))
    yield application
    found = application.extensions["console"].mailer
    if isinstance(found, Mailer):
        found.close()
    application.extensions["db_pool"].close()
    application.extensions["redis"].close()


def add(pool: ConnectionPool, tenant_id: int, email: str, password: str, *, name: str = "Ana Martínez",
        role: str = "agent") -> agents.Agent:
    with pool.connection() as conn:
        return agents.create_agent(conn, tenant_id=tenant_id, name=name, email=email, role=role, password=password)


def csrf(client: FlaskClient, path: str = "/console/login") -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def log_in(client: FlaskClient, email: str, password: str, company: str | None = None) -> tuple[int, str]:
    form = {"email": email, "password": password, "csrf_token": csrf(client)}
    if company:
        form["company"] = company
    answer = client.post("/console/login", data=form)
    return answer.status_code, answer.get_data(as_text=True)


def whoami(client: FlaskClient) -> tuple[int, str]:
    """(tenant id, agent name) of the session: the queue page names the agent, the cookie holds the tenant."""
    with client.session_transaction("/console") as session:
        tenant = int(session["tenant_id"])
    page = client.get("/console").get_data(as_text=True)
    name = re.search(r'class="who" data-agent-id="\d+">([^<·]+) ·', page)
    assert name, page
    return tenant, name.group(1).strip()


def test_an_address_at_two_companies_logs_in_where_the_password_matches(
        client: FlaskClient, companies: tuple[int, int], db_pool: ConnectionPool) -> None:
    first, second = companies
    at_a = add(db_pool, first, SHARED, PASSWORD_A, name="Ana Primera")
    at_b = add(db_pool, second, "Ana@Correo.sv", PASSWORD_B, name="Ana Segunda")
    assert at_a.email == at_b.email == SHARED and at_a.id != at_b.id

    assert log_in(client, SHARED, PASSWORD_B)[0] == 302
    assert whoami(client) == (second, "Ana Segunda")
    client.post("/console/logout", data={"csrf_token": csrf(client)})
    assert log_in(client, "ANA@correo.sv", PASSWORD_A)[0] == 302
    assert whoami(client) == (first, "Ana Primera")
    client.post("/console/logout", data={"csrf_token": csrf(client)})

    status, page = log_in(client, SHARED, "ninguna de las dos claves")
    assert status == 401 and "Correo o contraseña incorrectos." in page and "Cuscatlán" not in page
    # naming a company the password does not open is a wrong password, nothing more
    status, page = log_in(client, SHARED, PASSWORD_A, company="cuscatlan")
    assert status == 401 and "Correo o contraseña incorrectos." in page

    with db_pool.connection() as conn:  # a deactivated account is no candidate: the other one still opens
        agents.set_active(conn, second, at_b.id, False)
        assert agents.authenticate(conn, SHARED, PASSWORD_B) is None
        found = agents.authenticate(conn, SHARED, PASSWORD_A)
        assert found is not None and found.id == at_a.id


def test_the_same_password_at_both_companies_asks_which_one(
        client: FlaskClient, companies: tuple[int, int], db_pool: ConnectionPool, settings: Settings) -> None:
    first, second = companies
    add(db_pool, first, SHARED, PASSWORD_A, name="Ana Primera")
    add(db_pool, second, SHARED, PASSWORD_A, name="Ana Segunda")
    add(db_pool, second, "otra@correo.sv", PASSWORD_A, name="Otra Persona")

    status, page = log_in(client, SHARED, PASSWORD_A)
    assert status == 200 and "¿A cuál quieres entrar?" in page
    offered = re.findall(r'<option value="([^"]+)">([^<]+)</option>', page)
    assert sorted(offered) == [("cuscatlan", "Envíos Rápidos Cuscatlán"), (settings.tenant_slug, settings.tenant_name)]
    assert f'value="{SHARED}"' in page and PASSWORD_A not in page  # the password is typed again, never echoed
    with client.session_transaction("/console") as session:
        assert "sid" not in session  # nobody is logged in yet

    assert log_in(client, SHARED, PASSWORD_A, company="cuscatlan")[0] == 302
    assert whoami(client) == (second, "Ana Segunda")


def test_an_admin_adds_an_agent_whose_address_is_used_at_another_company(
        client: FlaskClient, companies: tuple[int, int], db_pool: ConnectionPool) -> None:
    first, second = companies
    add(db_pool, second, SHARED, PASSWORD_B, name="Ana Segunda")
    add(db_pool, first, "jefa@primera.sv", PASSWORD_A, name="Jefa Primera", role="admin")
    assert log_in(client, "jefa@primera.sv", PASSWORD_A)[0] == 302

    made = client.post("/console/agents", data={"name": "Ana Primera", "email": SHARED.upper(), "role": "agent",
                                                "password": PASSWORD_A, "csrf_token": csrf(client)})
    page = made.get_data(as_text=True)
    assert made.status_code == 200 and "Ana Primera" in page
    assert "Ana Segunda" not in page and "Cuscatlán" not in page and "Ya existe" not in page
    again = client.post("/console/agents", data={"name": "Ana Otra", "email": SHARED, "role": "agent",
                                                 "password": PASSWORD_A, "csrf_token": csrf(client)})
    assert again.status_code == 400  # within one company an address is still unique
    assert f"Ya existe un agente con el correo {SHARED}." in again.get_data(as_text=True)
    stored = rows(db_pool, "SELECT tenant_id, name FROM agents WHERE email = %s ORDER BY tenant_id", (SHARED,))
    assert [(r["tenant_id"], r["name"]) for r in stored] == [(first, "Ana Primera"), (second, "Ana Segunda")]


def test_a_reset_link_resets_only_its_own_company_account(
        client: FlaskClient, companies: tuple[int, int], db_pool: ConnectionPool, smtp: FakeSMTPServer,
        app: Flask) -> None:
    first, second = companies
    at_a = add(db_pool, first, SHARED, PASSWORD_A, name="Ana Primera")
    at_b = add(db_pool, second, SHARED, PASSWORD_B, name="Ana Segunda")

    token = csrf(client, "/console/password/forgot")
    answer = client.post("/console/password/forgot", data={"email": SHARED, "csrf_token": token})
    unknown = client.post("/console/password/forgot", data={"email": "nadie@correo.sv", "csrf_token": token})
    assert answer.status_code == unknown.status_code == 200
    assert answer.get_data(as_text=True) == unknown.get_data(as_text=True)
    mailer = app.extensions["console"].mailer
    assert isinstance(mailer, Mailer) and mailer.wait(15)
    mails = smtp.wait_for(2)
    by_company = {("Cuscatlán" in m.text): m for m in mails}
    assert set(by_company) == {True, False}  # one mail per account, each naming its own company
    link_b = re.search(r"(/console/password/reset/[A-Za-z0-9_-]+)\s", by_company[True].text)
    assert link_b and "Transportes Express" not in by_company[True].text
    new_password = "una clave nueva para cuscatlan"
    done = client.post(link_b.group(1), data={"password": new_password, "confirm": new_password,
                                              "csrf_token": token})
    assert done.status_code == 302
    with db_pool.connection() as conn:
        assert agents.password_matches(conn, at_b.id, new_password)
        assert agents.password_matches(conn, at_a.id, PASSWORD_A)  # the other company's account is untouched
        assert not agents.password_matches(conn, at_a.id, new_password)


def admin(base_env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env={**base_env, **extra},
                          capture_output=True, text=True, timeout=60, check=False)


def test_encargo_admin_create_agent_and_reset_link_take_the_tenant(
        base_env: dict[str, str], companies: tuple[int, int], db_pool: ConnectionPool,
        settings: Settings) -> None:
    first, second = companies
    made = admin(base_env, "create-agent", "--email", SHARED, "--name", "Ana Primera", "--role", "agent",
                 ENCARGO_AGENT_PASSWORD=PASSWORD_A)
    assert made.returncode == 0, made.stdout + made.stderr
    made = admin(base_env, "create-agent", "--tenant", "cuscatlan", "--email", SHARED, "--name", "Ana Segunda",
                 ENCARGO_AGENT_PASSWORD=PASSWORD_B)
    assert made.returncode == 0, made.stdout + made.stderr
    stored = rows(db_pool, "SELECT tenant_id, name FROM agents ORDER BY tenant_id")
    assert [(r["tenant_id"], r["name"]) for r in stored] == [(first, "Ana Primera"), (second, "Ana Segunda")]
    nowhere = admin(base_env, "create-agent", "--tenant", "no-existe", "--email", "x@correo.sv", "--name", "X",
                    ENCARGO_AGENT_PASSWORD=PASSWORD_A)
    assert nowhere.returncode == 1 and "no tenant 'no-existe'" in nowhere.stdout

    env = {"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    which = admin(base_env, "reset-link", "--email", SHARED, **env)
    assert which.returncode == 1
    assert f"at several tenants (cuscatlan, {settings.tenant_slug}): pass --tenant" in which.stdout
    link = admin(base_env, "reset-link", "--email", SHARED, "--tenant", "cuscatlan", **env)
    assert link.returncode == 0, link.stdout
    token = link.stdout.strip().rsplit("/", 1)[1]
    with db_pool.connection() as conn:
        assert agents.use_reset(conn, token, "otra clave nueva larga") is not None
        ids = {r["tenant_id"]: r["id"] for r in rows(db_pool, "SELECT id, tenant_id FROM agents")}
        assert agents.password_matches(conn, ids[second], "otra clave nueva larga")
        assert agents.password_matches(conn, ids[first], PASSWORD_A)
    missing = admin(base_env, "reset-link", "--email", "nadie@correo.sv", **env)
    assert missing.returncode == 1 and "no agent nadie@correo.sv" in missing.stdout
