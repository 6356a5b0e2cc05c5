"""The design's remaining FAQ answers (issue 13): a third person collecting, "I already paid the sender",
cards and cash, every policy/FAQ answer at most six lines with "¿Quieres más detalles?", and codes as
people type them. The router and the answer-cutting are checked on their own; the conversations go
through the real pipeline (signed webhook -> queue -> worker -> dialog -> messages table), with the
sandbox core on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from psycopg_pool import ConnectionPool

from channels.outbound import Buttons, Text
from chatbot import entities
from chatbot.router import route
from config import Settings
from scripts.eval_nlu import evaluate
from services import faq
from tests.harness import Chat
from web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
TUESDAY_10AM = datetime(2026, 1, 6, 10, 0, tzinfo=ZoneInfo("America/El_Salvador"))
MARIA, STRANGER = "+50370000002", "+50379990001"  # María López: SV20260105007834 ready, $35.00 to pay
NOT_UNDERSTOOD = "no entendí"


class Tenant:
    """What the FAQ service reads of a ServiceContext: no stored FAQ, so the tenant's faq_data/<slug>.yaml."""

    tenant_slug = "demo"
    faq = None


# -- the router ------------------------------------------------------------------------------------


def test_the_policy_questions_dev_set_is_fully_recognised() -> None:
    rows = [json.loads(line) for line in (ROOT / "tests" / "nlu" / "policies.jsonl").read_text("utf-8").splitlines()
            if line.strip()]
    result = evaluate(rows)
    assert result["failed"] == 0, result["failures"]
    assert {r["entities"].get("policy") for r in rows} >= {"pickup_by_other", "paid_sender", "payment_methods"}


@pytest.mark.parametrize(("text", "attempt"), [
    ("ABC123", "ABC123"),
    ("abc-123", "ABC123"),
    ("el codigo es 12345678", "12345678"),
    ("SV202601050078", "SV202601050078"),  # SV and 12 digits: two missing
    ("sv 2O26 O1O5 OO78", "SV202601050078"),  # letter O typed for zero
    ("mi guia es 2026-0105-0078", "202601050078"),
    ("20260105007834", "20260105007834"),  # a whole code without its SV
    ("codigo:ABC123", "ABC123"),
    ("hola,ABC123", "ABC123"),
    ("1234567", "1234567"),
])
def test_a_code_attempt_is_recognised(text: str, attempt: str) -> None:
    assert entities.code_attempt(text) == attempt
    assert route(text).entities.get("code_attempt") == attempt


@pytest.mark.parametrize("text", [
    "SV20260105007834",  # a valid code is no attempt
    "12345", "8lb", "100lbs", "8kg", "1030am", "a las 10:30am", "35usd", "$35", "$350000", "$ 350000",
    "1,500.00", "cuesta 35.00", "06/01/2026", "2026-01-06", "06-01-2026",
    "mi numero es 7000-0001", "+50370000001", "50370000001", "mi dui es 01234567-8",
    "ENC-260106-XDEJ",  # one of our case numbers
    "juan123@gmail.com", "www.tienda123.com", "iphone15", "covid-19", "2026", "tengo 2 paquetes de 8 lb",
])
def test_what_is_not_a_code_attempt(text: str) -> None:
    assert entities.code_attempt(text) is None
    assert "code_attempt" not in route(text).entities


def test_a_mistyped_sv_code_or_a_number_is_a_tracking_question() -> None:
    assert route("SV202601050078").intent == "track_package"
    assert route("el codigo es 12345678").intent == "track_package"


# -- six lines at most -------------------------------------------------------------------------------


def test_a_short_text_is_sent_whole() -> None:
    assert faq.split_answer("Una línea.\n\nOtra línea.") == ("Una línea.\n\nOtra línea.", None)
    assert faq.short_answer("Corto.", "policy:payment") == [Text("Corto.")]


def test_a_long_text_is_cut_after_the_paragraphs_that_fit() -> None:
    text = "Título\n• uno\n• dos\n\n• tres\n• cuatro\n\nDetalle final."
    assert faq.split_answer(text) == ("Título\n• uno\n• dos\n\n• tres\n• cuatro", "Detalle final.")


def test_a_paragraph_longer_than_six_lines_is_cut_between_lines() -> None:
    text = "\n".join(f"• punto {n}" for n in range(1, 10))
    first, rest = faq.split_answer(text)
    assert first == "\n".join(f"• punto {n}" for n in range(1, 7))
    assert rest == "\n".join(f"• punto {n}" for n in range(7, 10))


def test_a_long_line_is_cut_between_sentences_never_inside_one() -> None:
    sentences = [f"Esta es la oración número {n} de una respuesta que alguien escribió toda seguida." for n in range(8)]
    first, rest = faq.split_answer(" ".join(sentences))
    assert rest is not None and faq.lines(first) <= faq.MAX_LINES
    assert first == " ".join(sentences[:len(first.split(". "))])
    assert f"{first} {rest}" == " ".join(sentences)
    one_long_sentence = "palabra " * 80
    assert faq.split_answer(one_long_sentence) == (one_long_sentence.strip(), None)


