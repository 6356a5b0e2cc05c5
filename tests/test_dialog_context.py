"""Conversations, not messages: roles from the phone, the package in view, picking by description, and the
carry-over rules between topics (chatbot/dialog/frames.py). Real router, dialog and services against the sandbox
core (tests/dialog_support.py); each test is a short conversation as a customer would write it."""

from __future__ import annotations

from channels.outbound import Buttons, ChoiceList
from chatbot.dialog.store import DialogState
from chatbot.dialog.turn import State
from tests.dialog_support import JUAN, MARIA, STRANGER, Say, readable

# María López receives SV20260105007834 (from Pedro Ramírez, ready in Santa Ana, $35.00 to pay) and
# SV20260106012345 (from Juan Pérez, on its way to Santa Ana, nothing to pay).
READY, ON_THE_WAY = "SV20260105007834", "SV20260106012345"


# -- roles from the phone -------------------------------------------------------------------------------


def test_a_recipient_asking_what_to_pay_after_her_list_gets_the_amount_to_collect(say: Say) -> None:
    ds = DialogState()
    listed = say(ds, "no tengo el código", phone=MARIA)
    assert READY in readable(listed.replies) and ON_THE_WAY in readable(listed.replies)
    turn = say(ds, "¿cuánto tengo que pagar?", phone=MARIA)
    text = readable(turn.replies)
    assert "$35.00" in text and READY in text and "Pedro Ramírez" in text
    assert "ciudad" not in text and "enviar" not in text.lower()  # not a shipping quote
    assert turn.ds.state == State.IDLE


def test_a_recipient_asking_what_to_pay_with_no_context_gets_her_packages_from_her_phone(say: Say) -> None:
    turn = say(DialogState(), "cuanto pago para retirar mi encargo?", phone=MARIA)
    text = readable(turn.replies)
    assert "$35.00" in text and "nada que pagar" in text


def test_a_sender_or_stranger_asking_what_it_costs_gets_a_quote(say: Say) -> None:
    for phone in (JUAN, STRANGER):
        turn = say(DialogState(), "cuánto tengo que pagar?", phone=phone)
        assert "$" not in readable(turn.replies) and "ciudad" in readable(turn.replies)


def test_has_it_arrived_from_the_registered_phone_needs_no_code(say: Say) -> None:
    turn = say(DialogState(), "ya llegó mi encargo?", phone=MARIA)
    text = readable(turn.replies)
    assert READY in text and ON_THE_WAY in text and "Listo para retirar" in text
    assert "código de rastreo" not in text
    stranger = say(DialogState(), "ya llegó mi encargo?", phone=STRANGER)
    assert "código" in readable(stranger.replies) and "SV2026010" not in readable(stranger.replies).replace(
        "SV20260106012345", "")  # only the code format example, never someone's package


def test_where_do_i_pick_it_up_from_the_recipient_phone_names_her_point(say: Say) -> None:
    turn = say(DialogState(), "donde lo recojo?", phone=MARIA)
    text = readable(turn.replies)
    assert "Santa Ana - Punto Principal" in text and "Calle Libertad" in text and "$35.00" in text


# -- picking from a list by description -------------------------------------------------------------


def test_picking_from_the_list_by_the_senders_name_even_misspelled(say: Say) -> None:
    for description in ("el de Pedro Ramírez", "el de pedro ramires"):
        ds = DialogState()
        say(ds, "no tengo el código", phone=MARIA)
        turn = say(ds, description, phone=MARIA)
        text = readable(turn.replies)
        assert "Paquete encontrado" in text and READY in text and ON_THE_WAY not in text, description


def test_picking_by_status_and_by_the_last_digits(say: Say) -> None:
    ds = DialogState()
    say(ds, "no tengo el código", phone=MARIA)
    assert READY in readable(say(ds, "el que ya llegó", phone=MARIA).replies)
    ds = DialogState()
    say(ds, "no tengo el código", phone=MARIA)
    text = readable(say(ds, "el que termina en 345", phone=MARIA).replies)
    assert "Paquete encontrado" in text and ON_THE_WAY in text


def test_an_ambiguous_pick_asks_with_buttons_and_a_tap_settles_it(say: Say) -> None:
    ds = DialogState()
    say(ds, "no tengo el código", phone=MARIA)
    turn = say(ds, "el que va para Santa Ana", phone=MARIA)  # both of hers go to Santa Ana
    asks = [r for r in turn.replies if isinstance(r, Buttons | ChoiceList)]
    assert asks and "¿Cuál de estos es?" in asks[0].body and turn.ds.state == State.AWAITING_PACKAGE_CHOICE
    choice = say(ds, "", phone=MARIA, reply_id=f"pkg:{READY}")
    assert "Paquete encontrado" in readable(choice.replies) and READY in readable(choice.replies)


def test_a_description_that_fits_none_is_not_a_pick(say: Say) -> None:
    ds = DialogState()
    say(ds, "no tengo el código", phone=MARIA)
    turn = say(ds, "el de Rigoberto Menjívar", phone=MARIA)
    assert "Paquete encontrado" not in readable(turn.replies)
