"""Conversations, not messages: roles from the phone, the package in view, picking by description, and the
carry-over rules between topics (chatbot/dialog/frames.py). Real router, dialog and services against the sandbox
core (tests/dialog_support.py); each test is a short conversation as a customer would write it."""

from __future__ import annotations

from channels.outbound import Buttons, ChoiceList
from chatbot.dialog.turn import State
from storage.dialogs import DialogState
from tests.dialog_support import JUAN, MARIA, STRANGER, TUESDAY_10AM, Say, readable

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
    assert "$35.00*, listo para retirar" in text and "nada que pagar, en tránsito" in text


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


# -- carry-over rules (chatbot/dialog/frames.py) ----------------------------------------------------------


def test_rule_1_a_fragment_fills_the_quote_and_keeps_the_other_slots(say: Say) -> None:
    ds = DialogState()
    say(ds, "cuánto cuesta mandar 8 libras a San Miguel")
    heavier = readable(say(ds, "¿y 20 libras?").replies)
    assert "20 lbs" in heavier and "San Miguel" in heavier
    elsewhere = readable(say(ds, "¿y a Chalatenango?").replies)
    assert "Chalatenango" in elsewhere and "20 lbs" in elsewhere and "$" in elsewhere


def test_rule_1_a_fragment_after_a_delivery_time_asks_the_time_to_the_new_place(say: Say) -> None:
    ds = DialogState()
    first = readable(say(ds, "cuánto tarda en llegar a San Miguel?").replies)
    assert "San Miguel" in first
    turn = say(ds, "¿y a Chalatenango?")
    text = readable(turn.replies)
    assert "Chalatenango" in text and "no entend" not in text.lower() and "$" not in text


def test_rule_2_within_a_city_replaces_the_destination_and_sets_the_origin(say: Say) -> None:
    ds = DialogState()
    say(ds, "cuánto cuesta mandar 5 libras a San Miguel")
    text = readable(say(ds, "¿y dentro de San Salvador 3 lb?").replies)
    assert "3 lbs" in text and "San Miguel" not in text and "San Salvador" in text
    assert ds.pricing["destination"] and "miguel" not in str(ds.pricing["destination"]).lower()


def test_rule_2_an_origin_named_with_de_is_the_origin(say: Say) -> None:
    text = readable(say(DialogState(), "cuánto cuesta de Santa Ana a La Unión 5 libras").replies)
    assert "Santa Ana" in text and "La Unión" in text
    assert "desde San Salvador" not in text  # the origin is not assumed when the customer said it


def test_rule_3_a_new_question_switches_and_keeps_the_point_in_view(say: Say) -> None:
    ds = DialogState()
    say(ds, "SV20260106012345")  # on its way to Santa Ana
    text = readable(say(ds, "¿a qué hora abren?").replies)
    assert "Santa Ana" in text


def test_rule_4_where_is_a_place_is_an_address_even_right_after_a_quote(say: Say) -> None:
    ds = DialogState()
    say(ds, "cuánto cuesta mandar 5 libras a San Miguel")
    say(ds, "¿y dentro de San Salvador 3 lb?")
    text = readable(say(ds, "¿dónde queda Soyapango?").replies)
    assert "Blvd. del Ejército" in text and "$" not in text


def test_places_without_a_point_get_the_nearest_point_honestly(say: Say) -> None:
    text = readable(say(DialogState(), "¿tienen sucursal en Usulután?").replies)
    assert "Usulután" in text and "km" in text and "San Miguel" in text
    for message in ("vivo en Gotera, donde lo puedo ir a traer?", "hay agencia en Apopa?", "y en chalate?"):
        for phone in (STRANGER, JUAN):  # a place named wins over the writer's own packages
            text = readable(say(DialogState(), message, phone=phone).replies)
            assert "km" in text and "no entend" not in text.lower(), message


# -- several questions in one message ------------------------------------------------------------------


def test_two_questions_get_two_answers_in_order_in_at_most_two_messages(say: Say) -> None:
    turn = say(DialogState(), "cuánto cuesta de Santa Ana a La Unión 5 libras y a qué hora cierran")
    assert len(turn.replies) <= 2
    first, second = readable(turn.replies[:1]), readable(turn.replies[1:])
    assert "$" in first and "Santa Ana" in first and "La Unión" in first and "desde San Salvador" not in first
    assert "6:00pm" in second or "Horario" in second or "horario" in second
    assert ("several_questions", {"count": 2}) in turn.events


