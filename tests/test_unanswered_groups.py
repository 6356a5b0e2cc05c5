"""Grouping unanswered messages (services/unanswered_groups.py) on generated wordings, and a company's own phrases
in the router (chatbot/phrases.company_score): what should go together does, what should not does not."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from chatbot.router import route
from chatbot.routing import INTENTS
from services.unanswered_groups import MASK, group, mask
from storage.intent_phrases import INTENT_LABELS
from storage.unanswered import Unanswered

T0 = datetime(2026, 11, 2, 15, tzinfo=UTC)


def rows(*texts: str, start: datetime = T0, kind: str = "not_understood") -> list[Unanswered]:
    return [Unanswered(i, text, start + timedelta(minutes=i), kind, None) for i, text in enumerate(texts)]


def by_text(texts: list[str]) -> list[set[str]]:
    """The groups as sets of the messages in them (their masked examples cover them all below 6)."""
    return [set(g.examples) for g in group(rows(*texts)).groups]


TYPOS_ACCENTS_ORDER = [
    "¿Hacen envíos a Guatemala?", "hacen envios a guatemala", "HACEN ENVÍOS A GUATEMALA", "guatemala, ¿hacen envíos?",
    "hacen envíos a guatemla", "haceen enviiios a Guatemala??",
]


def test_typos_accents_case_and_word_order_group_together() -> None:
    found = group(rows(*TYPOS_ACCENTS_ORDER)).groups
    assert [g.count for g in found] == [len(TYPOS_ACCENTS_ORDER)]
    assert found[0].keywords[:2] in (["envios", "guatemala"], ["guatemala", "envios"])
    assert found[0].phrase in ("envios guatemala", "guatemala envios")


@pytest.mark.parametrize(("apart", "why"), [
    (["¿Hacen envíos a Guatemala?", "¿Hacen envíos a Honduras?"], "another country"),
    (["¿tienen bodega refrigerada?", "¿venden cajas para empacar?"], "nothing in common"),
    (["¿hacen envíos a Guatemala?", "envíos"], "one word alone says too little"),
    (["¿trabajan con mercado libre?", "¿trabajan los domingos?"], "one shared verb"),
])
def test_different_questions_stay_apart(apart: list[str], why: str) -> None:
    assert len(group(rows(*apart)).groups) == len(apart), why


def test_plurals_and_greetings_do_not_split_a_group() -> None:
    texts = ["bodega refrigerada", "hola, ¿tienen bodegas refrigeradas?", "buenas tardes, bodega refrigerada por favor"]
    assert by_text(texts) == [set(texts)]


def test_counts_examples_times_kinds_and_the_period_before() -> None:
    now = rows(*TYPOS_ACCENTS_ORDER, "¿venden cajas?", "¿venden cajas para empacar?")
    now[0] = Unanswered(0, now[0].text, now[0].at, "escalation", "customer_request")
    before = rows("hacen envios a guatemala?", "envíos a guatemala", "¿aceptan bitcoin?",
                  start=T0 - timedelta(days=30))
    found = group(now, before)
    guatemala, cajas = found.groups
    assert (guatemala.count, guatemala.previous, cajas.count, cajas.previous) == (6, 2, 2, 0)
    assert (guatemala.not_understood, guatemala.escalations) == (5, 1)
    assert guatemala.first_seen == T0 and guatemala.last_seen == T0 + timedelta(minutes=5)
    assert len(guatemala.examples) == 5 and len(set(guatemala.examples)) == 5
    assert (found.total, found.previous_total, found.left_out) == (8, 3, 0)


@pytest.mark.parametrize("text", [
    "mi número es 7000-0091", "llámenme al +503 7000 0091", "mi DUI es 01234567-8", "el código SV2026000123 no sale",
    "escríbanme a ana.lopez@correo.com", "el paquete 123456789012 no llega",
])
def test_the_examples_hide_phones_codes_dui_and_emails(text: str) -> None:
    shown = mask(text)
    assert MASK in shown
    assert not any(ch.isdigit() for ch in shown) and "@" not in shown
    assert group(rows(text)).groups[0].examples == [shown]


def test_a_busy_month_is_capped_and_what_joins_no_group_is_counted() -> None:
    rng = random.Random(4)
    words = ["alfa", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett"]
    tags = [a + b for a in "bcdfgklmnprstvz" for b in "aeiou"]  # 75 syllables: each text its own
    texts = [f"{rng.choice(words)}{tag} {rng.choice(words)}{tag}" for tag in tags] + ["hacen envios a guatemala"] * 50
    found = group(rows(*texts), max_buckets=20)
    assert found.groups[0].count == 50 and len(found.groups) <= 20  # no more groups than buckets allowed
    assert found.left_out == found.total - sum(g.count for g in found.groups) > 0


def test_a_companys_phrase_is_matched_only_when_given_and_in_any_order() -> None:
    assert set(INTENT_LABELS) <= set(INTENTS)  # the intents the page offers are the router's
    mine = (("sales_lead", "trabajan mercado libre"),)
    for text in ("¿trabajan con mercado libre?", "mercado libre, ¿trabajan con ellos?",
                 "¿trabajan con mercadoo libre?"):
        assert route(text).intent == "out_of_scope", text
        assert route(text, extra=mine).intent == "sales_lead", text
    assert route("¿venden en el mercado?", extra=mine).intent != "sales_lead"  # every word of the phrase is needed
