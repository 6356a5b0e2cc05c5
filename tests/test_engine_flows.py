"""The conversation engine through the real message path: signed webhook -> queue -> worker -> reply.

The logistics core is the sandbox core on loopback with its demo data; the
messages go out through the local transport and are read back from the
messages table. Each message carries its own timestamp (the customer's
clock), which is what the bot's "now" is.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from runtime.resources import build_runtime
from tests.harness import post_meta, rows, run_jobs
from web.app import create_app
from worker import inbound

TZ = ZoneInfo("America/El_Salvador")
TUESDAY_10AM = datetime(2026, 1, 6, 10, 0, tzinfo=TZ)
TUESDAY_NIGHT = datetime(2026, 1, 6, 23, 30, tzinfo=TZ)
JUAN, MARIA, ANA, STRANGER = "+50370000001", "+50370000002", "+50370000003", "+50379990001"


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


class Chat:
    """A customer's WhatsApp: each `send` posts one signed webhook, runs the worker and returns the replies."""

    def __init__(self, client: FlaskClient, settings: Settings, pool: ConnectionPool) -> None:
        self.client, self.settings, self.pool = client, settings, pool

    def send(self, phone: str, text: str | None = None, *, at: datetime = TUESDAY_10AM, name: str | None = None,
             reply: tuple[str, str] | None = None, timestamp: int | None = None) -> list[dict[str, Any]]:
        message_id = f"wamid.FLOW{uuid.uuid4().hex}"
        message: dict[str, Any] = {"from": phone.lstrip("+"), "id": message_id,
                                   "timestamp": str(int(at.timestamp()) if timestamp is None else timestamp)}
        if reply is not None:
            message.update(type="interactive", interactive={
                "type": "button_reply", "button_reply": {"id": reply[0], "title": reply[1]}})
        else:
            message.update(type="text", text={"body": text or ""})
        contact: dict[str, Any] = {"wa_id": phone.lstrip("+")}
        if name:
            contact["profile"] = {"name": name}
        body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [contact], "messages": [message]}}]}]}
        assert post_meta(self.client, body).status_code == 200
        run_jobs(self.settings)
        event = rows(self.pool, "SELECT id, status FROM webhook_events WHERE event_id = %s", (message_id,))[0]
        assert event["status"] == "processed"
        sent = rows(self.pool, "SELECT payload FROM messages WHERE webhook_event_id = %s AND direction = 'out'"
                               " ORDER BY id", (event["id"],))
        return [r["payload"] for r in sent]

    def text(self, phone: str, text: str | None = None, **kwargs: Any) -> str:
        return readable(self.send(phone, text, **kwargs))


def readable(payloads: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for p in payloads:
        parts.append(str(p.get("body") or ""))
        parts += [str(c["title"]) for c in p.get("buttons") or p.get("rows") or []]
        parts += [str(p.get(k) or "") for k in ("name", "address") if p.get("kind") == "location"]
    return "\n".join(parts)


def make_chat(settings: Settings, pool: ConnectionPool) -> Iterator[Chat]:
    """A `Chat` on the real app built from `settings` (closed when the generator ends)."""
    app = create_app(settings)
    with app.test_client() as client:
        yield Chat(client, settings, pool)
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


@pytest.fixture
def chat(settings: Settings, db_pool: ConnectionPool) -> Iterator[Chat]:
    yield from make_chat(settings, db_pool)




# -- information levels ----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "hidden"), [
    ("SV20260105007834", ["$35", "María", "Pedro", "Ramírez"]),
    ("SV20260103008921", ["$40", "reembolso disponible", "Carmen", "Juan"]),
    ("SV20260106012345", ["Juan", "María", "López"]),
])
def test_a_stranger_never_sees_names_amounts_or_refunds(chat: Chat, code: str, hidden: list[str]) -> None:
    text = chat.text(STRANGER, code)
    assert "Paquete encontrado" in text and code in text
    for word in hidden:
        assert word not in text


def test_the_parties_see_their_details(chat: Chat) -> None:
    maria = chat.text(MARIA, "SV20260105007834")
    assert "$35.00" in maria and "Pedro Ramírez" in maria and "Retíralo en" in maria
    juan = chat.text(JUAN, "SV20260103008921")
    assert "$40.00" in juan and "reembolso disponible" in juan


def test_search_by_name_shows_a_stranger_no_codes_or_names(chat: Chat) -> None:
    chat.send(STRANGER, "no tengo el código")
    chat.send(STRANGER, "María López")
    text = chat.text(STRANGER, "Santa Ana")  # design 9.1: a name only confirms a package waits there
    assert "Sí hay un paquete a nombre de *María López*" in text and "Santa Ana - Punto Principal" in text
    assert "SV20260105007834" not in text and "Pedro" not in text and "$35" not in text