def test_one_question_naming_two_places_is_still_one_question(say: Say) -> None:
    turn = say(DialogState(), "cuánto cuesta mandar 5 libras a Santa Ana y La Unión")
    assert not turn.route.parts and "several_questions" not in [kind for kind, _ in turn.events]


# -- while waiting for a person ----------------------------------------------------------------------------


def test_a_plain_question_while_waiting_for_a_person_is_answered_with_the_case_status(say: Say) -> None:
    ds = DialogState()
    say(ds, "quiero hablar con un asesor")
    assert ds.state == State.IN_HANDOFF
    turn = say(ds, "a que hora cierran en santa ana", status="escalated")
    text = readable(turn.replies)
    assert "Santa Ana" in text and "6:00pm" in text and "sigue en espera" in text
    assert ds.state == State.IN_HANDOFF and ds.handoff is not None
    silent = say(ds, "ya van a venir?", status="escalated")  # for the person: the usual holding message
    assert "6:00pm" not in readable(silent.replies)
    with_agent = say(ds, "a que hora cierran en santa ana", status="agent")
    assert with_agent.replies == [] and with_agent.silent  # an agent has the chat: the bot says nothing


def test_are_you_open_right_now_says_which_points_are_open(say: Say) -> None:
    text = readable(say(DialogState(), "estan abiertos ahorita?").replies)  # Tuesday 10:00
    assert "abierto hasta las 6:00pm" in text and "San Miguel - Punto Principal" in text
    late = readable(say(DialogState(), "estan abiertos ahorita?", at=TUESDAY_10AM.replace(hour=20)).replies)
    assert "abierto hasta" not in late and "abre mañana" in late


def test_an_ambiguous_place_is_asked_and_the_tap_answers_it(say: Say) -> None:
    ds = DialogState()
    turn = say(ds, "tienen agencia en San Isidro?", phone=STRANGER)
    asks = [r for r in turn.replies if isinstance(r, Buttons)]
    assert asks and {b.title for b in asks[0].buttons} >= {"Cabañas", "Morazán"}
    tap = say(ds, "", phone=STRANGER, reply_id="place:dis:san_isidro_morazan")
    assert "km" in readable(tap.replies) and "San Miguel" in readable(tap.replies)


def test_what_to_pay_for_a_package_in_view_that_is_not_theirs(say: Say) -> None:
    ds = DialogState()
    say(ds, READY, phone=STRANGER)
    stranger = readable(say(ds, "cuanto hay que pagar para sacarlo?", phone=STRANGER).replies)
    assert "teléfono registrado" in stranger and "$35.00" not in stranger and "ciudad" not in stranger
    ds = DialogState()
    say(ds, "SV20260103008921", phone=JUAN)  # Juan sent it; Carmen Díaz paid $40.00
    sender = readable(say(ds, "cuanto tiene que pagar?", phone=JUAN).replies)
    assert "Carmen Díaz ya pagó *$40.00*" in sender and "ciudad" not in sender


def test_closing_at_one_reads_la_una(say: Say) -> None:
    saturday = TUESDAY_10AM.replace(day=10, hour=12, minute=30)
    text = readable(say(DialogState(), "esta abierto el de san miguel?", at=saturday).replies)
    assert "hasta la 1:00pm" in text and "las 1:00pm" not in text


def test_two_codes_in_one_message_track_both(say: Say) -> None:
    turn = say(DialogState(), "SV20260106012345 y SV20260105008921", phone=STRANGER)
    text = readable(turn.replies)
    assert "SV20260106012345" in text and "SV20260105008921" in text and "La Unión" in text
    assert turn.ds.packages[-2:] == ["SV20260106012345", "SV20260105008921"]


def test_after_a_policy_a_package_of_their_own_is_a_tracking_question(say: Say) -> None:
    ds = DialogState()
    say(ds, "y si nadie llega a traer el paquete?", phone=STRANGER)
    turn = say(ds, "si, uno que mande hace 10 dias", phone=STRANGER)
    assert "código" in readable(turn.replies) and "15 días" not in readable(turn.replies)


def test_a_wrong_code_when_the_bot_asked_for_one_is_not_a_misunderstanding(say: Say) -> None:
    ds = DialogState()
    say(ds, "quiero rastrear mi paquete", phone=STRANGER)
    turn = say(ds, "ABC123", phone=STRANGER)
    assert "formato" in readable(turn.replies) and "ABC123" in readable(turn.replies)
    assert "not_understood" not in [kind for kind, _ in turn.events] and ds.not_understood == 0
