"""Issue 12 (part A): without a tracking code, nobody sees anyone else's packages (design 9.1).

Each attack of the issue goes through the real message path (signed webhook -> worker -> engine -> reply
read back from the messages table) against the sandbox core's demo data: a stranger asking by a first
name, by a surname, by another person's phone typed in the chat, then "opening" a number of a list; and a
username-only customer (no phone). The rule: only the number the customer writes from is a key; a name
with the destination point at most confirms that a package waits there, never its code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import redis
from psycopg_pool import ConnectionPool

from config import Settings
from storage.dialogs import DialogState
from tests.harness import post_meta, rows, run_jobs
from tests.test_engine_flows import JUAN, MARIA, STRANGER, TUESDAY_10AM, Chat, make_chat, readable

USERNAME_ONLY = "SV.13491208655302741918"  # a business-scoped user id: the customer hides their phone
# Every demo tracking code but the example the bot itself shows when asking for a code (SV20260106012345).
OTHERS_CODES = ("SV20260105008921", "SV20260103008921", "SV20260105007834", "SV20260102005431",
                "SV20260106012890", "SV20260105007823")
PRIVATE = ("Pedro", "Ramírez", "$35", "$40", "Listo para retirar", "En tránsito", "Entregado", "Recibido",
           "Rosa", "Carmen", "Luis", "Roberto", "Juan", "Para:", "De:")
_CODE = re.compile(r"SV\d{13,14}")


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def chat(settings: Settings, db_pool: ConnectionPool) -> Iterator[Chat]:
    yield from make_chat(settings, db_pool)


def as_username(chat: Chat, text: str) -> str:
    """What a username-only customer (no phone in the webhook, only the business-scoped id) reads back."""
    message_id = f"wamid.PRIV{uuid.uuid4().hex}"
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Cliente", "username": "@cliente"}, "user_id": USERNAME_ONLY}],
        "messages": [{"from_user_id": USERNAME_ONLY, "id": message_id, "type": "text", "text": {"body": text},
                      "timestamp": str(int(TUESDAY_10AM.timestamp()))}]}}]}]}
    assert post_meta(chat.client, body).status_code == 200
    run_jobs(chat.settings)
    event = rows(chat.pool, "SELECT id, status FROM webhook_events WHERE event_id = %s", (message_id,))[0]
    assert event["status"] == "processed"
    sent = rows(chat.pool, "SELECT payload FROM messages WHERE webhook_event_id = %s AND direction = 'out'"
                           " ORDER BY id", (event["id"],))
    return readable([r["payload"] for r in sent])


def assert_nothing_of_others(text: str) -> None:
    for code in OTHERS_CODES:
        assert code not in text, code
    for word in PRIVATE:
        assert word not in text, word


def sessions(redis_conn: redis.Redis) -> list[DialogState]:
    return [DialogState.from_json(raw) for key in redis_conn.scan_iter(match="dialog:*")
            if (raw := redis_conn.get(key)) is not None]


def assert_no_code_remembered(redis_conn: redis.Redis) -> None:
    """Nothing a stranger could open later ("1", "el primero") and nothing the console would show as theirs."""
    for state in sessions(redis_conn):
        assert state.packages == [] and state.listed == []
        assert not [option for option in state.options if option.startswith("pkg:")]


# -- a stranger: a number that is nobody's in the core ---------------------------------------------------


def test_a_first_name_gets_no_codes_then_a_full_name_only_confirms_and_1_opens_nothing(
        chat: Chat, redis_conn: redis.Redis) -> None:
    first = chat.text(STRANGER, "no tengo el código")
    assert "No encontré paquetes registrados con el número desde el que me escribes" in first
    assert "*nombre completo*" in first
    assert_nothing_of_others(first)
    only_first = chat.text(STRANGER, "María")
    assert "*nombre y apellido*" in only_first
    assert_nothing_of_others(only_first)
    assert "¿A qué punto" in chat.text(STRANGER, "María López")
    confirmed = chat.text(STRANGER, "Santa Ana")
    assert "Sí hay un paquete a nombre de *María López* para retirar en *Santa Ana - Punto Principal*" in confirmed
    assert "pídele el código de rastreo a quien te lo envió" in confirmed and "Hablar con asesor" in confirmed
    assert not _CODE.search(confirmed)
    assert_nothing_of_others(confirmed)
    assert_no_code_remembered(redis_conn)
    for attempt in ("1", "el primero", "dame detalles del 1"):
        opened = chat.text(STRANGER, attempt)
        assert "Paquete encontrado" not in opened
        assert_nothing_of_others(opened)
    assert_no_code_remembered(redis_conn)


@pytest.mark.parametrize("surname", ["López", "Lopez, Santa Ana"])
def test_a_surname_alone_finds_nothing(chat: Chat, redis_conn: redis.Redis, surname: str) -> None:
    chat.send(STRANGER, "no tengo el código")
    text = chat.text(STRANGER, surname)
    assert "*nombre y apellido*" in text
    assert_nothing_of_others(text)
    assert_nothing_of_others(chat.text(STRANGER, "1"))
    assert_no_code_remembered(redis_conn)


@pytest.mark.parametrize("typed", ["7000-0002", "es el 503 7000 0001", "+50370000001"])
def test_another_persons_phone_typed_at_the_prompt_is_no_key(chat: Chat, redis_conn: redis.Redis,
                                                             typed: str) -> None:
    chat.send(STRANGER, "no tengo el código")
    text = chat.text(STRANGER, typed)
    assert "solo puedo mostrarte los paquetes del número desde el que me escribes" in text
    assert "Tengo el código" in text and "Hablar con asesor" in text
    assert_nothing_of_others(text)
    assert "SV20260106012345" not in text
    after = chat.text(STRANGER, "1")  # "Tengo el código": asks for it, opens nothing
    assert "Envíame el código" in after and "Paquete encontrado" not in after
    assert_no_code_remembered(redis_conn)


def test_a_phone_typed_with_the_request_is_no_key_even_for_a_customer(chat: Chat, redis_conn: redis.Redis) -> None:
    text = chat.text(JUAN, "quiero ver los paquetes del 7000-0002")  # María's number, typed by Juan
    assert "solo puedo mostrarte los paquetes del número desde el que me escribes" in text
    assert "SV20260105007834" not in text and "Pedro" not in text
    assert_no_code_remembered(redis_conn)


def test_a_typed_phone_after_a_name_search_is_no_key_either(chat: Chat) -> None:
    chat.send(STRANGER, "no tengo el código")
    chat.send(STRANGER, "Marta Gómez")
    chat.send(STRANGER, "Santa Ana")  # nothing for Marta: "Otro nombre / Hablar con asesor / Tengo el código"
    text = chat.text(STRANGER, "7000-0002")
    assert "solo puedo mostrarte los paquetes del número desde el que me escribes" in text
    assert_nothing_of_others(text)


def test_a_stranger_with_a_code_gets_the_basic_level_only(chat: Chat) -> None:
    text = chat.text(STRANGER, "SV20260105007834")
    assert "Listo para retirar en Santa Ana" in text and "teléfono registrado" in text
    for hidden in ("Pedro", "María", "$35"):
        assert hidden not in text


# -- a username-only customer: no phone at all -----------------------------------------------------------


def test_a_username_only_customer_finds_nothing_without_a_code(chat: Chat, redis_conn: redis.Redis) -> None:
    text = as_username(chat, "no tengo el código")
    assert "sin un número de teléfono visible" in text and "teléfono registrado" in text
    assert "Tengo el código" in text and "Hablar con asesor" in text
    assert_nothing_of_others(text)
    for attempt in ("María López", "7000-0002", "1"):
        later = as_username(chat, attempt)
        assert "Paquete encontrado" not in later and "Sí hay un paquete" not in later
        assert_nothing_of_others(later)
    assert_no_code_remembered(redis_conn)


def test_a_username_only_customer_with_a_code_gets_the_basic_level(chat: Chat) -> None:
    text = as_username(chat, "SV20260105007834")
    assert "Listo para retirar en Santa Ana" in text
    for hidden in ("Pedro", "María", "$35"):
        assert hidden not in text


# -- the package's own people, from their own number -------------------------------------------------------


def test_the_recipient_without_a_code_gets_her_own_packages_and_opens_one(chat: Chat) -> None:
    listed = chat.text(MARIA, "no tengo el código")
    assert "SV20260105007834" in listed and "SV20260106012345" in listed and "De: Pedro Ramírez" in listed
    assert "SV20260105007823" not in listed  # "M. López" is someone else
    opened = chat.text(MARIA, "2")
    assert "SV20260105007834" in opened and "$35.00" in opened and "Retíralo en" in opened


def test_the_sender_without_a_code_gets_his_own_packages(chat: Chat) -> None:
    listed = chat.text(JUAN, "quiero ver todos mis paquetes")
    for code in ("SV20260106012345", "SV20260105008921", "SV20260103008921", "SV20260106012890",
                 "SV20260105007823"):
        assert code in listed
    assert "SV20260105007834" not in listed and "SV20260102005431" not in listed
