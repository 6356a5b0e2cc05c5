"""Issue 12, the console's sessions (Flask test client, real PostgreSQL and Redis): logging out ends the session
on the server for every copy of the cookie; a password reset or a deactivation ends all of an agent's sessions;
a new reset link revokes the earlier ones; the login limit counts per (account, client address) under a slower
ceiling per account, with the client's address taken from X-Forwarded-For only for the trusted hops; a locked
account gets back in by a reset; production without SMTP says resets are unavailable."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from console import auth
from handoff import live
from tests.console_support import PASSWORD, make_agent
from tests.fakes.smtp_server import closed_port
from tests.harness import rows
from web.app import create_app

COOKIE = "encargo_console"
NEW_PASSWORD = "una clave nueva larga"
ATTACKER = "203.0.113.9"
CARLOS_HOME = "198.51.100.7"


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "CONSOLE_LOGIN_ATTEMPTS": "3"})


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()


def console_app(apps: list[Flask], settings: Settings, **overrides: object) -> Flask:
    app = create_app(settings.with_overrides(**overrides) if overrides else settings)
    apps.append(app)
    return app


@pytest.fixture
def app(apps: list[Flask], settings: Settings) -> Flask:
    return console_app(apps, settings)


def csrf_of(client: FlaskClient, path: str = "/console/login") -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def try_login(client: FlaskClient, email: str, password: str, address: str | None = None) -> tuple[int, str]:
    """Post the login form (from `address`, as a proxy would report it); the status and the page's text."""
    headers = {"X-Forwarded-For": address} if address else {}
    answer = client.post("/console/login", data={"email": email, "password": password,
                                                 "csrf_token": csrf_of(client)}, headers=headers)
    return answer.status_code, answer.get_data(as_text=True)


def log_in(client: FlaskClient, email: str, password: str = PASSWORD) -> None:
    status, text = try_login(client, email, password)
    assert status == 302, text


def reset_link(client: FlaskClient, email: str, caplog: pytest.LogCaptureFixture) -> str:
    """Ask for a reset on the page; returns the path of the link written to the log (development, no SMTP)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="console.mailer"):
        answer = client.post("/console/password/forgot",
                             data={"email": email, "csrf_token": csrf_of(client, "/console/password/forgot")})
    assert answer.status_code == 200
    found = re.findall(r"http://localhost(/console/password/reset/\S+)", caplog.text)
    assert len(found) == 1, caplog.text
    return str(found[0])


def choose_password(client: FlaskClient, path: str, password: str = NEW_PASSWORD) -> tuple[int, str]:
    answer = client.post(path, data={"password": password, "confirm": password,
                                     "csrf_token": csrf_of(client, "/console/password/forgot")})
    return answer.status_code, answer.get_data(as_text=True)


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second browser holding a copy of `client`'s session cookie."""
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie.value)
    return thief


# -- server-side sessions --------------------------------------------------------------------------------------


