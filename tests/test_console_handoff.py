"""The hand-over state machine through the real message path: a customer escalates via the signed webhook
and the worker, agents act through `desk.desk`, and what the customer receives is read back from the
messages table after the real worker delivered it through the local transport."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import cases
from handoff.cases import Conflict, Desk, Forbidden, NotFound, WindowClosed
from tests.console_support import Customer, desk_for, make_agent, other_tenant
from tests.harness import rows, run_jobs


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def maria(client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> Customer:
    return Customer(client, settings, db_pool)


@pytest.fixture
def desk(settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> Desk:
    return desk_for(settings, db_pool, redis_conn)


def case_row(pool: ConnectionPool, case_id: int) -> dict[str, object]:
    return rows(pool, "SELECT e.*, c.status AS conversation_status FROM escalations e"
                      " JOIN conversations c ON c.id = e.conversation_id WHERE e.id = %s", (case_id,))[0]


def test_claim_tells_the_customer_who_joined_and_silences_the_bot(maria: Customer, desk: Desk,
                                                                  db_pool: ConnectionPool,
                                                                  settings: Settings) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    before = len(maria.received())

    cases.claim(desk, carlos, case_id)
    row = case_row(db_pool, case_id)
    assert (row["status"], row["taken_by"], row["conversation_status"]) == ("taken", carlos.id, "agent")
    run_jobs(settings)  # the delivery job sends the greeting through the transport

    greeting = maria.received()[before:]
    assert len(greeting) == 1
    assert greeting[0].startswith("Hola María, soy Carlos del equipo de soporte")
    assert str(row["case_number"]) in greeting[0]
    sent = rows(db_pool, "SELECT status, agent_id FROM messages WHERE direction = 'out' ORDER BY id DESC LIMIT 1")[0]
    assert (sent["status"], sent["agent_id"]) == ("delivered", carlos.id)
    assert case_row(db_pool, case_id)["first_response_at"] is not None

    maria.send("me lo envió Juan Pérez de San Salvador")
    assert len(maria.received()) == before + 1  # the bot stays quiet while a person has the chat
    history = rows(db_pool, "SELECT action, agent_id FROM handoff_events WHERE escalation_id = %s", (case_id,))
    assert history == [{"action": "claim", "agent_id": carlos.id}]


def test_two_agents_claiming_at_once_exactly_one_wins(maria: Customer, desk: Desk, db_pool: ConnectionPool,
                                                      settings: Settings) -> None:
    case_id = maria.escalate()
    team = [make_agent(db_pool, f"Agente {n}", f"agente{n}@example.com") for n in range(4)]
    start = threading.Barrier(len(team))
    won: list[int] = []
    lost: list[str] = []

    def try_claim(agent_index: int) -> None:
        start.wait()
        try:
            cases.claim(desk, team[agent_index], case_id)
            won.append(team[agent_index].id)
        except Conflict as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=try_claim, args=(i,)) for i in range(len(team))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(won) == 1 and len(lost) == len(team) - 1
    winner = next(a for a in team if a.id == won[0])
    assert all(f"ya lo tomó {winner.name}" in message for message in lost)
    assert case_row(db_pool, case_id)["taken_by"] == winner.id
    assert rows(db_pool, "SELECT count(*) AS n FROM handoff_events WHERE action = 'claim'")[0]["n"] == 1
    run_jobs(settings)
    assert sum("del equipo de soporte" in body for body in maria.received()) == 1


def test_take_over_is_deliberate_and_recorded(maria: Customer, desk: Desk, db_pool: ConnectionPool,
                                              settings: Settings) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    ana = make_agent(db_pool, "Ana Martínez", "ana@example.com", role="supervisor")
    cases.claim(desk, carlos, case_id)

    with pytest.raises(Forbidden, match="Carlos Rivas tiene el caso"):
        cases.reply(desk, ana, case_id, "Hola")
    with pytest.raises(Conflict, match="ya lo tomó Carlos Rivas"):
        cases.claim(desk, ana, case_id)
    with pytest.raises(Conflict, match="cambió mientras tanto"):
        cases.take_over(desk, ana, case_id, from_agent_id=ana.id)  # not who has it now

    cases.take_over(desk, ana, case_id, from_agent_id=carlos.id)
    assert case_row(db_pool, case_id)["taken_by"] == ana.id
    history = rows(db_pool, "SELECT action, agent_id, data FROM handoff_events WHERE escalation_id = %s ORDER BY id",
                   (case_id,))
    assert [(h["action"], h["agent_id"]) for h in history] == [("claim", carlos.id), ("takeover", ana.id)]
    assert history[1]["data"] == {"from_agent_id": carlos.id}
    with pytest.raises(Forbidden, match="Ana Martínez tiene el caso"):
        cases.reply(desk, carlos, case_id, "Sigo aquí")
    run_jobs(settings)
    assert maria.received()[-1].startswith("Hola María, soy Ana del equipo de soporte. Continúo yo")


def test_reply_goes_out_through_the_transport_once(maria: Customer, desk: Desk, db_pool: ConnectionPool,
                                                   settings: Settings) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    with pytest.raises(Conflict, match="está en espera: tómalo primero"):  # the status in words, not its id
        cases.reply(desk, carlos, case_id, "Hola")
    cases.claim(desk, carlos, case_id)

    first = cases.reply(desk, carlos, case_id, "Encontré tu paquete: SV20260105007823", client_key="k1")
    again = cases.reply(desk, carlos, case_id, "Encontré tu paquete: SV20260105007823", client_key="k1")
    assert first == again  # a double click does not send twice
    with pytest.raises(cases.HandoffError, match="Escribe la respuesta"):
        cases.reply(desk, carlos, case_id, "   ")
    run_jobs(settings)
    assert maria.received().count("Encontré tu paquete: SV20260105007823") == 1
    sent = rows(db_pool, "SELECT status, agent_id, provider_message_id FROM messages WHERE id = %s", (first,))[0]
    assert sent["status"] == "delivered" and sent["agent_id"] == carlos.id and sent["provider_message_id"]


def test_outside_the_24_hour_window_free_text_is_refused(maria: Customer, desk: Desk, db_pool: ConnectionPool,
                                                         settings: Settings) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    with db_pool.connection() as conn:
        conn.execute("UPDATE contacts SET last_inbound_at = now() - interval '25 hours'")
    before = len(maria.received())

    cases.claim(desk, carlos, case_id)  # allowed, but no greeting can be sent as free text
    with pytest.raises(WindowClosed) as info:
        cases.reply(desk, carlos, case_id, "Hola María")
    assert info.value.closes_at is not None
    run_jobs(settings)
    assert len(maria.received()) == before
    assert rows(db_pool, "SELECT count(*) AS n FROM messages WHERE status = 'pending'")[0]["n"] == 0


def test_hand_back_returns_the_chat_to_the_bot(maria: Customer, desk: Desk, db_pool: ConnectionPool,
                                               settings: Settings) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    cases.claim(desk, carlos, case_id)
    cases.hand_back(desk, carlos, case_id)
    row = case_row(db_pool, case_id)
    assert (row["status"], row["conversation_status"]) == ("returned", "bot")
    run_jobs(settings)
    assert maria.received()[-1].startswith("Carlos te deja de nuevo con el asistente virtual")

    maria.send("a qué hora abre el punto de Santa Ana")
    assert "Santa Ana" in maria.received()[-1]  # the bot answers again
    with pytest.raises(Conflict, match="devuelto al asistente"):
        cases.reply(desk, carlos, case_id, "Hola")


def test_resolve_with_a_reason_and_a_1_to_10_rating(maria: Customer, desk: Desk, db_pool: ConnectionPool,
                                                     settings: Settings) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    cases.claim(desk, carlos, case_id)
    with pytest.raises(cases.HandoffError, match="Cuenta cómo se resolvió"):
        cases.resolve(desk, carlos, case_id, "  ", ask_csat=True)
    cases.resolve(desk, carlos, case_id, "Paquete encontrado con otro nombre", ask_csat=True)
    row = case_row(db_pool, case_id)
    assert (row["status"], row["resolution_reason"], row["resolved_by"]) == (
        "resolved", "Paquete encontrado con otro nombre", carlos.id)
    assert row["conversation_status"] == "closed" and row["csat_asked_at"] is not None
    run_jobs(settings)
    assert maria.received()[-2].startswith(f"Tu caso {row['case_number']} quedó resuelto")
    assert maria.received()[-1].startswith("Del 1 al 10, ¿qué tan satisfecho quedaste con la atención de Carlos?")

    maria.send("9")
    assert case_row(db_pool, case_id)["csat_score"] == 9
    assert maria.received()[-1] == "¡Gracias por tu calificación! 🙏 Nos ayuda a mejorar."
    maria.send("10")  # only the first answer counts; the next message is the bot's again
    assert case_row(db_pool, case_id)["csat_score"] == 9
    assert maria.received()[-1] != "¡Gracias por tu calificación! 🙏 Nos ayuda a mejorar."


def test_an_agent_never_reaches_another_companys_case(maria: Customer, desk: Desk, db_pool: ConnectionPool) -> None:
    case_id = maria.escalate()
    stranger = make_agent(db_pool, "Pedro Otro", "pedro@otra.example", tenant_id=other_tenant(db_pool))
    for action in (lambda: cases.claim(desk, stranger, case_id),
                   lambda: cases.add_note(desk, stranger, case_id, "hola"),
                   lambda: cases.reply(desk, stranger, case_id, "hola")):
        with pytest.raises(NotFound):
            action()
    assert case_row(db_pool, case_id)["status"] == "waiting"


def test_old_resolved_cases_ask_no_rating_after_a_day(maria: Customer, desk: Desk, db_pool: ConnectionPool) -> None:
    case_id = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    cases.claim(desk, carlos, case_id)
    cases.resolve(desk, carlos, case_id, "Resuelto", ask_csat=True)
    with db_pool.connection() as conn:
        conn.execute("UPDATE escalations SET csat_asked_at = csat_asked_at - %s", (timedelta(days=2),))
    maria.send("8")
    assert case_row(db_pool, case_id)["csat_score"] is None


def test_a_number_said_to_an_agent_is_not_a_rating(maria: Customer, desk: Desk, db_pool: ConnectionPool) -> None:
    first = maria.escalate()
    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    cases.claim(desk, carlos, first)
    cases.resolve(desk, carlos, first, "Resuelto", ask_csat=True)
    second = maria.escalate("quiero hablar con una persona otra vez")
    assert second != first
    cases.claim(desk, carlos, second)
    maria.send("2")  # "¿cuántos paquetes son?" -- "2"
    assert case_row(db_pool, first)["csat_score"] is None
    assert case_row(db_pool, second)["csat_score"] is None