# -- context and topic switches -----------------------------------------------------------------------


def test_topic_switch_and_resume(chat: Chat) -> None:
    assert "código de rastreo" in chat.text(JUAN, "quiero rastrear mi paquete")
    assert "¿De cuál punto" in chat.text(JUAN, "¿a qué hora abren?")
    answer = chat.text(JUAN, "3")
    assert "Calle Libertad" in answer and "¿Seguimos con el rastreo de tu paquete?" in answer
    assert "código" in chat.text(JUAN, "sí")
    assert "En tránsito hacia Santa Ana" in chat.text(JUAN, "SV20260106012345")


def test_multi_package_memory(chat: Chat) -> None:
    chat.send(JUAN, "SV20260106012345")
    chat.send(JUAN, "SV20260105008921")
    both = chat.text(JUAN, "¿cuándo llegan los dos?")
    assert "SV20260106012345" in both and "SV20260105008921" in both and "La Unión" in both


def test_pickup_hours_and_address_of_the_package_point(chat: Chat) -> None:
    chat.send(MARIA, "SV20260106012345")
    pickup = chat.text(MARIA, "¿A qué hora puedo recogerlo?")
    assert "Santa Ana - Punto Principal" in pickup and "6:00pm" in pickup
    assert "Calle Libertad" in chat.text(MARIA, "dame la dirección")
    pin = chat.send(MARIA, "sí")
    assert pin[0]["kind"] == "location" and pin[0]["name"] == "Santa Ana - Punto Principal"


def test_requote_for_another_weight(chat: Chat) -> None:
    assert "libras" in chat.text(JUAN, "cuánto cuesta mandar un paquete a Santa Ana")
    assert "$8.00" in chat.text(JUAN, "8 libras")
    assert "$12.00" in chat.text(JUAN, "y para 20 libras?")


def test_now_is_the_time_of_the_message(chat: Chat) -> None:
    assert "está *abierto*" in chat.text(JUAN, "a qué hora cierra el punto de Santa Ana", at=TUESDAY_10AM)
    assert "está *cerrado*" in chat.text(ANA, "a qué hora cierra el punto de Santa Ana", at=TUESDAY_NIGHT)
    assert "Santa Ana" in chat.text(STRANGER, "a qué hora cierra el punto de Santa Ana", timestamp=0)


# -- escalation ------------------------------------------------------------------------------------------


def test_complaint_opens_a_high_priority_case(chat: Chat, db_pool: ConnectionPool) -> None:
    text = chat.text(ANA, "mi paquete llegó dañado, quiero poner un reclamo")
    case = rows(db_pool, "SELECT case_number, priority, reason, status FROM escalations")
    assert len(case) == 1
    assert (case[0]["priority"], case[0]["reason"], case[0]["status"]) == ("high", "complaint", "waiting")
    assert case[0]["case_number"] in text and case[0]["case_number"].startswith("ENC-260106-")
    assert rows(db_pool, "SELECT status FROM conversations") == [{"status": "escalated"}]
    events = rows(db_pool, "SELECT data FROM events WHERE kind = 'escalation'")
    assert events[0]["data"]["case_number"] == case[0]["case_number"]


def test_human_request_outside_hours_is_a_callback_with_the_emergency_phone(chat: Chat,
                                                                             db_pool: ConnectionPool) -> None:
    text = chat.text(JUAN, "quiero hablar con un asesor", at=TUESDAY_NIGHT)
    assert "mañana (miércoles) a las 8:00am" in text and "+503 2222-3333" in text
    case = rows(db_pool, "SELECT priority, reason, status FROM escalations")[0]
    assert (case["priority"], case["reason"], case["status"]) == ("normal", "customer_request", "callback")


def test_human_request_inside_hours(chat: Chat, db_pool: ConnectionPool) -> None:
    text = chat.text(JUAN, "quiero hablar con una persona")
    assert "en breve" in text and "2222-3333" not in text
    assert rows(db_pool, "SELECT status FROM escalations")[0]["status"] == "waiting"


@pytest.mark.parametrize(("text", "reason"), [
    ("necesito cambiar la dirección de entrega de mi paquete", "change_delivery"),
    ("quiero un contrato corporativo para 500 paquetes al mes", "sales_lead"),
])
def test_changes_and_sales_leads_go_to_a_person_with_normal_priority(chat: Chat, db_pool: ConnectionPool,
                                                                     text: str, reason: str) -> None:
    chat.send(JUAN, text)
    case = rows(db_pool, "SELECT priority, reason FROM escalations")[0]
    assert (case["priority"], case["reason"]) == ("normal", reason)