def test_a_long_answer_ends_with_more_details_buttons() -> None:
    text = "\n".join(f"• punto {n}" for n in range(1, 10))
    [message] = faq.short_answer(text, "policy:requirements")
    assert isinstance(message, Buttons)
    assert message.body.endswith("• punto 6\n\n¿Quieres más detalles?")
    assert [(b.id, b.title) for b in message.buttons] == [("more:policy:requirements", "Sí"), ("more_no", "No")]


def test_a_part_too_long_for_an_interactive_body_goes_first_as_text() -> None:
    sentence = "una sola oración larguísima " * 40  # 1,120 characters that cannot be cut
    first, question = faq.short_answer(f"{sentence}\n\nY un detalle.", "faq:largo")
    assert isinstance(first, Text) and first.body == sentence.strip()
    assert isinstance(question, Buttons) and question.body == "¿Quieres más detalles?"


def test_every_demo_policy_and_faq_answer_starts_within_six_lines() -> None:
    for topic in faq.POLICY_TOPICS:
        first, _ = faq.split_answer(faq.policy_text(Tenant(), topic))  # type: ignore[arg-type]
        assert faq.lines(first) <= faq.MAX_LINES, topic
    for entry in faq.load_faq("demo").entries:
        assert faq.lines(faq.split_answer(entry.answer)[0]) <= faq.MAX_LINES, entry.id


def test_more_details_sends_the_rest_of_the_requirements() -> None:
    ctx: Any = Tenant()
    [first] = faq.policy_answer(ctx, "requirements")
    assert isinstance(first, Buttons) and "*DUI*" in first.body and "*No aceptamos:*" in first.body
    assert "animales vivos" in first.body and "¿Cómo se envía?" not in first.body
    [rest] = faq.more_details(ctx, "policy:requirements")
    assert isinstance(rest, Text)
    assert "*¿Cómo se envía?*" in rest.body and "efectivo o con tarjeta" in rest.body
    assert "*DUI*" not in rest.body and "No aceptamos" not in rest.body
    assert faq.more_details(ctx, "policy:weather") == [] and faq.more_details(ctx, "faq:nadie") == []
    assert faq.more_details(ctx, "policy:payment_methods") == []  # nothing left to send


# -- through the real pipeline -----------------------------------------------------------------------


@pytest.fixture
def chat(base_env: dict[str, str], core_url: str, db_pool: ConnectionPool) -> Iterator[Chat]:
    settings = Settings.from_env({**base_env, "CORE_API_URL": core_url})
    app = create_app(settings)
    with app.test_client() as client:
        yield Chat(client, settings, db_pool, at=TUESDAY_10AM.timestamp(), id_prefix="FAQ")
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


@pytest.mark.parametrize("question", [
    "¿puede ir mi esposa a traerlo?", "mi hermano lo puede recoger?", "lo puede retirar otra persona?",
])
def test_a_third_person_collecting_gets_what_to_bring_and_a_person_is_offered(chat: Chat, question: str) -> None:
    chat.send(MARIA, "SV20260105007834")
    body, buttons = chat.buttons(MARIA, question)
    assert "*DUI* o documento de identidad" in body and "otra persona" in body and "asesor" in body
    assert "Rastrear" not in body and "código de rastreo" not in body
    assert [title for _, title in buttons] == ["Sí, con un asesor", "No, gracias"]
    assert chat.cases() == []  # offered, never opened without asking
    declined = chat.text(MARIA, tap=next(b for b in buttons if b[1] == "No, gracias"))
    assert "¿Te ayudo con algo más?" in declined and chat.cases() == []


def test_a_typed_no_to_the_person_offered_is_just_no_thanks(chat: Chat) -> None:
    chat.send(MARIA, "mi hermano lo puede recoger?")
    reply = chat.text(MARIA, "no")
    assert "¿Te ayudo con algo más?" in reply and "otras palabras" not in reply and chat.cases() == []
    assert "te conecto con un asesor" in chat.text(MARIA, "quiero hablar con un asesor")  # a person still offered


def test_a_third_person_question_then_yes_opens_a_case(chat: Chat) -> None:
    chat.send(MARIA, "lo puede retirar otra persona?")
    reply = chat.text(MARIA, "sí")
    assert "te conecto con un asesor" in reply and "Tu número de caso" in reply
    assert chat.cases() == [{"reason": "change_delivery", "priority": "normal"}]


def test_the_amount_to_pay_says_what_paying_the_sender_means(chat: Chat) -> None:
    chat.send(MARIA, "SV20260105007834")
    reply = chat.text(MARIA, "cuanto tengo que pagar?")
    assert "pagas *$35.00*" in reply and "Si ya le pagaste a Pedro Ramírez por transferencia, no pagas nada" in reply


