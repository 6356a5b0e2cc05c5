"""Handoff etiquette (issue 13), through the real pipeline: signed webhook -> RQ worker -> engine -> delivery.

- a comment after rating an agent is kept with the rating and thanked, never a new case;
- when support closes, each customer still waiting is told once what happens next;
- a waiting customer who writes after the closing gets the honest after-hours answer;
- the bot never opens a case the customer did not ask for or agree to.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import cases, closing
from handoff.cases import Desk
from runtime.resources import Runtime, build_runtime
from tests.console_support import PASSWORD, TZ, Customer, desk_for, make_agent
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import rows, run_jobs
from web.app import create_app

THANKS = "¡Gracias por contarnos! Se lo pasamos al equipo 🙏"
COMMENT = "el agente fue amable pero se tardaron mucho"
SATURDAY_NOON = datetime(2026, 1, 10, 12, 30, tzinfo=TZ)  # support: Mon-Fri 8-18, Sat 8-13 (sandbox core)
SATURDAY_CLOSED = datetime(2026, 1, 10, 13, 2, tzinfo=TZ)


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(settings, pool_size=4)
    yield built
    built.close()


@pytest.fixture
def desk(settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> Desk:
    return desk_for(settings, db_pool, redis_conn)


@pytest.fixture
def maria(client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> Customer:
    return Customer(client, settings, db_pool)


def customer(client: FlaskClient, settings: Settings, pool: ConnectionPool, phone: str, name: str) -> Customer:
    return Customer(client, settings, pool, phone=phone, name=name)


def log_in(client: FlaskClient, email: str) -> None:
    """Log in to the console through its form."""
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token is not None
    answer = client.post("/console/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert answer.status_code == 302


def case_rows(pool: ConnectionPool) -> list[dict[str, object]]:
    return rows(pool, "SELECT id, case_number, status, csat_score, csat_comment FROM escalations ORDER BY id")


def rated(maria: Customer, desk: Desk, pool: ConnectionPool, settings: Settings, score: str = "8") -> int:
    """María's case, resolved by Carlos with the 1-10 question, and her rating."""
    case_id = maria.escalate()
    carlos = make_agent(pool, "Carlos Rivas", "carlos@example.com")
    cases.claim(desk, carlos, case_id)
    cases.resolve(desk, carlos, case_id, "Paquete ubicado", ask_csat=True)
    run_jobs(settings)
    maria.send(score)
    assert maria.received()[-1] == "¡Gracias por tu calificación! 🙏 Nos ayuda a mejorar."
    return case_id


# -- the comment after a rating ----------------------------------------------------------------------------------


def test_a_comment_after_the_rating_is_kept_with_it_and_thanked_without_a_new_case(
        maria: Customer, desk: Desk, db_pool: ConnectionPool, settings: Settings) -> None:
    case_id = rated(maria, desk, db_pool, settings)

    maria.send(COMMENT)

    assert maria.received()[-1] == THANKS
    assert not any("asesor" in body for body in maria.received()[-1:])
    stored = case_rows(db_pool)
    assert stored == [{"id": case_id, "case_number": stored[0]["case_number"], "status": "resolved",
                       "csat_score": 8, "csat_comment": COMMENT}]
    history = rows(db_pool, "SELECT action, data FROM handoff_events WHERE escalation_id = %s AND action = %s",
                   (case_id, "csat_comment"))
    assert history == [{"action": "csat_comment", "data": {"score": 8, "note": COMMENT}}]
    assert rows(db_pool, "SELECT status FROM conversations ORDER BY id DESC LIMIT 1")[0]["status"] == "bot"

    maria.send("se tardaron mucho de verdad")  # thanked once: the next message is the bot's again
    assert maria.received()[-1] != THANKS
    assert case_rows(db_pool)[0]["csat_comment"] == COMMENT

    log_in(maria.client, "carlos@example.com")  # what Carlos reads in the case's history
    history = maria.client.get(f"/console/api/cases/{case_id}").get_json()["history"]
    assert f"El cliente comentó su calificación — «{COMMENT}»" in [h["text"] for h in history]