def test_silent_while_a_person_has_the_chat(chat: Chat, db_pool: ConnectionPool) -> None:
    case = chat.text(JUAN, "quiero hablar con un asesor")
    holding = chat.text(JUAN, "ok, espero")
    assert "ya está con nuestro equipo" in holding and holding.split("*")[1] in case  # the same case number
    assert chat.send(JUAN, "hola?") == []
    with db_pool.connection() as conn:
        conn.execute("UPDATE conversations SET status = 'agent'")
    assert chat.send(JUAN, "SV20260106012345", at=datetime(2026, 1, 6, 15, 0, tzinfo=TZ)) == []
    stored = rows(db_pool, "SELECT body, route FROM messages WHERE direction = 'in' ORDER BY id")
    assert [m["body"] for m in stored][-2:] == ["hola?", "SV20260106012345"]  # still stored, with routing
    assert all(m["route"] for m in stored)
    with db_pool.connection() as conn:
        conn.execute("UPDATE conversations SET status = 'bot'")  # the agent gives the chat back
    assert "En tránsito" in chat.text(JUAN, "SV20260106012345", at=datetime(2026, 1, 6, 15, 5, tzinfo=TZ))


def test_while_waiting_one_holding_message_a_while_later(chat: Chat) -> None:
    chat.send(JUAN, "quiero hablar con un asesor")
    assert chat.send(JUAN, "gracias") != []
    assert chat.send(JUAN, "hola?") == []
    later = chat.text(JUAN, "sigo esperando", at=datetime(2026, 1, 6, 13, 0, tzinfo=TZ))
    assert "ya está con nuestro equipo" in later


# -- opt-out, routing records, abuse --------------------------------------------------------------------


def test_opt_out_and_opt_in_are_recorded_on_the_contact(chat: Chat, db_pool: ConnectionPool) -> None:
    def opted_out() -> bool:
        return bool(rows(db_pool, "SELECT opted_out_at IS NOT NULL AS o FROM contacts")[0]["o"])

    assert "ALTA" in chat.text(JUAN, "STOP")
    assert opted_out()
    chat.send(JUAN, "ALTA")
    assert not opted_out()
    chat.send(JUAN, "no me manden más mensajes")
    assert opted_out()
    kinds = [r["kind"] for r in rows(db_pool, "SELECT kind FROM events WHERE kind LIKE 'opt_%%' ORDER BY id")]
    assert kinds == ["opt_out", "opt_in", "opt_out"]


def test_every_routing_decision_is_recorded_with_the_message(chat: Chat, db_pool: ConnectionPool) -> None:
    chat.send(JUAN, "Hola")
    chat.send(JUAN, "SV20260106012345")
    stored = rows(db_pool, "SELECT route FROM messages WHERE direction = 'in' ORDER BY id")
    assert [m["route"]["intent"] for m in stored] == ["greeting", "track_package"]
    assert stored[1]["route"]["stage"] == "regex" and stored[1]["route"]["confidence"] == 1.0
    assert stored[1]["route"]["entities"] == {"tracking_code": "SV20260106012345"}
    assert stored[1]["route"]["state_after"] == "idle"
    events = rows(db_pool, "SELECT data FROM events WHERE kind = 'route' ORDER BY id")
    assert [e["data"]["intent"] for e in events] == ["greeting", "track_package"]


def test_rate_limit_one_polite_wait_then_silence(base_env: dict[str, str], core_url: str,
                                                 db_pool: ConnectionPool) -> None:
    settings = Settings.from_env({**base_env, "CORE_API_URL": core_url, "RATE_LIMIT_PER_MINUTE": "3"})
    app = create_app(settings)
    with app.test_client() as client:
        chat = Chat(client, settings, db_pool)
        answers = [chat.send(JUAN, f"aceptan tarjeta {n}?", at=TUESDAY_10AM.replace(second=n)) for n in range(5)]
        assert all(answers[:3])
        assert "espera un momento" in readable(answers[3])
        assert answers[4] == []
        assert chat.send(JUAN, "aceptan tarjeta?", at=TUESDAY_10AM.replace(minute=5)) != []
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()
    limited = rows(db_pool, "SELECT data FROM events WHERE kind = 'rate_limited' ORDER BY id")
    assert [e["data"]["notified"] for e in limited] == [True, False]


def test_rate_limit_defaults_follow_the_design(settings: Settings) -> None:
    assert (settings.rate_limit_per_minute, settings.rate_limit_per_hour, settings.rate_limit_per_day) == (20, 100, 500)


