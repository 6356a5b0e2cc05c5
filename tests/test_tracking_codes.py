"""Tracking codes as people really type them (issue 17): one normalisation (`chatbot.entities.read_codes`, its
rules in docs/NLU.md "How tracking codes are read"), a code broken over two messages, and "¿Tu código es SV…?"
with buttons when what was typed reads two ways. The normaliser is checked on its own; the dialog with the real
router, dialog and services against the sandbox core (tests/dialog_support.py); one customer through the signed
webhook and the RQ worker; and tests/scenarios/codes.yaml through scripts/converse.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from chatbot import entities
from chatbot.dialog.turn import State
from chatbot.router import route
from chatbot.routing import DialogContext
from config import Settings
from scripts.eval_nlu import evaluate
from storage.dialogs import DialogState
from tests.dialog_support import JUAN, MARIA, STRANGER, TUESDAY_10AM, Say, readable
from tests.harness import Chat
from web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
ON_THE_WAY = "SV20260106012345"  # Juan Pérez -> María López, in transit to Santa Ana
READY = "SV20260105007834"  # Pedro Ramírez -> María López, ready in Santa Ana


# -- the normaliser --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "code"), [
    ("SV20260106012345", ON_THE_WAY),
    ("sv 2026 0106 012345", ON_THE_WAY),  # spaces between groups, lower case
    ("SV-20260106-012345", ON_THE_WAY),  # dashes
    ("SV 2026 - 0106 - 012345", ON_THE_WAY),  # a dash with spaces around it
    ("SV2026 0106\n012345", ON_THE_WAY),  # a line break between groups
    ("el codigo es SV.2026.0102.005431 porfa", "SV20260102005431"),  # dots
    ("codigo.sv2026 0106 012345", ON_THE_WAY),  # after a full stop without a space
    ("Sv20260106012345", ON_THE_WAY),
    ("S V 2026 0106 012345", ON_THE_WAY),  # "SV" with a space inside
    ("S.V. 2026-0106-012345", ON_THE_WAY),
    ("5V20260106012345", ON_THE_WAY),  # a 5 typed for the S
    ("SV: 20260106012345", ON_THE_WAY),
    ("sv2026o1o6o12345", ON_THE_WAY),  # o for 0
    ("mi código es SV2O26O1O6O12345", ON_THE_WAY),  # O for 0
    ("SV2026 0I06 0l2345", ON_THE_WAY),  # I and l for 1
    ("SV2O26 OIO6 OI2345", ON_THE_WAY),
    ("SV20260I0SOO7834", READY),  # S for 5
    ("SV2026O1O5OO7B34", READY),  # B for 8
    ("sv2026-0106-OO12-34", "SV20260106001234"),  # the brief's example: only one reading
    ("Numero de guia SV2026010601234", "SV2026010601234"),  # 13 digits
    ("SV20260106012345 son 8 libras", ON_THE_WAY),  # "son": a word, not 5-0-N
    ("SV2026010601234 8 libras", "SV2026010601234"),  # "8 libras" is a weight
    ("SV2026010601234 8lb", "SV2026010601234"),
    ("SV 2026 0106 012345 x favor", ON_THE_WAY),  # "x favor": por favor, not a unit
    ("SV20260106012345S", ON_THE_WAY),  # a 15th digit cannot be: the S is a letter
    ("ＳＶ２０２６０１０６０１２３４５", ON_THE_WAY),  # full-width characters
    ("SV20260106\u200b012345", ON_THE_WAY),  # a zero-width space pasted inside
])
def test_every_typed_form_reads_as_the_one_code(typed: str, code: str) -> None:
    assert entities.read_codes(typed) == [entities.CodeReading(code)]
    assert entities.extract_tracking_code(typed) == code
    result = route(typed)
    assert (result.intent, result.entities.get("tracking_code")) == ("track_package", code)


@pytest.mark.parametrize(("typed", "readings"), [
    ("SV2026010601234S", (ON_THE_WAY, "SV2026010601234")),  # S: a 5, or a letter after 13 digits
    ("SV 2026 0106 01234 5", (ON_THE_WAY, "SV2026010601234")),  # 13 digits and a lone 5
    ("SV2026O1O5OO783 4", (READY, "SV2026010500783")),
])
def test_what_reads_two_ways_is_not_guessed(typed: str, readings: tuple[str, ...]) -> None:
    [reading] = entities.read_codes(typed)
    assert not reading.sure and reading.candidates == readings
    assert entities.extract_tracking_code(typed) is None and entities.unsure_code(typed) == reading
    result = route(typed)
    assert result.intent == "track_package" and "tracking_code" not in result.entities
    assert result.entities["code_options"] == list(readings) and "code_attempt" not in result.entities


@pytest.mark.parametrize("typed", [
    "20260106012345", "SV123", "SV202601060123456789", "mi DUI es 01234567-8", "llamame al 50370000001",
    "SV2O26O1O6OO12",  # 12 digits: the start of a code, not a code
    "es verdad 2026", "5v 2A", "SV SI", "tengo 2 paquetes de 8 lb", "06/01/2026",
    "www.envios.sv 20260106012345", "escribile a ana@tienda.sv 20260106012345",  # the end of an address
])
def test_no_code(typed: str) -> None:
    assert entities.read_codes(typed) == []
    assert "tracking_code" not in route(typed).entities


@pytest.mark.parametrize(("typed", "fragment"), [
    ("SV2026 0106", "SV20260106"), ("sv2O26-O1O6", "SV20260106"), ("SV2O26O1O6OO12", "SV202601060012"),
    ("mi codigo es SV2026", "SV2026"), ("SV20260106012345", None), ("correo@tienda.sv 20260106", None),
    ("SV12", None), ("2026 0106", None),
])
def test_the_start_of_a_code(typed: str, fragment: str | None) -> None:
    assert entities.code_fragment(typed) == fragment


@pytest.mark.parametrize(("fragment", "typed", "joined"), [
    ("SV20260106", "0112 34", "SV20260106011234"),
    ("SV20260106", "O12345", ON_THE_WAY),
    ("SV20260106", "01-23-45", ON_THE_WAY),
    ("SV2026", "0106", "SV20260106"),  # still short: a longer start
    ("SV2026010601234", "5", ON_THE_WAY),
    ("SV20260106", "0123456789", None),  # 18 digits
    ("SV20260106", "hola 12", None), ("SV20260106", "SV20260106012345", None), ("SV20260106", "si", None),
])
def test_a_code_broken_over_two_messages_is_joined(fragment: str, typed: str, joined: str | None) -> None:
    assert entities.join_code(fragment, typed) == joined


@pytest.mark.parametrize(("typed", "code"), [
    ("2026 0106 O12345", ON_THE_WAY), ("sv 2026 0106 012345", ON_THE_WAY), ("20260I0SOO7834", READY),
    ("012345", None), ("no lo tengo", None),
])
def test_a_code_without_its_sv_when_one_was_asked(typed: str, code: str | None) -> None:
    assert entities.extract_bare_code(typed) == code
    assert route(typed, DialogContext(expecting="tracking_code")).entities.get("tracking_code") == code


def test_the_dev_set_rows_for_codes_pass() -> None:
    lines = (ROOT / "tests" / "nlu" / "dev.jsonl").read_text("utf-8").splitlines()
    rows_ = [json.loads(line) for line in lines]
    coded = [r for r in rows_ if {"tracking_code", "code_options"} & set(r.get("entities") or {})]
    assert len(coded) >= 15
    result = evaluate(coded)
    assert result["failed"] == 0, result["failures"]


# -- the dialog ------------------------------------------------------------------------------------------


def test_an_unambiguous_repair_is_tracked_at_once(say: Say) -> None:
    turn = say(DialogState(), "mi código es SV2O26O1O6O12345", phone=STRANGER)
    text = readable(turn.replies)
    assert ON_THE_WAY in text and "En tránsito hacia Santa Ana" in text and "¿Tu código es" not in text


def test_a_code_that_reads_two_ways_is_asked_and_yes_tracks_it(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "SV2026010601234S", phone=MARIA)
    assert ds.state == State.AWAITING_CODE_CONFIRM
    [question] = turn.replies
    assert readable([question]).splitlines() == [f"¿Tu código es *{ON_THE_WAY}*? 🤔", "Sí", "No"]
    assert ds.options == [f"pkg:{ON_THE_WAY}", "code_no"]  # the 13-digit reading does not exist: not offered
    turn = say(ds, "si", phone=MARIA)
    assert "En tránsito hacia Santa Ana" in readable(turn.replies) and ds.state == State.IDLE
    assert ds.packages == [ON_THE_WAY]


@pytest.mark.parametrize("answer", ["simon", "sí, ese es"])
def test_a_typed_yes_confirms(say: Say, answer: str) -> None:
    ds = DialogState()
    say(ds, "SV 2026 0106 01234 5", phone=JUAN)
    turn = say(ds, answer, phone=JUAN)
    assert "En tránsito hacia Santa Ana" in readable(turn.replies)


def test_no_asks_to_type_it_again(say: Say) -> None:
    ds = DialogState()
    say(ds, "SV2026010601234S")
    turn = say(ds, "no")
    assert "escríbeme el código otra vez" in readable(turn.replies) and ds.state == State.AWAITING_CODE
    turn = say(ds, "SV20260105008921")
    assert "Listo para retirar en La Unión" in readable(turn.replies)


def test_the_button_no_asks_again_and_a_new_code_is_tracked_instead(say: Say) -> None:
    ds = DialogState()
    say(ds, "SV2026010601234S")
    turn = say(ds, "No", reply_id="code_no")
    assert "escríbeme el código otra vez" in readable(turn.replies)
    ds = DialogState()
    say(ds, "SV2026010601234S")
    turn = say(ds, "SV20260105008921")
    assert "SV20260105008921" in readable(turn.replies) and ds.state == State.IDLE


def test_when_no_reading_exists_the_first_gets_the_not_found_answer(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "SV2026999999999S")
    assert "No encontré ningún paquete con el código *SV20269999999995*" in readable(turn.replies)
    assert ds.state == State.AWAITING_NOT_FOUND_CHOICE


def test_a_code_broken_over_two_messages_is_joined_and_tracked(say: Say) -> None:
    ds = DialogState()
    first = say(ds, "SV2026 0106", phone=MARIA)
    assert "*SV20260106*: le faltan números" in readable(first.replies)  # the format, and "send me the rest"
    assert "Si te faltó una parte, mándamela" in readable(first.replies)
    assert ds.code_fragment == "SV20260106"
    turn = say(ds, "O12345", phone=MARIA)
    assert "En tránsito hacia Santa Ana" in readable(turn.replies) and ds.code_fragment is None


def test_a_code_broken_over_three_messages(say: Say) -> None:
    ds = DialogState()
    say(ds, "mi codigo es SV2026")
    say(ds, "0105")
    turn = say(ds, "008921")
    assert "Listo para retirar en La Unión" in readable(turn.replies)


def test_the_start_of_a_code_waits_one_message_only(say: Say) -> None:
    ds = DialogState()
    say(ds, "SV2026 0106")
    say(ds, "a que hora abren")
    turn = say(ds, "012345")
    assert "En tránsito" not in readable(turn.replies)
    ds = DialogState()
    say(ds, "SV2026 0106")
    later = TUESDAY_10AM.replace(minute=10)
    turn = say(ds, "012345", at=later)
    assert "En tránsito" not in readable(turn.replies)


def test_a_digit_after_a_13_digit_code_not_found_is_asked_about(say: Say) -> None:
    ds = DialogState()
    say(ds, "SV2026010601234")
    assert ds.state == State.AWAITING_NOT_FOUND_CHOICE
    turn = say(ds, "5")  # not one of the three options: the rest of the code
    assert f"¿Tu código es *{ON_THE_WAY}*?" in readable(turn.replies)
    turn = say(ds, "Sí", reply_id=f"pkg:{ON_THE_WAY}")
    assert "En tránsito hacia Santa Ana" in readable(turn.replies)


def test_an_offered_option_number_is_not_read_as_the_rest_of_a_code(say: Say) -> None:
    ds = DialogState()
    say(ds, "SV202601060123")  # 12 digits: the not-found answer and its three options
    say(ds, "1")  # "Intentar otro código"
    assert ds.state == State.AWAITING_CODE


# -- through the webhook and the worker --------------------------------------------------------------------


@pytest.fixture
def chat(base_env: dict[str, str], core_url: str, db_pool: ConnectionPool) -> Iterator[Chat]:
    settings = Settings.from_env({**base_env, "CORE_API_URL": core_url})
    app = create_app(settings)
    with app.test_client() as client:
        yield Chat(client, settings, db_pool, at=TUESDAY_10AM.timestamp(), id_prefix="CODE")
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def test_a_code_typed_with_o_for_zero_is_found_through_the_pipeline(chat: Chat) -> None:
    [reply, *_] = chat.send(MARIA, "mi código es SV2O26O1O6O12345")
    assert ON_THE_WAY in str(reply["body"]) and "En tránsito hacia Santa Ana" in str(reply["body"])


def test_a_code_that_reads_two_ways_is_confirmed_with_a_button_through_the_pipeline(chat: Chat) -> None:
    [question] = chat.send(MARIA, "SV2O26O1O6O1234S")
    assert question["body"] == f"¿Tu código es *{ON_THE_WAY}*? 🤔"
    assert [(b["id"], b["title"]) for b in question["buttons"]] == [(f"pkg:{ON_THE_WAY}", "Sí"), ("code_no", "No")]
    [found, *_] = chat.send(MARIA, tap=(f"pkg:{ON_THE_WAY}", "Sí"))
    assert "En tránsito hacia Santa Ana" in str(found["body"])


# -- the scenarios -----------------------------------------------------------------------------------------


def test_the_code_scenarios_pass(base_env: dict[str, str]) -> None:
    """tests/scenarios/codes.yaml: each form of a typed code, broken over two messages, and the "¿Tu código es…?"."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "converse.py"),
                             str(ROOT / "tests" / "scenarios" / "codes.yaml")], capture_output=True, text=True,
                            timeout=280, cwd=ROOT, env={**env, **base_env}, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("passed, 0 failed")
