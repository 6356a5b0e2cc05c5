"""The console for a support team, over HTTP (Flask test client, real PostgreSQL and Redis, customers writing
through the signed webhook): the queue's order and why each case is where it is, searching cases (closed ones
too) by every key and filter without ever showing another company's, assigning and reassigning, and tags."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import live
from storage.crypto import Vault
from tests.console_support import PASSWORD, TUESDAY_NIGHT, TZ, Customer, make_agent, other_tenant
from tests.harness import rows, run_jobs


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "CONSOLE_SLA_NORMAL_S": "300",
                              "CONSOLE_SLA_HIGH_S": "120", "RETENTION_ESCALATED_DAYS": "365"})


def log_in(app: Flask, email: str) -> tuple[FlaskClient, dict[str, str]]:
    """A browser of its own for this agent: (client, headers with the CSRF token for the JSON calls)."""
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token
    answer = client.post("/console/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    page = client.get("/console").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token
    return client, {"X-CSRF-Token": token.group(1)}


def age(pool: ConnectionPool, case_id: int, **columns: datetime | None) -> None:
    sets = ", ".join(f"{name} = %s" for name in columns)
    with pool.connection() as conn:
        conn.execute(f"UPDATE escalations SET {sets} WHERE id = %s", (*columns.values(), case_id))  # noqa: S608


def found(client: FlaskClient, **args: str) -> list[str]:
    """The case numbers a search page lists, in order."""
    page = client.get("/console/search", query_string=args)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return re.findall(r'<strong class="number">([^<]+)</strong>', page.get_data(as_text=True))


def number(pool: ConnectionPool, case_id: int) -> str:
    return str(rows(pool, "SELECT case_number FROM escalations WHERE id = %s", (case_id,))[0]["case_number"])


# -- the queue ------------------------------------------------------------------------------------------------


def test_queue_order_overdue_first_then_priority_then_waiting_time(app: Flask, settings: Settings,
                                                                    db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    people = [Customer(app.test_client(), settings, db_pool, phone=f"+5037000002{i}", name=n)
              for i, n in enumerate(("Ana Uno", "Beto Dos", "Carla Tres", "Diego Cuatro", "Elsa Cinco", "Fito Seis"))]
    overdue_normal = people[0].escalate("quiero hablar con una persona")
    fresh_high = people[1].escalate("mi paquete llegó dañado, quiero poner un reclamo")
    fresh_normal = people[2].escalate("quiero hablar con una persona")
    overdue_high = people[3].escalate("mi paquete llegó dañado, quiero poner un reclamo")
    answered_late = people[4].escalate("quiero hablar con una persona")
    scheduled = people[5].escalate("quiero hablar con un asesor", at=TUESDAY_NIGHT)
    now = datetime.now(UTC)
    age(db_pool, overdue_normal, created_at=now - timedelta(minutes=10, seconds=10))
    age(db_pool, fresh_high, created_at=now - timedelta(seconds=30))
    age(db_pool, fresh_normal, created_at=now - timedelta(minutes=3))
    age(db_pool, overdue_high, created_at=now - timedelta(minutes=5, seconds=10))
    # answered after 7 minutes (target: 5): late, but somebody is on it, so it does not lead the queue
    age(db_pool, answered_late, created_at=now - timedelta(minutes=20), first_response_at=now - timedelta(minutes=13))
    age(db_pool, scheduled, created_at=now - timedelta(hours=9))  # out of hours: no clock until opening

    client, _ = log_in(app, "carlos@example.com")
    cases = client.get("/console/api/queue").get_json()["cases"]
    assert [c["id"] for c in cases] == [overdue_high, overdue_normal, fresh_high, answered_late, fresh_normal,
                                        scheduled]
    by_id = {c["id"]: c for c in cases}
    assert by_id[overdue_high]["why"] == "⚠ Fuera de tiempo · 5 min esperando"
    assert by_id[overdue_normal]["why"] == "⚠ Fuera de tiempo · 10 min esperando"
    assert by_id[fresh_high]["why"].startswith("Prioridad alta · menos de 1 min esperando · quedan 1 min")
    assert by_id[answered_late]["why"] == "Respondido en 7 min · fuera de tiempo"
    assert by_id[fresh_normal]["why"] == "3 min esperando · quedan 1 min"
    assert by_id[scheduled]["why"] == "Llamar cuando abramos"
    # the flags and the order come from the same targets: exactly the first two are overdue
    assert [c["overdue"] for c in cases] == [True, True, False, False, False, False]
    assert by_id[answered_late]["sla_breached"] is True and by_id[scheduled]["sla_breached"] is False
    assert by_id[overdue_high]["priority_label"] == "Alta" and by_id[fresh_normal]["priority_label"] == "Normal"

    page = client.get("/console").get_data(as_text=True)  # the page without JavaScript says the same
    assert page.index(number(db_pool, overdue_high)) < page.index(number(db_pool, overdue_normal)) < page.index(
        number(db_pool, fresh_high))
    assert "⚠ Fuera de tiempo · 5 min esperando" in page and "Por qué está aquí" in page

    # The opening time comes: the callback's clock starts then, and it is ranked like any other case.
    age(db_pool, scheduled, callback_due_at=datetime.now(UTC) - timedelta(minutes=6))
    cases = client.get("/console/api/queue").get_json()["cases"]
    assert [c["id"] for c in cases][:3] == [overdue_high, overdue_normal, scheduled]
    assert cases[2]["why"] == "⚠ Fuera de tiempo · 6 min esperando" and cases[2]["status_label"] == "Devolver llamada"


# -- search -----------------------------------------------------------------------------------------------------


def _foreign_case(pool: ConnectionPool, settings: Settings, tenant_id: int, phone: str, name: str, text: str) -> str:
    """A case of another company with the same customer, name and words as ours."""
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    with pool.connection() as conn:
        contact: Any = conn.execute(
            "INSERT INTO contacts (tenant_id, phone_hash, phone_encrypted, profile_name) VALUES (%s, %s, %s, %s)"
            " RETURNING id", (tenant_id, vault.lookup_hash(phone), vault.encrypt(phone), name)).fetchone()
        conversation: Any = conn.execute(
            "INSERT INTO conversations (tenant_id, contact_id, status) VALUES (%s, %s, 'closed') RETURNING id",
            (tenant_id, contact["id"])).fetchone()
        conn.execute("INSERT INTO messages (tenant_id, conversation_id, direction, channel, kind, body, status)"
                     " VALUES (%s, %s, 'in', 'meta', 'text', %s, 'received')", (tenant_id, conversation["id"], text))
        conn.execute("INSERT INTO escalations (tenant_id, conversation_id, case_number, priority, reason, status,"
                     " resolved_at) VALUES (%s, %s, 'ENC-260106-OTRA', 'high', 'complaint', 'resolved', now())",
                     (tenant_id, conversation["id"]))
    return "ENC-260106-OTRA"


def test_search_finds_cases_by_every_key_and_filter_within_the_company(app: Flask, settings: Settings,
                                                                        db_pool: ConnectionPool) -> None:
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    maria = Customer(app.test_client(), settings, db_pool)
    juan = Customer(app.test_client(), settings, db_pool, phone="+50370000001", name="Juan Pérez")
    maria_case = maria.escalate("no encuentro mi paquete SV20260105007834, quiero hablar con una persona")
    juan_case = juan.escalate("mi paquete llegó roto y quiero poner un reclamo")
    maria_number, juan_number = number(db_pool, maria_case), number(db_pool, juan_case)

    client, headers = log_in(app, "carlos@example.com")
    assert client.post(f"/console/api/cases/{maria_case}/claim", headers=headers).status_code == 200
    assert client.post(f"/console/api/cases/{maria_case}/resolve", json={"reason": "Se ubicó el paquete"},
                       headers=headers).status_code == 200
    assert client.post(f"/console/api/cases/{juan_case}/tags", json={"tag": "Daño"}, headers=headers).status_code == 200

    elsewhere = other_tenant(db_pool)
    foreign = _foreign_case(db_pool, settings, elsewhere, "+50370000002", "María López",
                            "no encuentro mi paquete SV20260105007834 llegó roto")
    with db_pool.connection() as conn:
        conn.execute("INSERT INTO case_tags (tenant_id, escalation_id, tag, tag_key) SELECT %s, id, 'daño', 'dano'"
                     " FROM escalations WHERE case_number = %s", (elsewhere, foreign))

    both = sorted([maria_number, juan_number])
    # by case number (whole or a part, any case)
    assert found(client, q=maria_number) == [maria_number]
    assert found(client, q=maria_number[-4:].lower()) == [maria_number]
    # by phone as people type it: the keyed hash finds it, no phone is decrypted
    for typed in ("7000-0002", "+503 7000 0002", "50370000002", "(503) 7000-0002"):
        assert found(client, q=typed) == [maria_number], typed
    # by name, without minding accents or case
    assert found(client, q="maria lopez") == [maria_number]
    assert found(client, q="PÉREZ") == [juan_number]
    # by tracking code and by any words of the conversation (a snippet shows where)
    assert found(client, q="SV20260105007834") == [maria_number]
    page = client.get("/console/search", query_string={"q": "llego roto"}).get_data(as_text=True)
    assert re.findall(r'<strong class="number">([^<]+)</strong>', page) == [juan_number]
    assert "«mi paquete llegó roto y quiero poner un reclamo»" in page
    # by tag, typed or filtered, in any spelling
    assert found(client, q="daño") == [juan_number]
    assert found(client, tag="DANO") == [juan_number]
    # filters: status, agent, priority, dates (company time)
    assert found(client, status="resolved") == [maria_number]
    assert found(client, status="open") == [juan_number]
    assert found(client, agent=str(carlos.id)) == [maria_number]
    assert found(client, priority="high") == [juan_number]
    today = datetime.now(TZ).date()
    assert sorted(found(client, **{"from": today.isoformat(), "to": today.isoformat()})) == both
    assert found(client, **{"from": (today + timedelta(days=1)).isoformat()}) == []
    assert found(client, to=(today - timedelta(days=1)).isoformat()) == []
    assert found(client, q="paquete", status="resolved", priority="normal") == [maria_number]
    # the result says what a person needs, in words, and opens the case
    page = client.get("/console/search", query_string={"q": maria_number}).get_data(as_text=True)
    assert "María López" in page and "Resuelto" in page and "Normal" in page and "Carlos Rivas" in page
    assert f'href="/console/cases/{maria_case}"' in page
    assert client.get(f"/console/cases/{maria_case}").status_code == 200
    assert "resolved" not in re.sub(r'value="resolved"', "", page)  # no status id shows

    # Another company's case with the same phone, name, words and tag never shows.
    for query in ({"q": "7000-0002"}, {"q": "María López"}, {"q": "SV20260105007834"}, {"q": "roto"},
                  {"tag": "daño"}, {"q": foreign}, {"status": "resolved"}):
        assert foreign not in found(client, **query), query

    # Past the retention period a case is not searched any more.
    age(db_pool, juan_case, created_at=datetime.now(UTC) - timedelta(days=366))
    assert found(client, q="PÉREZ") == []


def test_search_pages_and_refuses_unknown_filters_in_spanish(app: Flask, settings: Settings,
                                                             db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    maria = Customer(app.test_client(), settings, db_pool)
    case_id = maria.escalate()
    with db_pool.connection() as conn:
        for i in range(24):  # earlier cases of the same conversation
            conn.execute("INSERT INTO escalations (tenant_id, conversation_id, case_number, priority, reason, status,"
                         " created_at) SELECT tenant_id, conversation_id, %s, 'normal', 'human_request', 'returned',"
                         " created_at - %s * interval '1 hour' FROM escalations WHERE id = %s",
                         (f"ENC-251201-P{i:03d}", i + 1, case_id))
    client, _ = log_in(app, "carlos@example.com")
    first = client.get("/console/search", query_string={"q": "maria"}).get_data(as_text=True)
    assert "25 casos encontrados" in first and "Página 1 de 2" in first
    assert len(re.findall(r'class="result"', first)) == 20
    assert re.findall(r'<strong class="number">([^<]+)</strong>', first)[:2] == [number(db_pool, case_id),
                                                                                  "ENC-251201-P000"]
    second_link = re.search(r'href="([^"]+)">Siguientes', first)
    assert second_link
    second = client.get(second_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'<strong class="number">([^<]+)</strong>', second) == [
        f"ENC-251201-P{i:03d}" for i in range(19, 24)]
    assert "Página 2 de 2" in second and "Anteriores" in second

    for args, error in (({"status": "borrado"}, "Ese filtro no existe."), ({"priority": "urgente"},
                        "Ese filtro no existe."), ({"from": "ayer"}, "La fecha no es válida"),
                        ({"page": "0"}, "Esa página no existe.")):
        answer = client.get("/console/search", query_string=args)
        assert answer.status_code == 400 and error in answer.get_data(as_text=True), args
    nothing = client.get("/console/search", query_string={"q": "nadie-escribio-esto"}).get_data(as_text=True)
    assert "0 casos encontrados" in nothing and "Ningún caso coincide" in nothing
    for wildcard in ("%", "_", "\\"):  # typed characters, not patterns that match everything
        assert "0 casos encontrados" in client.get("/console/search", query_string={"q": wildcard}).get_data(
            as_text=True), wildcard


# -- assignment --------------------------------------------------------------------------------------------------


def _events(pubsub: Any, wait_s: float = 2.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "message":
            seen.append(json.loads(message["data"]))
        elif seen:
            break
    return seen


def test_assigning_and_reassigning_follow_the_roles(app: Flask, settings: Settings, db_pool: ConnectionPool,
                                                   redis_conn: redis.Redis) -> None:
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    beto = make_agent(db_pool, "Beto Díaz", "beto@example.com")
    dora = make_agent(db_pool, "Dora Inactiva", "dora@example.com")
    with db_pool.connection() as conn:
        conn.execute("UPDATE agents SET active = false WHERE id = %s", (dora.id,))
    elsewhere = other_tenant(db_pool)
    zoe = make_agent(db_pool, "Zoe Otra", "zoe@example.com", role="supervisor", tenant_id=elsewhere)
    maria = Customer(app.test_client(), settings, db_pool)
    case_id = maria.escalate()
    as_carlos, carlos_h = log_in(app, "carlos@example.com")
    as_ana, ana_h = log_in(app, "ana@example.com")
    as_beto, beto_h = log_in(app, "beto@example.com")
    as_zoe, zoe_h = log_in(app, "zoe@example.com")
    url = f"/console/api/cases/{case_id}/assign"

    # An agent cannot give away a case that is not theirs.
    refused = as_carlos.post(url, json={"agent_id": beto.id, "from_agent_id": None}, headers=carlos_h)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "Solo un supervisor puede asignar casos que no son tuyos."
    team = as_carlos.get(f"/console/api/cases/{case_id}/team").get_json()
    assert team["can_assign"] is False and [a["name"] for a in team["agents"]] == [
        "Ana Martínez", "Beto Díaz", "Carlos Rivas"]  # active agents of this company only

    # The supervisor assigns it to Carlos: he has it at once (his "Míos", a live event) and the customer is told.
    events = redis_conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
    events.subscribe(live.channel(1))
    done = as_ana.post(url, json={"agent_id": carlos.id, "from_agent_id": None}, headers=ana_h)
    assert done.status_code == 200, done.get_json()
    announced = [e for e in _events(events) if e["type"] == "handoff"]
    events.close()
    assert announced == [{"type": "handoff", "case_id": case_id, "conversation_id": announced[0]["conversation_id"],
                          "action": "assign", "agent": "Ana Martínez", "agent_id": announced[0]["agent_id"],
                          "to_agent_id": carlos.id, "to_agent": "Carlos Rivas", "from_agent_id": None}]
    mine = as_carlos.get("/console/api/queue", query_string={"status": "mine"}).get_json()["cases"]
    assert [c["id"] for c in mine] == [case_id] and mine[0]["status_label"] == "Atendido por Carlos Rivas"
    run_jobs(settings)
    assert maria.received()[-1].startswith("Hola María, soy Carlos del equipo de soporte 👋")
    assert as_carlos.post(f"/console/api/cases/{case_id}/reply", json={"text": "Ya lo reviso"},
                          headers=carlos_h).status_code == 202

    # A decision taken on a stale page is refused instead of taking the case from Carlos.
    stale = as_ana.post(url, json={"agent_id": beto.id, "from_agent_id": None}, headers=ana_h)
    assert stale.status_code == 409
    assert "cambió mientras tanto: está atendido, con Carlos Rivas" in stale.get_json()["error"]
    # Beto cannot take it from Carlos by assignment; nobody can assign to a stranger or to someone inactive.
    beto_try = as_beto.post(url, json={"agent_id": beto.id, "from_agent_id": carlos.id}, headers=beto_h)
    assert beto_try.status_code == 403
    for target in (zoe.id, dora.id, 999999):
        wrong = as_ana.post(url, json={"agent_id": target, "from_agent_id": carlos.id}, headers=ana_h)
        assert wrong.status_code == 400 and wrong.get_json()["error"] == "Ese agente no existe o ya no está activo."
    missing = as_ana.post(url, json={"from_agent_id": carlos.id}, headers=ana_h)
    assert missing.status_code == 400 and missing.get_json()["error"] == "Elige a quién asignar el caso."
    same = as_ana.post(url, json={"agent_id": carlos.id, "from_agent_id": carlos.id}, headers=ana_h)
    assert same.status_code == 409
    assert same.get_json()["error"] == f"Carlos Rivas ya tiene el caso {number(db_pool, case_id)}."
    # Another company's supervisor does not even see the case.
    foreign = as_zoe.post(url, json={"agent_id": zoe.id, "from_agent_id": carlos.id}, headers=zoe_h)
    assert foreign.status_code == 404 and foreign.get_json()["error"].startswith("No encontramos ese caso")

    # Carlos hands his case to Beto: Beto continues, Carlos can no longer write to the customer.
    assert as_carlos.get(f"/console/api/cases/{case_id}/team").get_json()["can_assign"] is True
    handed = as_carlos.post(url, json={"agent_id": beto.id, "from_agent_id": carlos.id}, headers=carlos_h)
    assert handed.status_code == 200, handed.get_json()
    run_jobs(settings)
    assert maria.received()[-1].startswith("Hola María, soy Beto del equipo de soporte. Continúo yo con tu caso")
    assert as_carlos.post(f"/console/api/cases/{case_id}/reply", json={"text": "hola"},
                          headers=carlos_h).status_code == 403
    assert as_beto.post(f"/console/api/cases/{case_id}/reply", json={"text": "Hola, sigo yo"},
                        headers=beto_h).status_code == 202
    # The supervisor reassigns it back to Carlos; the history says who gave it to whom, each time.
    assert as_ana.post(url, json={"agent_id": carlos.id, "from_agent_id": beto.id}, headers=ana_h).status_code == 200
    history = [h for h in as_ana.get(f"/console/api/cases/{case_id}").get_json()["history"] if h["action"] == "assign"]
    assert [(h["agent"], h["data"]["to_agent"], h["data"]["from_agent"]) for h in history] == [
        ("Ana Martínez", "Carlos Rivas", None), ("Carlos Rivas", "Beto Díaz", "Carlos Rivas"),
        ("Ana Martínez", "Carlos Rivas", "Beto Díaz")]
    assert [h["text"] for h in history] == ["Asignó el caso a Carlos Rivas", "Asignó el caso a Beto Díaz",
                                            "Asignó el caso a Carlos Rivas"]

    # A resolved case cannot be assigned.
    assert as_carlos.post(f"/console/api/cases/{case_id}/resolve", json={"reason": "Listo"},
                          headers=carlos_h).status_code == 200
    closed = as_ana.post(url, json={"agent_id": beto.id, "from_agent_id": carlos.id}, headers=ana_h)
    assert closed.status_code == 409 and closed.get_json()["error"].endswith("ya está resuelto: no se puede asignar.")


# -- tags ----------------------------------------------------------------------------------------------------------


def test_tags_are_normalised_deduplicated_and_kept_per_company(app: Flask, settings: Settings,
                                                               db_pool: ConnectionPool) -> None:
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    elsewhere = other_tenant(db_pool)
    make_agent(db_pool, "Zoe Otra", "zoe@example.com", tenant_id=elsewhere)
    maria = Customer(app.test_client(), settings, db_pool)
    juan = Customer(app.test_client(), settings, db_pool, phone="+50370000001", name="Juan Pérez")
    case_id, other_id = maria.escalate(), juan.escalate()
    client, headers = log_in(app, "carlos@example.com")

    def tag(raw: str, case: int = case_id) -> Any:
        return client.post(f"/console/api/cases/{case}/tags", json={"tag": raw}, headers=headers)

    assert tag("  #Daño ").get_json()["tags"] == ["daño"]
    assert tag("dano").get_json()["tags"] == ["daño"]  # the same tag, once
    assert tag("VIP").get_json()["tags"] == ["daño", "vip"]
    assert tag("Reembolso parcial").get_json()["tags"] == ["daño", "reembolso-parcial", "vip"]
    assert tag("DANO", other_id).get_json()["tags"] == ["daño"]  # the company's spelling
    for raw, error in (("   ", "Escribe la etiqueta."), ("x" * 31, "Una etiqueta tiene como máximo 30 caracteres."),
                       ("a/b", "Usa solo letras, números y guiones en la etiqueta.")):
        answer = tag(raw)
        assert answer.status_code == 400 and answer.get_json()["error"] == error
    for i in range(7):
        assert tag(f"extra{i}").status_code == 200
    too_many = tag("una-mas")
    assert too_many.status_code == 400 and too_many.get_json()["error"] == "Un caso lleva como máximo 10 etiquetas."

    # shown in the queue and on the case page's team block, with the company's vocabulary (most used first)
    queue = {c["id"]: c["tags"] for c in client.get("/console/api/queue").get_json()["cases"]}
    assert queue[other_id] == ["daño"] and "vip" in queue[case_id]
    team = client.get(f"/console/api/cases/{case_id}/team").get_json()
    assert team["vocabulary"][0] == "daño" and "reembolso-parcial" in team["vocabulary"]
    assert "daño" in client.get("/console").get_data(as_text=True)

    removed = client.post(f"/console/api/cases/{case_id}/tags/remove", json={"tag": "DAÑO"}, headers=headers)
    assert "daño" not in removed.get_json()["tags"] and len(removed.get_json()["tags"]) == 9
    detail = client.get(f"/console/api/cases/{case_id}").get_json()
    history = [(h["action"], h["data"]["tag"]) for h in detail["history"] if h["action"] in ("tag", "untag")]
    assert history[0] == ("tag", "daño") and history[-1] == ("untag", "daño")
    lines = [h["text"] for h in detail["history"] if h["action"] in ("tag", "untag")]
    assert lines[0] == "Agregó la etiqueta «daño»" and lines[-1] == "Quitó la etiqueta «daño»"

    # Another company neither sees nor tags our cases, and its vocabulary is its own.
    zoe, zoe_h = log_in(app, "zoe@example.com")
    assert zoe.post(f"/console/api/cases/{case_id}/tags", json={"tag": "vip"}, headers=zoe_h).status_code == 404
    assert zoe.get(f"/console/api/cases/{case_id}/team").status_code == 404
    assert rows(db_pool, "SELECT count(*) AS n FROM case_tags WHERE tenant_id = %s", (elsewhere,))[0]["n"] == 0