@pytest.mark.parametrize(("message", "opens_case"), [
    ("quiero hablar con alguien", True),
    ("SV20260106012345", False),
])
def test_a_real_request_after_the_rating_is_answered_as_usual(
        maria: Customer, desk: Desk, db_pool: ConnectionPool, settings: Settings, message: str,
        opens_case: bool) -> None:
    rated(maria, desk, db_pool, settings)

    maria.send(message)

    assert maria.received()[-1] != THANKS
    assert len(case_rows(db_pool)) == (2 if opens_case else 1)
    assert case_rows(db_pool)[0]["csat_comment"] is None
    if not opens_case:
        assert "SV20260106012345" in maria.received()[-1]


def test_a_rating_and_its_comment_in_one_message(maria: Customer, desk: Desk, db_pool: ConnectionPool,
                                                  settings: Settings) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    cases.claim(desk, carlos, case_id)
    cases.resolve(desk, carlos, case_id, "Paquete ubicado", ask_csat=True)
    run_jobs(settings)

    maria.send(f"7, {COMMENT}")

    assert maria.received()[-1] == THANKS
    assert [(c["csat_score"], c["csat_comment"]) for c in case_rows(db_pool)] == [(7, COMMENT)]


def test_only_the_first_message_after_the_rating_may_be_its_comment(
        maria: Customer, desk: Desk, db_pool: ConnectionPool, settings: Settings) -> None:
    rated(maria, desk, db_pool, settings)
    maria.send("¿a qué hora abren el sábado?")
    maria.send("muy amable la chica que me atendió, gracias")
    assert THANKS not in maria.received()
    assert case_rows(db_pool)[0]["csat_comment"] is None


# -- support closes with customers still waiting ------------------------------------------------------------------


