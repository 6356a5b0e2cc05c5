"""The console over HTTP (Flask test client, real PostgreSQL and Redis): login, sessions, CSRF, the login
rate limit, password reset, tenant isolation, the queue's order and SLA timers, and the JSON actions."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from console import case_queue
from tests.console_support import PASSWORD, TUESDAY_NIGHT, Customer, make_agent, other_tenant
from tests.harness import rows, run_jobs
from web.app import create_app


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "CONSOLE_SLA_NORMAL_S": "300",
                              "CONSOLE_SLA_HIGH_S": "120", "CONSOLE_LOGIN_ATTEMPTS": "3"})


def csrf_of(client: FlaskClient, path: str = "/console/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, page[:300]
    return match.group(1)


def log_in(client: FlaskClient, email: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the CSRF token for the JSON calls."""
    token = csrf_of(client)
    answer = client.post("/console/login", data={"email": email, "password": password, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return csrf_of(client, "/console")


def test_login_sets_a_hardened_session_cookie_and_logout_ends_it(client: FlaskClient,
                                                                 db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    assert client.get("/console").status_code == 302  # no session: to the login page
    token = csrf_of(client)
    answer = client.post("/console/login", data={"email": "Carlos@Example.com", "password": PASSWORD,
                                                 "csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"] == "/console"
    cookie = answer.headers["Set-Cookie"]
    assert "encargo_console=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/console")
    assert page.status_code == 200 and "Carlos Rivas" in page.get_data(as_text=True)
    assert "script-src 'self';" in page.headers["Content-Security-Policy"] and "<script>" not in page.get_data(
        as_text=True)  # no inline script to allow
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"

    token = csrf_of(client, "/console")
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/console/api/queue").status_code == 401


def test_secure_cookie_when_configured(settings: Settings, db_pool: ConnectionPool) -> None:
    app = create_app(settings.with_overrides(console_secure_cookies=True))
    try:
        make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
        with app.test_client() as client:
            token = csrf_of(client)
            answer = client.post("/console/login", data={"email": "carlos@example.com", "password": PASSWORD,
                                                         "csrf_token": token})
            assert "Secure" in answer.headers["Set-Cookie"]
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()


def test_wrong_password_and_the_login_rate_limit(client: FlaskClient, db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    token = csrf_of(client)
    for _ in range(3):
        answer = client.post("/console/login", data={"email": "carlos@example.com", "password": "wrong password!",
                                                     "csrf_token": token})
        assert answer.status_code == 401
        assert "Correo o contraseña incorrectos" in answer.get_data(as_text=True)
    blocked = client.post("/console/login", data={"email": "carlos@example.com", "password": PASSWORD,
                                                  "csrf_token": token})
    assert blocked.status_code == 429  # even the right password, for 15 minutes
    assert "Demasiados intentos" in blocked.get_data(as_text=True)


def test_no_action_without_a_session(client: FlaskClient, maria: Customer) -> None:
    case_id = maria.escalate()
    assert client.get("/console/api/queue").status_code == 401
    assert client.get("/console/api/events").status_code == 401
    assert client.get(f"/console/api/cases/{case_id}").status_code == 401
    token = csrf_of(client)  # a CSRF token alone is not a session
    answer = client.post(f"/console/api/cases/{case_id}/claim", headers={"X-CSRF-Token": token})
    assert answer.status_code == 401 and answer.get_json() == {"error": "log in first"}
    assert client.get(f"/console/cases/{case_id}").headers["Location"].startswith("/console/login?next=")


def test_csrf_is_enforced_on_every_state_change(client: FlaskClient, db_pool: ConnectionPool,
                                                maria: Customer) -> None:
    case_id = maria.escalate()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    assert client.post("/console/login", data={"email": "carlos@example.com", "password": PASSWORD}).status_code == 403
    token = log_in(client, "carlos@example.com")
    for path in ("claim", "reply", "notes", "hand-back", "resolve", "typing"):
        answer = client.post(f"/console/api/cases/{case_id}/{path}", json={"text": "x", "body": "x", "reason": "x"})
        assert answer.status_code == 403, path
        assert "CSRF" in answer.get_json()["error"]
    forged = client.post(f"/console/api/cases/{case_id}/claim", headers={"X-CSRF-Token": token + "x"})
    assert forged.status_code == 403
    assert client.post("/console/logout").status_code == 403
    assert rows(db_pool, "SELECT status FROM escalations")[0]["status"] == "waiting"
    assert client.post(f"/console/api/cases/{case_id}/claim", headers={"X-CSRF-Token": token}).status_code == 200


def test_an_agent_sees_and_answers_only_their_company(client: FlaskClient, db_pool: ConnectionPool,
                                                      maria: Customer) -> None:
    case_id = maria.escalate()
    make_agent(db_pool, "Pedro Otro", "pedro@otra.example", tenant_id=other_tenant(db_pool))
    token = log_in(client, "pedro@otra.example")
    assert client.get("/console/api/queue").get_json()["cases"] == []
    assert client.get(f"/console/api/cases/{case_id}").status_code == 404
    assert client.get(f"/console/cases/{case_id}").status_code == 404
    headers = {"X-CSRF-Token": token}
    for path, body in (("claim", {}), ("reply", {"text": "hola"}), ("notes", {"body": "x"}),
                       ("resolve", {"reason": "x"}), ("typing", {})):
        assert client.post(f"/console/api/cases/{case_id}/{path}", json=body, headers=headers).status_code == 404
    assert rows(db_pool, "SELECT status, taken_by FROM escalations") == [{"status": "waiting", "taken_by": None}]


@pytest.fixture
def maria(client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> Customer:
    return Customer(client, settings, db_pool)


def test_the_whole_case_through_the_api(client: FlaskClient, db_pool: ConnectionPool, maria: Customer,
                                        settings: Settings) -> None:
    case_id = maria.escalate("no encuentro mi paquete SV20260105007823, quiero hablar con una persona")
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    headers = {"X-CSRF-Token": log_in(client, "carlos@example.com")}

    queue = client.get("/console/api/queue").get_json()["cases"]
    assert [(c["id"], c["status"], c["customer_name"]) for c in queue] == [(case_id, "waiting", "María López")]
    assert client.get("/console/api/queue?status=bogus").status_code == 400

    detail = client.get(f"/console/api/cases/{case_id}").get_json()
    assert detail["status"] == "waiting" and detail["window_open"] is True
    assert detail["messages"][0]["who"] == "cliente" and detail["messages"][1]["who"] == "bot"
    assert "María López pidió hablar con una persona" in detail["summary"]
    assert "SV20260105007823" in detail["summary"]
    # the package the customer mentioned, with its live status from the logistics core
    assert [(p["code"], p["status"]) for p in detail["packages"]] == [("SV20260105007823", "Listo para retirar")]
    assert detail["facts"]["reason"] == "customer_request" and detail["reason_text"] == "pidió hablar con una persona"

    assert client.post(f"/console/api/cases/{case_id}/claim", headers=headers).get_json()["status"] == "taken"
    sent = client.post(f"/console/api/cases/{case_id}/reply", json={"text": "Ya lo encontré", "client_key": "a1"},
                       headers=headers)
    assert sent.status_code == 202
    assert client.post(f"/console/api/cases/{case_id}/reply", json={}, headers=headers).status_code == 400
    assert client.post(f"/console/api/cases/{case_id}/notes", json={"body": "Registrado como M. López"},
                       headers=headers).status_code == 201
    run_jobs(settings)
    detail = client.get(f"/console/api/cases/{case_id}").get_json()
    mine = [m for m in detail["messages"] if m["who"] == "Carlos Rivas"]
    assert [m["body"] for m in mine][-1] == "Ya lo encontré" and mine[-1]["status"] == "delivered"
    assert detail["notes"][0]["body"] == "Registrado como M. López" and detail["mine"] is True

    page = client.get(f"/console/cases/{case_id}").get_data(as_text=True)
    assert "Registrado como M. L" in page and "Tomar el chat" in page  # the case data is embedded as JSON
    assert client.post(f"/console/api/cases/{case_id}/resolve", json={"reason": "Encontrado", "csat": True},
                       headers=headers).get_json()["status"] == "resolved"
    closed = client.get("/console/api/queue?status=closed").get_json()["cases"]
    assert [c["status"] for c in closed] == ["resolved"]


def test_outside_the_window_the_api_offers_the_templates(client: FlaskClient, db_pool: ConnectionPool,
                                                         maria: Customer, settings: Settings) -> None:
    case_id = maria.escalate()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    headers = {"X-CSRF-Token": log_in(client, "carlos@example.com")}
    client.post(f"/console/api/cases/{case_id}/claim", headers=headers)
    with db_pool.connection() as conn:
        conn.execute("UPDATE contacts SET last_inbound_at = now() - interval '30 hours'")

    refused = client.post(f"/console/api/cases/{case_id}/reply", json={"text": "Hola"}, headers=headers)
    assert refused.status_code == 409
    assert refused.get_json()["window_closed"] is True and "plantilla aprobada" in refused.get_json()["error"]
    page = client.get(f"/console/cases/{case_id}").get_data(as_text=True)
    assert "ventana de 24 horas de WhatsApp está cerrada" in page and 'value="paquete_llego"' in page

    missing = client.post(f"/console/api/cases/{case_id}/template", json={"name": "paquete_llego", "values": {}},
                          headers=headers)
    assert missing.status_code == 400 and "Falta un valor" in missing.get_json()["error"]
    values = {"customer_name": "María", "tracking_code": "SV20260105007823", "point_name": "Santa Ana",
              "point_address": "Calle Libertad", "point_hours": "8am-6pm", "amount_due": "$0.00",
              "point_id": "santa_ana"}
    sent = client.post(f"/console/api/cases/{case_id}/template", json={"name": "paquete_llego", "values": values},
                       headers=headers)
    assert sent.status_code == 202, sent.get_json()
    run_jobs(settings)
    row = rows(db_pool, "SELECT kind, body, status FROM messages WHERE id = %s", (sent.get_json()["message_id"],))[0]
    assert row["kind"] == "template" and row["status"] == "delivered"
    assert row["body"].startswith("¡Hola María! 👋 Tu paquete SV20260105007823 llegó")


def test_queue_order_and_sla_timers(client: FlaskClient, db_pool: ConnectionPool, settings: Settings) -> None:
    people = [Customer(client, settings, db_pool, phone=f"+5037000001{i}", name=n)
              for i, n in enumerate(("Ana Uno", "Beto Dos", "Carla Tres", "Diego Cuatro"))]
    normal_old = people[0].escalate("quiero hablar con una persona")
    high = people[1].escalate("mi paquete llegó dañado, quiero poner un reclamo")
    normal_new = people[2].escalate("quiero hablar con una persona")
    callback = people[3].escalate("quiero hablar con un asesor", at=TUESDAY_NIGHT)
    now = datetime.now(UTC)
    with db_pool.connection() as conn:
        conn.execute("UPDATE escalations SET created_at = %s WHERE id = %s", (now - timedelta(minutes=10), normal_old))
        conn.execute("UPDATE escalations SET created_at = %s WHERE id = %s", (now - timedelta(minutes=1), high))
        conn.execute("UPDATE escalations SET created_at = %s WHERE id = %s", (now - timedelta(minutes=3), normal_new))
        conn.execute("UPDATE escalations SET created_at = %s WHERE id = %s", (now - timedelta(hours=9), callback))
        items = case_queue.queue(conn, settings, 1, now=now)
    # past its target first; then high priority, then the longest waiting; a callback not due yet at the bottom
    assert [i.id for i in items] == [normal_old, high, normal_new, callback]
    by_id = {i.id: i.as_json(now) for i in items}
    assert by_id[high]["waiting_s"] == 60 and by_id[high]["sla_breached"] is False
    assert by_id[normal_old]["waiting_s"] == 600 and by_id[normal_old]["sla_breached"] is True
    assert by_id[normal_new]["sla_breached"] is False
    assert by_id[callback]["status_label"] == "Devolver llamada (fuera de horario)"
    deadline = datetime.fromisoformat(by_id[high]["sla_deadline"]) - datetime.fromisoformat(by_id[high]["sla_start"])
    assert deadline == timedelta(seconds=120)

    with db_pool.connection() as conn:  # opening time: the callback's clock starts, and it is ranked like the rest
        conn.execute("UPDATE escalations SET callback_due_at = %s WHERE id = %s", (now - timedelta(minutes=1),
                                                                                  callback))
        items = case_queue.queue(conn, settings, 1, now=now)
        assert [i.id for i in items] == [normal_old, high, normal_new, callback]
        assert items[-1].label == "Devolver llamada" and items[-1].as_json(now)["waiting_s"] == 60
        assert case_queue.queue(conn, settings, 1, priority="high", now=now)[0].id == high
        assert [i.id for i in case_queue.queue(conn, settings, 1, status="callback", now=now)] == [callback]


def test_password_reset_by_a_one_time_link_in_the_log(client: FlaskClient, db_pool: ConnectionPool,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    token = csrf_of(client, "/console/password/forgot")
    with caplog.at_level(logging.WARNING, logger="console.account"):
        answer = client.post("/console/password/forgot", data={"email": "carlos@example.com", "csrf_token": token})
    assert answer.status_code == 200 and "enlace de un solo uso" in answer.get_data(as_text=True)
    link = re.search(r"http://localhost(/console/password/reset/\S+)", caplog.text)
    assert link, caplog.text
    path = link.group(1)
    assert client.get(path).status_code == 200
    short = client.post(path, data={"password": "corta", "confirm": "corta", "csrf_token": token})
    assert short.status_code == 400
    done = client.post(path, data={"password": "una clave nueva larga", "confirm": "una clave nueva larga",
                                   "csrf_token": token})
    assert done.status_code == 302
    assert client.get(path).status_code == 410  # used once
    log_in(client, "carlos@example.com", "una clave nueva larga")
    unknown = client.post("/console/password/forgot", data={"email": "nadie@example.com",
                                                            "csrf_token": csrf_of(client, "/console")})
    assert unknown.status_code == 200  # the same answer: nobody learns which addresses exist


def test_one_reset_link_per_agent_a_minute(client: FlaskClient, db_pool: ConnectionPool,
                                          caplog: pytest.LogCaptureFixture) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    token = csrf_of(client, "/console/password/forgot")
    with caplog.at_level(logging.WARNING, logger="console.account"):
        answers = [client.post("/console/password/forgot", data={"email": "carlos@example.com", "csrf_token": token})
                   for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].get_data() == answers[2].get_data()  # the page does not tell either
    assert len(re.findall(r"/console/password/reset/\S+", caplog.text)) == 1
    assert rows(db_pool, "SELECT count(*) AS n FROM password_resets")[0]["n"] == 1


def test_canned_answers_are_managed_by_supervisors_and_filled_per_case(client: FlaskClient, app: Flask,
                                                                        db_pool: ConnectionPool,
                                                                        maria: Customer) -> None:
    case_id = maria.escalate("no encuentro mi paquete SV20260105007823, quiero hablar con una persona")
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    token = log_in(client, "carlos@example.com")
    refused = client.post("/console/canned", data={"title": "x", "body": "y", "csrf_token": token})
    assert refused.status_code == 403

    with app.test_client() as supervisor:
        token = log_in(supervisor, "ana@example.com")
        added = supervisor.post("/console/canned", data={
            "title": "Paquete ubicado", "csrf_token": token,
            "body": "Hola {nombre}, tu paquete {codigo} ya está ubicado. Caso {caso}. Te atendió {agente}. {otro}"})
        assert added.status_code == 200 and "Paquete ubicado" in added.get_data(as_text=True)
        empty = supervisor.post("/console/canned", data={"title": "", "body": "y", "csrf_token": token})
        assert empty.status_code == 400 and "necesita título y texto" in empty.get_data(as_text=True)

    detail = client.get(f"/console/api/cases/{case_id}").get_json()
    assert [a["body"] for a in detail["canned"]] == [
        f"Hola María, tu paquete SV20260105007823 ya está ubicado. Caso {detail['case_number']}. "
        "Te atendió Carlos. {otro}"]


def test_a_password_reset_ends_the_other_sessions(client: FlaskClient, app: Flask, db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    log_in(client, "carlos@example.com")
    assert client.get("/console/api/queue").status_code == 200
    with db_pool.connection() as conn:
        from handoff import agents

        agents.set_password(conn, rows(db_pool, "SELECT id FROM agents")[0]["id"], "otra clave muy larga")
    assert client.get("/console/api/queue").status_code == 401


def test_the_llm_summary_when_a_provider_is_configured(base_env: dict[str, str], core_url: str,
                                                       db_pool: ConnectionPool) -> None:
    from tests.fakes.openai_api import DEFAULT_KEY, FakeOpenAI, Reply

    with FakeOpenAI() as openai_fake:
        settings = Settings.from_env({**base_env, "CORE_API_URL": core_url, "LLM_PROVIDER": "openai",
                                      "LLM_API_KEY": DEFAULT_KEY, "LLM_BASE_URL": openai_fake.base_url,
                                      "LLM_MAX_RETRIES": "0"})
        app = create_app(settings)
        try:
            with app.test_client() as client:
                maria = Customer(client, settings, db_pool)
                case_id = maria.escalate("quiero hablar con una persona")
                openai_fake.requests.clear()
                with db_pool.connection() as conn:  # the prompt names the case's company from its row
                    conn.execute("UPDATE tenants SET name = 'Encomiendas Lempa' WHERE slug = %s",
                                 (settings.tenant_slug,))
                make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
                log_in(client, "carlos@example.com")
                openai_fake.script("text", Reply(content="María López pide hablar con una persona."))
                first = client.get(f"/console/api/cases/{case_id}").get_json()["summary"]
                again = client.get(f"/console/api/cases/{case_id}").get_json()["summary"]
                assert first == again == "María López pide hablar con una persona."
                assert len(openai_fake.requests) == 1  # kept until the customer writes again
                assert "María López" in openai_fake.requests[0]["messages"][-1]["content"]
                assert "Encomiendas Lempa" in openai_fake.requests[0]["messages"][0]["content"]
        finally:
            app.extensions["db_pool"].close()
            app.extensions["redis"].close()


def test_admins_manage_the_agents_of_their_company(client: FlaskClient, app: Flask,
                                                   db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="admin")
    outsider = make_agent(db_pool, "Pedro Otro", "pedro@otra.example", tenant_id=other_tenant(db_pool))
    token = log_in(client, "ana@example.com")
    created = client.post("/console/agents", data={"name": "Luis Pérez", "email": "luis@example.com",
                                                   "role": "agent", "password": "clave de luis 123",
                                                   "csrf_token": token})
    assert created.status_code == 200 and "luis@example.com" in created.get_data(as_text=True)
    bad = client.post("/console/agents", data={"name": "X", "email": "x@example.com", "role": "jefe",
                                               "password": "clave larga 12345", "csrf_token": token})
    assert bad.status_code == 400
    assert "El rol debe ser uno de estos: agent, supervisor, admin." in bad.get_data(as_text=True)
    assert client.post("/console/agents", data={"agent_id": str(outsider.id), "active": "0",
                                                "csrf_token": token}).status_code == 404

    luis = app.test_client()  # a second browser
    log_in(luis, "luis@example.com", "clave de luis 123")
    assert luis.get("/console/agents").status_code == 403
    luis_id = rows(db_pool, "SELECT id FROM agents WHERE email = 'luis@example.com'")[0]["id"]
    done = client.post("/console/agents", data={"agent_id": str(luis_id), "active": "0", "csrf_token": token})
    assert done.status_code == 200 and "inactivo" in done.get_data(as_text=True)
    assert luis.get("/console/api/queue").status_code == 401  # the session ended at once
    again = luis.post("/console/login", data={"email": "luis@example.com", "password": "clave de luis 123",
                                              "csrf_token": csrf_of(luis)})
    assert again.status_code == 401


def test_live_streams_are_capped_per_process_so_webhooks_keep_their_threads(base_env: dict[str, str],
                                                                           core_url: str,
                                                                           db_pool: ConnectionPool) -> None:
    app = create_app(Settings.from_env({**base_env, "CORE_API_URL": core_url, "CONSOLE_MAX_STREAMS": "1"}))
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Torres", "ana@example.com")
    try:
        carlos, ana = app.test_client(), app.test_client()
        log_in(carlos, "carlos@example.com")
        log_in(ana, "ana@example.com")
        first = carlos.get("/console/api/events", buffered=False)
        assert next(first.response).startswith(b"retry: 2000\n: connected")
        busy = ana.get("/console/api/events")
        assert busy.status_code == 200
        assert busy.get_data(as_text=True) == "retry: 20000\n: busy\n\n"  # EventSource tries again later
        first.close()  # the browser went away: its slot is free again
        second = ana.get("/console/api/events", buffered=False)
        assert next(second.response).startswith(b"retry: 2000\n: connected")
        second.close()
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
