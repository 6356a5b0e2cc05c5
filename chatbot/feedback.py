"""Whether a message written right after a rating is a comment on it, or a new request.

Used for both ratings: the bot's own 1-5 question after a goodbye (`chatbot.dialog.courtesy`) and the
1-10 question after an agent resolved a case (`chatbot.rating_comment`). The rule, on the router's
reading of the message (pure: no I/O):
- it is feedback when the router reads a complaint ("el agente fue amable pero se tardaron mucho"),
  free text it cannot place that asks nothing (out_of_scope without "?"), or thanks in a few words
  ("el asesor fue muy amable, gracias"; a bare "gracias" is a courtesy the bot answers);
- and it names nothing the bot could act on: no entity (tracking code, place, weight).
Anything else is a real request ("¿y mi otro paquete?", a tracking code, "quiero hablar con alguien")
and is answered as usual. Words that come with the score itself ("8, muy bien") need no minimum length:
the number already says they are about the rating.
"""

from __future__ import annotations

from chatbot.routing import Route

FEEDBACK_INTENTS = frozenset({"complaint", "out_of_scope", "thanks"})
THANKS_MIN_WORDS = 3  # "gracias" and "muchas gracias" are courtesies; "el asesor fue muy amable" is feedback
COMMENT_MAX = 1000  # characters kept of a comment


def reads_as_comment(found: Route, text: str, *, with_score: bool = False) -> bool:
    """Whether `text`, read by the router as `found`, comments on a rating just given (or on the score it
    comes with, `with_score`)."""
    words = len(text.split()) if not with_score else THANKS_MIN_WORDS
    if not any(ch.isalpha() for ch in text) or found.entities or found.intent not in FEEDBACK_INTENTS:
        return False
    if found.intent == "out_of_scope":
        return "?" not in text and words >= 2
    if found.intent == "thanks":
        return words >= THANKS_MIN_WORDS
    return True
