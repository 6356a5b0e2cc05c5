"""Policies and the company's FAQ: requirements, unclaimed packages, refunds, payment, free questions."""

from __future__ import annotations

from chatbot.dialog import delivery_times
from chatbot.dialog.turn import State, Turn
from chatbot.services import catalog, faq


def policy(t: Turn, topic: str) -> State:
    if topic == "delivery":
        return delivery_times.delivery(t)
    t.replies += faq.policy_answer(t.ctx, topic)
    t.solved(topic)
    t.topic = topic
    return State.IDLE


def faq_answer(t: Turn) -> State | None:
    """A question the router could not place but the company's FAQ answers (a keyword of the entry appears)."""
    words = f" {t.folded} "  # folded like the FAQ keywords: no accents, punctuation as spaces
    for entry in faq.faq_search(t.ctx, t.text, limit=3):
        if any(f" {catalog.fold(k)} " in words for k in entry.keywords if catalog.fold(k)):
            t.say_text(entry.answer)
            t.solved("faq")
            t.topic = "faq"
            return State.IDLE
    return None