@pytest.mark.parametrize("question", ["ya le pagué al remitente por transferencia, ¿igual llevo efectivo?",
                                      "ya le pague al vendedor, tengo que pagar algo mas?"])
def test_already_paid_the_sender_quotes_the_design(chat: Chat, question: str) -> None:
    reply = chat.text(MARIA, question)
    assert "*no tienes que pagar nada* en el punto" in reply
    assert "ya hiciste el pago directo" in reply and "*DUI*" in reply
    assert "Pagos:" not in reply and "lo paga quien envía" not in reply and "pagas *$35.00*" not in reply


@pytest.mark.parametrize("question", ["¿aceptan tarjeta?", "puedo pagar con tarjeta?", "solo efectivo?"])
def test_cards_and_cash_is_a_short_answer(chat: Chat, question: str) -> None:
    [payload] = chat.send(STRANGER, question)
    body = str(payload["body"])
    assert "aceptamos *efectivo o tarjeta*" in body and "se paga en efectivo al retirarlo" in body
    assert "Requisitos" not in body and "No aceptamos" not in body and "¿Cómo se envía?" not in body
    assert body.endswith("¿Te ayudo con algo más? 😊") and len(body.splitlines()) <= 4


@pytest.mark.parametrize("yes", ["sí", "dale pues", "Sí, por favor"])
def test_a_long_policy_offers_more_details_and_yes_sends_the_rest(chat: Chat, yes: str) -> None:
    body, buttons = chat.buttons(STRANGER, "que necesito para enviar un paquete?")
    assert "*DUI*" in body and "*No aceptamos:*" in body and body.endswith("¿Quieres más detalles?")
    assert len(body.splitlines()) <= faq.MAX_LINES + 2 and "¿Cómo se envía?" not in body
    assert [title for _, title in buttons] == ["Sí", "No"]
    rest = chat.text(STRANGER, yes)
    assert "*¿Cómo se envía?*" in rest and "4. Recibes tu código de rastreo" in rest
    assert "¿Te ayudo con algo más?" in rest
    assert "*DUI*" not in rest and NOT_UNDERSTOOD not in rest


def test_no_to_more_details_moves_on(chat: Chat) -> None:
    _, buttons = chat.buttons(STRANGER, "que necesito para enviar un paquete?")
    reply = chat.text(STRANGER, tap=buttons[1])
    assert "¿Te ayudo con algo más?" in reply and "¿Cómo se envía?" not in reply


def test_tapping_si_sends_the_rest_and_another_question_is_just_answered(chat: Chat) -> None:
    _, buttons = chat.buttons(STRANGER, "que necesito para enviar un paquete?")
    assert "*¿Cómo se envía?*" in chat.text(STRANGER, tap=buttons[0])
    chat.send(STRANGER, "que necesito para enviar un paquete?")
    reply = chat.text(STRANGER, "a que hora abren en santa ana?")
    assert "Santa Ana" in reply and "8:00am" in reply and "¿Cómo se envía?" not in reply


@pytest.mark.parametrize(("question", "item"), [
    ("puedo mandar dinero en efectivo?", "dinero en efectivo"), ("puedo mandar un perrito?", "animales vivos"),
    ("y medicinas?", "medicamentos controlados"),
])
def test_what_may_not_be_sent_is_answered_at_once(chat: Chat, question: str, item: str) -> None:
    [payload] = chat.send(STRANGER, question)
    body = str(payload["body"])
    assert "*No aceptamos:*" in body and item in body and len(body.splitlines()) <= faq.MAX_LINES + 2


@pytest.mark.parametrize(("typed", "shown"), [
    ("ABC123", "ABC123"), ("abc-123", "ABC123"), ("el codigo es 12345678", "12345678"),
    ("SV202601050078", "SV202601050078"),
])
def test_a_code_attempt_hears_the_format_not_no_entendi(chat: Chat, typed: str, shown: str) -> None:
    reply = chat.text(STRANGER, typed)
    assert f"No encontré ningún paquete con el código *{shown}*" in reply
    assert "*SV* y 14 números" in reply and "SV20260106012345" in reply
    assert "Intentar otro código" in reply and "Hablar con asesor" in reply
    assert NOT_UNDERSTOOD not in reply.lower()


def test_a_whole_code_typed_without_its_sv_is_looked_up(chat: Chat) -> None:
    reply = chat.text(MARIA, "20260105007834")
    assert "Paquete encontrado" in reply and "SV20260105007834" in reply


def test_a_phone_number_is_not_taken_for_a_code(chat: Chat) -> None:
    reply = chat.text(STRANGER, "mi numero es 7000-0001")
    assert "No encontré ningún paquete con el código" not in reply
