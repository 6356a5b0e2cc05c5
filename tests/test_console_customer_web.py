"""The case page's customer panel and calls over HTTP (Flask test client, real PostgreSQL, Redis and the sandbox
core): who the customer is, their packages and cases, masking by role, the core down, the "Ya llamé" outcomes
and what the customer is told, and that one company never sees another's customer."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from sandbox_core.app import create_sandbox_app
from sandbox_core.server import BackgroundServer
from storage import messages
from tests.console_support import MARIA, Customer, make_agent, other_tenant
from tests.harness import rows, run_jobs
from tests.test_console_cli import admin
from tests.test_console_web import log_in
from web.app import create_app

CALLBACK = ("console:callback", "📞 Que me llamen")


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def maria(client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> Customer:
    return Customer(client, settings, db_pool)


def detail(client: FlaskClient, case_id: int) -> dict[str, object]:
    answer = client.get(f"/console/api/cases/{case_id}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found: dict[str, object] = answer.get_json()
    return found


def test_the_panel_shows_the_customer_their_packages_and_their_cases(client: FlaskClient, maria: Customer,
                                                                     db_pool: ConnectionPool,
                                                                     redis_conn: redis.Redis) -> None:
    first = maria.escalate("quiero hablar con una persona")
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    headers = {"X-CSRF-Token": log_in(client, "carlos@example.com")}
    client.post(f"/console/api/cases/{first}/claim", headers=headers)
    client.post(f"/console/api/cases/{first}/resolve", json={"reason": "Dudas resueltas", "csat": False},
                headers=headers)
    second = maria.escalate("mi paquete llegó dañado, quiero poner un reclamo")
    assert second != first

    customer = detail(client, second)["customer"]
    assert isinstance(customer, dict)
    assert (customer["name"], customer["phone"], customer["phone_shown"], customer["tel"]) == (
        "María López", "+503 7000 0002", "+503 7000 0002", "tel:+50370000002")
    packages = {p["code"]: p for p in customer["packages"]}
    # her own packages only, found by her phone, with her role in each
    assert set(packages) == {"SV20260105007834", "SV20260106012345"}
    ready = packages["SV20260105007834"]
    assert (ready["role"], ready["status"], ready["destination"], ready["to_collect"], ready["collect_amount"]) == (
        "destinatario", "Listo para retirar", "Santa Ana - Punto Principal", "$35.00 por cobrar al retirar", "$35.00")
    on_its_way = packages["SV20260106012345"]
    assert (on_its_way["role"], on_its_way["status"], on_its_way["to_collect"], on_its_way["other_party"]) == (
        "destinatario", "En tránsito", "Sin cobro", "Juan Pérez")
    assert customer["packages_notice"] is None
    numbers = rows(db_pool, "SELECT id, case_number FROM escalations ORDER BY id")
    assert [(c["case_number"], c["current"], c["open"], c["status"], c["reason"]) for c in customer["cases"]] == [
        (numbers[1]["case_number"], True, True, "En espera", "presentó un reclamo"),
        (numbers[0]["case_number"], False, False, "Resuelto", "pidió hablar con una persona"),
    ]
    assert customer["callback"] is None  # nobody asked for a call
    # kept a minute, so the page's reloads on live events do not search the core each time; no phone in the key
    [key] = redis_conn.keys("console:customer_packages:*")
    assert 0 < redis_conn.ttl(key) <= 60 and b"7000" not in key and b"70000002" not in (redis_conn.get(key) or b"")
    # the approved templates' preview carries the same rendering (escaped, then formatted)
    page = client.get(f"/console/cases/{second}").get_data(as_text=True)
    assert 'data-html="¡Hola {{1}}! 👋 Tu paquete {{2}} llegó' in page

    # Juan is the sender of several packages: his role in each says so.
    juan = Customer(client, maria.settings, db_pool, phone="+50370000001", name="Juan Pérez")
    roles = {p["code"]: (p["role"], p["other_party"], p["collect_amount"], p["to_collect"])
             for p in detail(client, juan.escalate())["customer"]["packages"]}  # type: ignore[index]
    assert roles["SV20260106012345"] == ("remitente", "María López", None, "Sin cobro")
    # delivered: Carmen paid the $40.00 at pickup; what is left is Juan's refund, not money to collect
    assert roles["SV20260103008921"] == ("remitente", "Carmen Díaz", None,
                                         "Reembolso de $40.00 disponible para el remitente")


def test_a_company_can_mask_phones_for_the_agent_role(client: FlaskClient, app: Flask, maria: Customer,
                                                      db_pool: ConnectionPool, base_env: dict[str, str]) -> None:
    case_id = maria.escalate()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    done = admin(base_env, "mask-phones", "on")
    assert done.returncode == 0 and "agents see customers' phones masked" in done.stdout, done.stderr
    unknown = admin(base_env, "mask-phones", "on", "--tenant", "nadie")
    assert unknown.returncode == 1 and "no tenant 'nadie'" in unknown.stdout

    log_in(client, "carlos@example.com")
    shown = detail(client, case_id)
    customer = shown["customer"]
    assert isinstance(customer, dict)
    assert (customer["phone"], customer["phone_shown"], customer["tel"]) == (None, "+503 7••• ••02", None)
    page = client.get(f"/console/cases/{case_id}").get_data(as_text=True)
    for form in ("70000002", "7000 0002", "7000-0002"):
        assert form not in json.dumps(shown) and form not in page
    assert customer["packages"]  # the packages still show: only the number is hidden

    with app.test_client() as supervisor:
        log_in(supervisor, "ana@example.com")
        assert detail(supervisor, case_id)["customer"]["phone"] == "+503 7000 0002"  # type: ignore[index]

    assert admin(base_env, "mask-phones", "off").returncode == 0
    assert detail(client, case_id)["customer"]["phone"] == "+503 7000 0002"  # type: ignore[index]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_with_the_core_down_the_panel_says_so_and_the_case_still_works(base_env: dict[str, str], core_url: str,
                                                                         db_pool: ConnectionPool,
                                                                         redis_conn: redis.Redis) -> None:
    up = Settings.from_env({**base_env, "CORE_API_URL": core_url})
    with create_app(up).test_client() as customer_side:
        case_id = Customer(customer_side, up, db_pool).escalate("quiero hablar con una persona")
    down = Settings.from_env({**base_env, "CORE_API_URL": f"http://127.0.0.1:{closed_port()}"})
    app = create_app(down)
    try:
        make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
        with app.test_client() as client:
            headers = {"X-CSRF-Token": log_in(client, "carlos@example.com")}
            customer = detail(client, case_id)["customer"]
            assert isinstance(customer, dict)
            assert customer["packages"] == []
            assert customer["packages_notice"] == ("No pudimos consultar los paquetes en este momento: el sistema "
                                                   "de paquetes no responde. Intenta de nuevo en unos minutos.")
            assert customer["name"] == "María López" and customer["cases"][0]["current"] is True
            [key] = redis_conn.keys("console:customer_packages:*")
            assert 0 < redis_conn.ttl(key) <= 15  # asked again soon: the core may be back
            assert client.get(f"/console/cases/{case_id}").status_code == 200
            assert client.post(f"/console/api/cases/{case_id}/claim", headers=headers).status_code == 200
            assert client.post(f"/console/api/cases/{case_id}/reply", json={"text": "Hola"},
                               headers=headers).status_code == 202
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()


def test_ya_llame_records_each_call_and_no_answer_keeps_the_case_open(client: FlaskClient, maria: Customer,
                                                                      db_pool: ConnectionPool,
                                                                      settings: Settings) -> None:
    case_id = maria.escalate()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    headers = {"X-CSRF-Token": log_in(client, "carlos@example.com")}
    refused = client.post(f"/console/api/cases/{case_id}/called", json={"outcome": "no_answer"}, headers=headers)
    assert refused.status_code == 409 and "no tiene una llamada pendiente" in refused.get_json()["error"]

    maria.send(reply=CALLBACK)
    shown = detail(client, case_id)
    assert shown["status"] == "callback"
    assert shown["customer"]["callback"] == {"phone": "+503 7000 0002", "tel": "tel:+50370000002"}  # type: ignore[index]

    bad = client.post(f"/console/api/cases/{case_id}/called", json={"outcome": "maybe"}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"] == "Elige cómo terminó la llamada."
    missed = client.post(f"/console/api/cases/{case_id}/called",
                         json={"outcome": "no_answer", "note": "  sonó y   sonó "}, headers=headers)
    assert missed.status_code == 200
    run_jobs(settings)
    case_number = rows(db_pool, "SELECT case_number FROM escalations")[0]["case_number"]
    assert maria.received()[-1] == (f"Te llamamos hace un momento y no pudimos comunicarnos 📞 Volveremos a "
                                    f"intentarlo; si prefieres, escríbenos por aquí. Tu caso es {case_number}.")
    shown = detail(client, case_id)
    assert shown["status"] == "callback" and shown["customer"]["callback"] is not None  # type: ignore[index]
    assert shown["history"][-1]["text"] == "Llamó al cliente: No contestó — «sonó y sonó»"  # type: ignore[index]
    assert shown["history"][-1]["agent"] == "Carlos Rivas"  # type: ignore[index]

    later = client.post(f"/console/api/cases/{case_id}/called",
                        json={"outcome": "call_later", "note": "después de las 3"},
                        headers=headers)
    assert later.status_code == 200 and detail(client, case_id)["status"] == "callback"
    told = len(maria.received())

    done = client.post(f"/console/api/cases/{case_id}/called", json={"outcome": "resolved"}, headers=headers)
    assert done.status_code == 200
    run_jobs(settings)
    assert maria.received()[told:] == [f"Tu caso {case_number} quedó resuelto. ¡Gracias por escribirnos! 😊"]
    case = rows(db_pool, "SELECT e.status, e.resolution_reason, e.resolved_by, c.status AS conversation"
                         " FROM escalations e JOIN conversations c ON c.id = e.conversation_id")[0]
    assert (case["status"], case["resolution_reason"], case["conversation"]) == (
        "resolved", "Contestó y se resolvió", "closed")
    calls = rows(db_pool, "SELECT data FROM handoff_events WHERE action = 'called' ORDER BY id")
    assert [c["data"] for c in calls] == [{"outcome": "no_answer", "note": "sonó y sonó"},
                                          {"outcome": "call_later", "note": "después de las 3"},
                                          {"outcome": "resolved"}]
    shown = detail(client, case_id)
    assert shown["customer"]["callback"] is None  # type: ignore[index]
    assert client.post(f"/console/api/cases/{case_id}/called", json={"outcome": "no_answer"},
                       headers=headers).status_code == 409


def test_a_wrong_number_sends_the_case_back_to_the_queue_for_the_chat(client: FlaskClient, maria: Customer,
                                                                       db_pool: ConnectionPool,
                                                                       settings: Settings) -> None:
    case_id = maria.escalate()
    maria.send(reply=CALLBACK)
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    headers = {"X-CSRF-Token": log_in(client, "carlos@example.com")}
    answer = client.post(f"/console/api/cases/{case_id}/called", json={"outcome": "wrong_number"}, headers=headers)
    assert answer.status_code == 200
    run_jobs(settings)
    assert maria.received()[-1].startswith("No logramos comunicarnos al número desde el que escribes 📞 Un asesor "
                                           "seguirá contigo por este chat.")
    shown = detail(client, case_id)
    assert shown["status"] == "waiting" and shown["customer"]["callback"] is None  # type: ignore[index]


def test_a_call_on_a_case_someone_else_holds_is_theirs(client: FlaskClient, app: Flask, maria: Customer,
                                                       db_pool: ConnectionPool) -> None:
    case_id = maria.escalate()
    maria.send(reply=CALLBACK)
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Luis Gómez", "luis@example.com")
    headers = {"X-CSRF-Token": log_in(client, "carlos@example.com")}
    assert client.post(f"/console/api/cases/{case_id}/claim", headers=headers).status_code == 200
    with app.test_client() as luis:
        luis_headers = {"X-CSRF-Token": log_in(luis, "luis@example.com")}
        refused = luis.post(f"/console/api/cases/{case_id}/called", json={"outcome": "no_answer"},
                            headers=luis_headers)
        assert refused.status_code == 403 and refused.get_json()["error"].startswith("Carlos Rivas tiene el caso")
    # the holder's call is recorded; the taken case stays his
    assert client.post(f"/console/api/cases/{case_id}/called", json={"outcome": "no_answer"},
                       headers=headers).status_code == 200
    assert rows(db_pool, "SELECT status FROM escalations")[0]["status"] == "taken"


def test_another_company_sees_neither_the_customer_nor_the_call(client: FlaskClient, maria: Customer,
                                                                db_pool: ConnectionPool) -> None:
    case_id = maria.escalate()
    maria.send(reply=CALLBACK)
    make_agent(db_pool, "Pedro Otro", "pedro@otra.example", tenant_id=other_tenant(db_pool))
    headers = {"X-CSRF-Token": log_in(client, "pedro@otra.example")}
    assert client.get(f"/console/api/cases/{case_id}").status_code == 404
    assert client.post(f"/console/api/cases/{case_id}/called", json={"outcome": "resolved"},
                       headers=headers).status_code == 404
    assert rows(db_pool, "SELECT count(*) AS n FROM handoff_events WHERE action = 'called'")[0]["n"] == 0
    assert MARIA not in client.get("/console/api/queue").get_data(as_text=True)


def test_a_failed_message_says_why_in_spanish(client: FlaskClient, maria: Customer, db_pool: ConnectionPool) -> None:
    case_id = maria.escalate()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    log_in(client, "carlos@example.com")
    with db_pool.connection() as conn:
        last = conn.execute("SELECT max(id) AS id FROM messages WHERE direction = 'out'").fetchone()
        assert last is not None
        # what the delivery worker and the provider's status write when a message fails
        messages.mark_failed(conn, last["id"], "interrupted",
                             "the worker stopped while sending; not resent to avoid a duplicate")
    failed = [m for m in detail(client, case_id)["messages"] if m["status"] == "failed"]  # type: ignore[union-attr]
    assert [m["error"] for m in failed] == [
        "No se envió: el envío se interrumpió y no se repite para no duplicarlo. Escríbelo de nuevo si hace falta."]
    assert "worker stopped" not in client.get(f"/console/api/cases/{case_id}").get_data(as_text=True)


def test_a_status_the_console_has_no_words_for_is_never_shown_as_its_id(base_env: dict[str, str],
                                                                        db_pool: ConnectionPool) -> None:
    with BackgroundServer(create_sandbox_app()) as core:  # its own core: the new status stays in this test
        changed = httpx.post(f"{core.url}/sandbox/packages/SV20260106012345/status",
                             json={"status": "HELD_AT_CUSTOMS", "note": "Retenido"}, timeout=5)
        assert changed.status_code == 200
        settings = Settings.from_env({**base_env, "CORE_API_URL": core.url})
        app = create_app(settings)
        try:
            make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
            with app.test_client() as client:
                maria = Customer(client, settings, db_pool)
                maria.send("SV20260106012345")
                case_id = maria.escalate()
                log_in(client, "carlos@example.com")
                shown = detail(client, case_id)
        finally:
            app.extensions["db_pool"].close()
            app.extensions["redis"].close()
    assert [p["status"] for p in shown["packages"]] == ["estado sin descripción"]  # type: ignore[union-attr]
    panel = {p["code"]: p["status"] for p in shown["customer"]["packages"]}  # type: ignore[index]
    assert panel["SV20260106012345"] == "estado sin descripción"
    assert "HELD_AT_CUSTOMS" not in json.dumps({k: shown[k] for k in ("packages", "customer", "summary", "facts")})


def test_search_previews_render_whatsapp_formatting_after_escaping(client: FlaskClient, maria: Customer,
                                                                   db_pool: ConnectionPool) -> None:
    maria.send("mi paquete es *urgente* <b>ya</b> <script>alert(1)</script>")
    maria.escalate()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    log_in(client, "carlos@example.com")
    page = client.get("/console/search", query_string={"q": "urgente"}).get_data(as_text=True)
    assert ("«mi paquete es <strong>urgente</strong> &lt;b&gt;ya&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;»"
            in page)
    assert "<script>alert(1)" not in page and "<b>ya</b>" not in page