def test_the_same_message_five_times_offers_a_person(chat: Chat) -> None:
    for _ in range(4):
        chat.send(JUAN, "ayuda con mi paquete")
    assert "¿Quieres hablar con un asesor?" in chat.text(JUAN, "ayuda con mi paquete")


@pytest.mark.parametrize("text", [
    "", "   ", "😀😀😀", "🙏", "x" * 4000, "Hola " * 900, "Where is my package? I need it today please",
    "<script>alert('x')</script><b>hola</b>", "'; DROP TABLE messages; --", "hola\x00\x07\x1b[31m\u202e",
    "SV20260106012345 <img src=x onerror=alert(1)>", "{{7*7}} ${jndi:ldap://x} %s %n",
])
def test_bad_input_gets_a_sensible_reply_and_no_markup_back(chat: Chat, db_pool: ConnectionPool, text: str) -> None:
    replies = chat.send(STRANGER, text)
    assert replies, "every odd message still gets an answer"
    shown = json.dumps(replies, ensure_ascii=False)
    for bad in ("<script", "<b>", "<img", "onerror", "DROP TABLE", "\\u0000", "jndi", "{{7*7}}"):
        assert bad not in shown
    assert rows(db_pool, "SELECT count(*) AS n FROM events WHERE kind = 'engine_error'")[0]["n"] == 0


def test_unexpected_engine_failure_is_an_apology_and_the_event_completes(chat: Chat, db_pool: ConnectionPool,
                                                                         redis_conn: redis.Redis) -> None:
    chat.send(JUAN, "Hola")
    for key in redis_conn.scan_iter(match="dialog:*"):  # a session whose last quote no service can read
        redis_conn.set(key, json.dumps({"conversation_id": 1, "state": "idle", "last_intent": "pricing",
                                        "pricing": {"destination": "santa_ana", "weight": "abc"}}))
    text = chat.text(JUAN, "¿y a San Miguel?")
    assert "Perdón, tuve un problema" in text and "Rastrear paquete" in text
    assert rows(db_pool, "SELECT data FROM events WHERE kind = 'engine_error'")[0]["data"]["error"] == "TypeError"
    assert "$8.00" in chat.text(JUAN, "cuanto cuesta mandar 8 libras a San Miguel")  # the broken session is gone


# -- greetings and idempotency ---------------------------------------------------------------------------


def test_first_contact_then_returning_customer(chat: Chat, db_pool: ConnectionPool) -> None:
    first = chat.text(JUAN, "Hola", name="Juan Pérez")
    assert first.startswith("¡Hola, Juan! 👋 Soy el asistente virtual de *Transportes Express El Salvador*")
    with db_pool.connection() as conn:
        conn.execute("UPDATE conversations SET status = 'closed'")
    assert chat.text(JUAN, "Hola", name="Juan Pérez").startswith("¡Hola de nuevo, Juan!")


def test_a_silent_answer_is_not_composed_twice(chat: Chat, settings: Settings, db_pool: ConnectionPool) -> None:
    chat.send(JUAN, "quiero hablar con un asesor")
    chat.send(JUAN, "gracias")
    assert chat.send(JUAN, "hola?") == []
    event = rows(db_pool, "SELECT id FROM webhook_events ORDER BY id DESC LIMIT 1")[0]["id"]
    with db_pool.connection() as conn:
        conn.execute("UPDATE webhook_events SET status = 'queued' WHERE id = %s", (event,))
    before = rows(db_pool, "SELECT count(*) AS n FROM events")[0]["n"]
    rt = build_runtime(settings, pool_size=2)
    try:
        assert inbound.process_message(rt, event) == "processed"
    finally:
        rt.close()
    assert rows(db_pool, "SELECT count(*) AS n FROM events")[0]["n"] == before


@pytest.mark.parametrize(("variables", "message"), [
    ({"RATE_LIMIT_PER_MINUTE": "0"}, "RATE_LIMIT_PER_MINUTE=0 is outside"),
    ({"RATE_LIMIT_PER_HOUR": "lots"}, "RATE_LIMIT_PER_HOUR='lots' is not a whole number"),
    ({"RATE_LIMIT_PER_MINUTE": "200", "RATE_LIMIT_PER_HOUR": "100"}, "RATE_LIMIT_PER_MINUTE <= RATE_LIMIT_PER_HOUR"),
])
def test_rate_limit_settings_are_validated(base_env: dict[str, str], variables: dict[str, str], message: str) -> None:
    from config import ConfigError

    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**base_env, **variables})
