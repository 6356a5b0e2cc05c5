"""The design's remaining FAQ answers (issue 13): a third person collecting, "I already paid the sender",
cards and cash, every policy/FAQ answer at most six lines with "¿Quieres más detalles?", and codes as
people type them. The router and the answer-cutting are checked on their own; the conversations go
through the real pipeline (signed webhook -> queue -> worker -> dialog -> messages table), with the
sandbox core on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from channels.outbound import Buttons, Text
from chatbot import entities
from chatbot.router import route
from chatbot.services import faq
from scripts.eval_nlu import evaluate

ROOT = Path(__file__).resolve().parent.parent


class Tenant:
    """What the FAQ service reads of a ServiceContext: the tenant's slug (faq_data/<slug>.yaml)."""

    tenant_slug = "demo"


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
    assert isinstance(first, Buttons) and "*DUI*" in first.body and "No aceptamos" not in first.body
    [rest] = faq.more_details(ctx, "policy:requirements")
    assert isinstance(rest, Text)
    assert "*¿Cómo se envía?*" in rest.body and "• Animales vivos" in rest.body and "*DUI*" not in rest.body
    assert faq.more_details(ctx, "policy:weather") == [] and faq.more_details(ctx, "faq:nadie") == []
    assert faq.more_details(ctx, "policy:payment_methods") == []  # nothing left to send