def test_each_waiting_customer_is_told_once_when_support_closes(
        client: FlaskClient, maria: Customer, rt: Runtime, desk: Desk, db_pool: ConnectionPool,
        settings: Settings) -> None:
    maria_case = maria.escalate(at=SATURDAY_NOON)
    juan = customer(client, settings, db_pool, "+50370000001", "Juan Pérez")
    juan_case = juan.escalate(at=SATURDAY_NOON)
    cases.claim(desk, make_agent(db_pool, "Carlos Rivas", "carlos@example.com"), juan_case)  # an agent has him
    ana = customer(client, settings, db_pool, "+50370000077", "Ana Gómez")
    ana_case = ana.escalate(at=SATURDAY_NOON)
    ana.send(reply=("console:callback", "📞 Que me llamen"), at=SATURDAY_NOON)
    with db_pool.connection() as conn:  # the cases were opened at 12:30 on Saturday, before the 13:00 closing
        conn.execute("UPDATE escalations SET created_at = %s", (SATURDAY_NOON,))
    run_jobs(settings)
    before = {name: len(c.received()) for name, c in (("maria", maria), ("juan", juan), ("ana", ana))}

    assert closing.run_due(rt, SATURDAY_NOON + timedelta(minutes=20)) == 0  # still open
    runs = [threading.Thread(target=closing.run_due, args=(rt, SATURDAY_CLOSED)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=30)
    assert closing.run_due(rt, SATURDAY_CLOSED + timedelta(minutes=2)) == 0  # told already
    run_jobs(settings)

    maria_case_number = rows(db_pool, "SELECT case_number FROM escalations WHERE id = %s", (maria_case,))[0]
    ana_case_number = rows(db_pool, "SELECT case_number FROM escalations WHERE id = %s", (ana_case,))[0]
    assert maria.received()[before["maria"]:] == [
        "Nuestro equipo ya cerró por hoy 🙏 Te escribimos aquí cuando abramos, el lunes 12/01 a las 8:00am. "
        f"Tu caso es {maria_case_number['case_number']}."]
    assert ana.received()[before["ana"]:] == [
        "Nuestro equipo ya cerró por hoy 🙏 Te llamamos el lunes 12/01 a partir de las 8:00am al número desde el "
        f"que escribes. Tu caso es {ana_case_number['case_number']}."]
    assert juan.received()[before["juan"]:] == []
    sent = rows(db_pool, "SELECT status FROM messages WHERE idempotency_key LIKE 'console:%:closing:%'")
    assert [m["status"] for m in sent] == ["delivered", "delivered"]
    told = rows(db_pool, "SELECT escalation_id, data FROM handoff_events WHERE action = 'closing_notice'"
                         " ORDER BY escalation_id")
    assert [(t["escalation_id"], t["data"]["told"]) for t in told] == [(maria_case, True), (ana_case, True)]


def test_the_closing_notice_goes_out_through_whatsapp_cloud_api(meta_settings: Settings, db_pool: ConnectionPool,
                                                                 graph: FakeGraphAPI) -> None:
    app = create_app(meta_settings)
    built = build_runtime(meta_settings, pool_size=2)
    try:
        with app.test_client() as web:
            maria = Customer(web, meta_settings, db_pool)
            maria.escalate(at=SATURDAY_NOON)
            with db_pool.connection() as conn:
                conn.execute("UPDATE escalations SET created_at = %s", (SATURDAY_NOON,))
            assert closing.run_due(built, SATURDAY_CLOSED) == 1
            run_jobs(meta_settings)
    finally:
        built.close()
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
    last = graph.messages_to("+50370000002")[-1]
    assert last["type"] == "text" and last["text"]["body"].startswith(
        "Nuestro equipo ya cerró por hoy 🙏 Te escribimos aquí cuando abramos, el lunes 12/01 a las 8:00am.")


def test_no_closing_notice_outside_the_24_hour_window_or_long_after_the_closing(
        maria: Customer, rt: Runtime, db_pool: ConnectionPool) -> None:
    case_id = maria.escalate(at=SATURDAY_NOON)
    with db_pool.connection() as conn:
        conn.execute("UPDATE escalations SET created_at = %s", (SATURDAY_NOON,))
    assert closing.run_due(rt, SATURDAY_CLOSED + timedelta(hours=3)) == 0  # the scheduler was down: too late now
    with db_pool.connection() as conn:
        conn.execute("UPDATE contacts SET last_inbound_at = %s", (SATURDAY_NOON - timedelta(hours=30),))
    assert closing.run_due(rt, SATURDAY_CLOSED) == 0
    assert closing.run_due(rt, SATURDAY_CLOSED) == 0
    assert rows(db_pool, "SELECT count(*) AS n FROM messages WHERE idempotency_key LIKE 'console:%:closing:%'"
                ) == [{"n": 0}]
    told = rows(db_pool, "SELECT data FROM handoff_events WHERE escalation_id = %s AND action = 'closing_notice'",
                (case_id,))
    assert [t["data"]["told"] for t in told] == [False]  # recorded once, skipped (no approved template for it)


def test_the_scheduler_runs_the_closing_notices(rt: Runtime) -> None:
    from runtime.leader import Leader
    from worker.scheduler import build_scheduler

    scheduler = build_scheduler(rt, Leader(rt.redis, lease_s=15))
    assert "closing_notices" in [job.id for job in scheduler.get_jobs()]


def test_a_waiting_customer_who_writes_after_the_closing_gets_the_honest_answer(
        maria: Customer, db_pool: ConnectionPool) -> None:
    maria.escalate(at=SATURDAY_NOON)
    case_number = case_rows(db_pool)[0]["case_number"]
    maria.send("ya les mandé el código por aquí", at=SATURDAY_NOON + timedelta(minutes=15))
    assert "un asesor te escribirá por este chat" in maria.received()[-1]  # still open: the usual holding line
    told = len(maria.received())

    maria.send("¿alguien me va a atender?", at=datetime(2026, 1, 10, 13, 10, tzinfo=TZ))

    assert maria.received()[told:] == [
        "Nuestro equipo ya cerró por hoy 🙏 Te escribimos aquí cuando abramos, el lunes 12/01 a las 8:00am. "
        f"Tu caso es *{case_number}*; todo lo que me envíes aquí lo verá el asesor."]
    maria.send("hola??", at=datetime(2026, 1, 10, 13, 20, tzinfo=TZ))
    assert len(maria.received()) == told + 1  # told once; then quiet like any holding message
    assert len(case_rows(db_pool)) == 1


# -- no case the customer did not ask for ----------------------------------------------------------------------


STRANGER = ("+50377770099", "Pedro Ramírez")
GIBBERISH = ("cuéntame un chiste de pericos", "el perico verde canta en la mañana", "la luna es de queso")


def offers(pool: ConnectionPool) -> list[list[str]]:
    """The button titles of every interactive message sent, oldest first."""
    found = rows(pool, "SELECT payload FROM messages WHERE direction = 'out' AND payload ? 'buttons' ORDER BY id")
    return [[b["title"] for b in r["payload"]["buttons"]] for r in found]


def test_not_understood_three_times_offers_a_person_and_only_yes_opens_a_case(
        client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> None:
    pedro = customer(client, settings, db_pool, *STRANGER)
    pedro.send("Hola")
    for text in GIBBERISH:
        pedro.send(text)

    assert case_rows(db_pool) == []
    assert offers(db_pool) == [["Sí, con un asesor", "No, sigo aquí"]] * 2
    assert "¿Quieres que te conecte con un asesor?" in pedro.received()[-1]

    pedro.send("sí")
    assert len(case_rows(db_pool)) == 1
    assert "te conecto con un asesor" in pedro.received()[-1]


def test_after_saying_no_to_a_person_gibberish_gets_the_menu_never_a_case(
        client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> None:
    pedro = customer(client, settings, db_pool, *STRANGER)
    pedro.send("Hola")
    for text in GIBBERISH[:2]:
        pedro.send(text)
    pedro.send(reply=("human_no", "No, sigo aquí"))
    assert pedro.received()[-1].startswith("Va, sigamos 😊")
    offered = len(offers(db_pool))

    for count, text in enumerate((*GIBBERISH, "asdf qwer", "zzz yyy"), start=1):
        pedro.send(text)
        shown = " ".join(pedro.received()[-2:])
        assert "Rastrear paquete" in shown  # the menu, every time
        if count >= 2:  # the first is an ordinary "no entendí"; then the short line
            assert "Si quieres hablar con una persona, escribe *asesor*." in shown

    assert case_rows(db_pool) == []
    assert len(offers(db_pool)) == offered  # not offered again

    pedro.send("asesor")  # the customer asks: now a case
    assert len(case_rows(db_pool)) == 1


# -- the bot's own rating -----------------------------------------------------------------------------------------


def test_a_comment_after_the_bots_rating_is_counted_with_it_and_thanked(
        client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> None:
    juan = customer(client, settings, db_pool, "+50370000001", "Juan Pérez")
    juan.send("SV20260106012345")
    juan.send("gracias, eso es todo")
    assert offers(db_pool)[-1] == ["😊 Excelente", "😐 Regular", "😞 Mala"]
    juan.send(reply=("csat:3", "😐 Regular"))
    assert juan.received()[-1] == "¡Gracias por tu opinión! 🙏 Nos ayuda a mejorar."

    juan.send(COMMENT)

    assert juan.received()[-1] == THANKS
    assert case_rows(db_pool) == []
    events = rows(db_pool, "SELECT kind, data FROM events WHERE kind IN ('csat', 'csat_comment') ORDER BY id")
    assert [(e["kind"], e["data"]["score"]) for e in events] == [("csat", 3), ("csat_comment", 3)]
    assert all(COMMENT not in str(e["data"]) for e in events)  # events never hold the customer's words
    juan.send(COMMENT)  # thanked once: now it is a complaint like any other, and the customer's to make
    assert juan.received()[-1] != THANKS