def test_logging_out_ends_the_session_for_a_copied_cookie_too(app: Flask, db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    carlos = app.test_client()
    log_in(carlos, "carlos@example.com")
    thief = copy_of(app, carlos)
    assert thief.get("/console/api/queue").status_code == 200  # the copy works while the session lives
    assert "Carlos Rivas" in thief.get("/console").get_data(as_text=True)

    assert carlos.post("/console/logout", data={"csrf_token": csrf_of(carlos, "/console")}).status_code == 302
    assert thief.get("/console/api/queue").status_code == 401
    page = thief.get("/console")
    assert page.status_code == 302 and page.headers["Location"].startswith("/console/login")
    assert carlos.get("/console/api/queue").status_code == 401
    assert [r["revoked"] for r in rows(db_pool, "SELECT revoked_at IS NOT NULL AS revoked FROM agent_sessions")] \
        == [True]

    log_in(carlos, "carlos@example.com")  # a new login is a new session; the old copy stays dead
    assert carlos.get("/console/api/queue").status_code == 200
    assert thief.get("/console/api/queue").status_code == 401


def test_logging_out_ends_a_live_stream_opened_with_a_copied_cookie(app: Flask, db_pool: ConnectionPool,
                                                                    redis_conn: redis.Redis) -> None:
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    browser = app.test_client()
    log_in(browser, "carlos@example.com")
    thief = copy_of(app, browser)
    stream = thief.get("/console/api/events", buffered=False)
    try:
        chunks = iter(stream.response)
        assert next(chunks).startswith(b"retry: 2000\n: connected")
        live.publish(redis_conn, carlos.tenant_id, "escalation", case_id=1)
        assert next(chunks).startswith(b"event: escalation")  # the copy hears the tenant's events...
        assert browser.post("/console/logout", data={"csrf_token": csrf_of(browser, "/console")}).status_code == 302
        live.publish(redis_conn, carlos.tenant_id, "escalation", case_id=2)
        assert next(chunks, None) is None  # ...until the logout: the stream ends instead of forwarding it
    finally:
        stream.close()


def test_a_password_reset_ends_every_session_of_that_agent_only(app: Flask, db_pool: ConnectionPool,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Torres", "ana@example.com")
    office, phone, ana = app.test_client(), app.test_client(), app.test_client()
    log_in(office, "carlos@example.com")
    log_in(phone, "carlos@example.com")
    log_in(ana, "ana@example.com")

    stranger = app.test_client()
    status, _ = choose_password(stranger, reset_link(stranger, "carlos@example.com", caplog))
    assert status == 302
    assert office.get("/console/api/queue").status_code == 401
    assert phone.get("/console/api/queue").status_code == 401
    assert ana.get("/console/api/queue").status_code == 200  # another agent's session is not touched
    assert try_login(office, "carlos@example.com", PASSWORD)[0] == 401
    log_in(office, "carlos@example.com", NEW_PASSWORD)


def test_an_agent_changing_her_password_ends_her_other_sessions_and_keeps_this_one(
        app: Flask, db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    office, phone = app.test_client(), app.test_client()
    log_in(office, "carlos@example.com")
    log_in(phone, "carlos@example.com")
    thief = copy_of(app, office)
    assert 'href="/console/password"' in office.get("/console").get_data(as_text=True)

    def change(current: str, new: str, confirm: str | None = None) -> tuple[int, str]:
        answer = office.post("/console/password", data={
            "current": current, "password": new, "confirm": new if confirm is None else confirm,
            "csrf_token": csrf_of(office, "/console/password")})
        return answer.status_code, answer.get_data(as_text=True)

    status, text = change("no es la mía 123", NEW_PASSWORD)
    assert status == 400 and "La contraseña actual no es correcta." in text
    status, text = change(PASSWORD, NEW_PASSWORD, "otra distinta 123")
    assert status == 400 and "Las contraseñas nuevas no coinciden." in text
    assert phone.get("/console/api/queue").status_code == 200  # nothing changed yet

    status, _ = change(PASSWORD, NEW_PASSWORD)
    assert status == 302
    assert "Se cerraron tus sesiones en otros navegadores" in office.get("/console").get_data(as_text=True)
    assert office.get("/console/api/queue").status_code == 200  # the browser that changed it goes on
    assert phone.get("/console/api/queue").status_code == 401
    assert thief.get("/console/api/queue").status_code == 401  # the old cookie, copied before, is dead
    assert try_login(phone, "carlos@example.com", PASSWORD)[0] == 401
    log_in(phone, "carlos@example.com", NEW_PASSWORD)


def test_a_deactivated_agent_stays_logged_out_after_reactivation(app: Flask, db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="admin")
    luis_id = make_agent(db_pool, "Luis Pérez", "luis@example.com").id
    admin, luis = app.test_client(), app.test_client()
    log_in(admin, "ana@example.com")
    log_in(luis, "luis@example.com")
    token = csrf_of(admin, "/console")
    for active in ("0", "1"):
        done = admin.post("/console/agents", data={"agent_id": str(luis_id), "active": active, "csrf_token": token})
        assert done.status_code == 200
    assert luis.get("/console/api/queue").status_code == 401  # reactivating revives no old session
    log_in(luis, "luis@example.com")
    assert luis.get("/console/api/queue").status_code == 200


# -- reset links -----------------------------------------------------------------------------------------------


def test_a_new_reset_link_revokes_the_earlier_one(app: Flask, db_pool: ConnectionPool, redis_conn: redis.Redis,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    client = app.test_client()
    first = reset_link(client, "carlos@example.com", caplog)
    redis_conn.delete(auth.RESET_KEY.format(agent_id=carlos.id))  # a minute later
    second = reset_link(client, "carlos@example.com", caplog)

    page = client.get(first)
    assert page.status_code == 410
    assert "ya no sirve porque después pediste otro" in page.get_data(as_text=True)
    status, text = choose_password(client, first)
    assert status == 410 and "Usa el enlace más reciente" in text
    log_in(client, "carlos@example.com")  # the old password still works: the first link changed nothing

    assert client.get(second).status_code == 200
    assert choose_password(client, second)[0] == 302
    page = client.get(second)
    assert page.status_code == 410 and "Este enlace ya se usó o venció" in page.get_data(as_text=True)


def test_a_short_password_on_the_reset_page_is_refused_in_spanish(app: Flask, db_pool: ConnectionPool,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    client = app.test_client()
    path = reset_link(client, "carlos@example.com", caplog)
    status, text = choose_password(client, path, "corta")
    assert status == 400 and "La contraseña debe tener al menos 10 caracteres." in text
    assert client.get(path).status_code == 200  # the link still works


def test_production_without_smtp_says_resets_are_unavailable(apps: list[Flask], settings: Settings,
                                                             db_pool: ConnectionPool,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    app = console_app(apps, settings, env="production", whatsapp_provider="twilio",
                      twilio_account_sid="AC" + "0" * 32, console_session_secret="s" * 32,
                      internal_events_secret="e" * 32, console_secure_cookies=False)
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    client = app.test_client()
    page = client.get("/console/password/forgot").get_data(as_text=True)
    assert "no se puede recuperar la contraseña" in page and "administra el sistema" in page
    assert 'name="email"' not in page  # no form that would pretend to send something
    with caplog.at_level(logging.INFO):
        answer = client.post("/console/password/forgot", data={"email": "carlos@example.com",
                                                               "csrf_token": csrf_of(client, "/console/login")})
    assert answer.status_code == 200 and "no se puede recuperar la contraseña" in answer.get_data(as_text=True)
    assert rows(db_pool, "SELECT count(*) AS n FROM password_resets")[0]["n"] == 0
    assert "/console/password/reset/" not in caplog.text


# -- the login limit and the client's address --------------------------------------------------------------------


def test_an_attackers_address_cannot_lock_the_agent_out_of_hers(apps: list[Flask], settings: Settings,
                                                                db_pool: ConnectionPool,
                                                                redis_conn: redis.Redis) -> None:
    app = console_app(apps, settings, trusted_proxy_hops=1)
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    attacker, carlos = app.test_client(), app.test_client()
    for _ in range(3):
        assert try_login(attacker, "carlos@example.com", "adivinando 123", ATTACKER)[0] == 401
    status, text = try_login(attacker, "carlos@example.com", "adivinando 456", ATTACKER)
    assert status == 429 and "Demasiados intentos fallidos. Espera 15 minutos" in text
    # forging an earlier X-Forwarded-For entry does not help: the proxy appends the real address last
    assert try_login(attacker, "carlos@example.com", "adivinando 789", f"10.9.8.7, {ATTACKER}")[0] == 429

    status, text = try_login(carlos, "carlos@example.com", PASSWORD, CARLOS_HOME)
    assert status == 302, text
    assert carlos.get("/console/api/queue").status_code == 200

    keys = " ".join(k.decode() if isinstance(k, bytes) else k for k in redis_conn.keys("console:login-fail:*"))
    assert keys and "carlos" not in keys and ATTACKER not in keys  # neither e-mails nor addresses in clear


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(app: Flask, db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    attacker = app.test_client()
    for n in range(3):
        assert try_login(attacker, "carlos@example.com", "adivinando 123", f"10.0.0.{n}")[0] == 401
    # a fresh forged address each time: still the same client (the connection's own address), so blocked
    assert try_login(attacker, "carlos@example.com", PASSWORD, "10.0.0.99")[0] == 429


def test_many_addresses_hit_the_account_ceiling_and_a_reset_lets_the_agent_back_in(
        apps: list[Flask], settings: Settings, db_pool: ConnectionPool, caplog: pytest.LogCaptureFixture) -> None:
    app = console_app(apps, settings, trusted_proxy_hops=1)
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    botnet, carlos = app.test_client(), app.test_client()
    for n in range(4):  # 4 addresses x 3 failures: the account's ceiling (3 x 4 an hour)
        for _ in range(3):
            assert try_login(botnet, "carlos@example.com", "adivinando 123", f"192.0.2.{n}")[0] == 401
    assert try_login(botnet, "carlos@example.com", "adivinando 123", "192.0.2.200")[0] == 429
    status, text = try_login(carlos, "carlos@example.com", PASSWORD, CARLOS_HOME)
    assert status == 429 and "Espera 60 minutos" in text and "¿Olvidaste tu contraseña?" in text

    path = reset_link(carlos, "carlos@example.com", caplog)  # a locked account can still ask for a link
    assert choose_password(carlos, path)[0] == 302
    status, text = try_login(carlos, "carlos@example.com", NEW_PASSWORD, CARLOS_HOME)
    assert status == 302, text
    assert carlos.get("/console/api/queue").status_code == 200


def test_without_redis_agents_still_log_in_and_out(apps: list[Flask], settings: Settings, db_pool: ConnectionPool,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    app = console_app(apps, settings, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    carlos = app.test_client()
    with caplog.at_level(logging.WARNING, logger="console.login_limit"):
        assert try_login(carlos, "carlos@example.com", "adivinando 123")[0] == 401
        log_in(carlos, "carlos@example.com")
    assert "login limit unavailable: ConnectionError" in caplog.text
    thief = copy_of(app, carlos)
    assert carlos.post("/console/logout", data={"csrf_token": csrf_of(carlos, "/console")}).status_code == 302
    assert thief.get("/console/api/queue").status_code == 401  # sessions never needed Redis
