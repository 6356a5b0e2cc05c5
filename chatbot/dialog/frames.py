"""Carry-over rules: what a new message keeps of the conversation so far (drawn as notes in machine.mmd).

Each topic keeps its own slots in the session (`DialogState`):

- the package in view: `packages` (the last looked at) and `listed` (the list just shown), in `package_in_view`;
- a quote: `pricing` = origin, destination, weight, in `quote`;
- delivery times: the destination, shared with the quote (`pricing["destination"]`), in `delivery_times`;
- a point: `point` (and `day` for opening hours), in `points`;
- a case: `handoff`, in `cases`.

The rules, applied in this order (tests/test_dialog_context.py has a test for each):

1. Fill. A fragment that continues the last answer fills that topic's slot, and the topic answers again
   with its other slots kept: "¿y para 20 libras?" after a quote (the destination stays), "¿y a
   Chalatenango?" after a quote or a delivery time, "¿y el sábado?" after opening hours. A fragment starts
   with "y…" (the `follow_up` cue) or has at most six words, and has no intent of its own (the last
   topic's, none, or only one its place or day suggests).
2. Reset. A slot the message contradicts is replaced, and only that slot: a new destination replaces the
   destination and keeps the weight; "dentro de San Salvador" makes San Salvador both the origin and the
   destination; "de Santa Ana a La Unión" sets both; a new weight replaces the weight.
3. Switch. A message with an intent of its own changes the topic. What still applies carries over: the
   package in view (its point's hours, its arrival), the point being discussed (its address and pin), and
   the destination of a quote into delivery times ("¿y cuánto tarda?"). Nothing else carries.
4. Places are not prices. A question about where a place is ("¿dónde queda Soyapango?", the `where_is`
   cue) is a location question even right after a quote: it never fills the quote.
5. Paying is about the package. "¿Cuánto tengo que pagar?" from the recipient of a package in view (or of
   their own packages) is the amount to collect, not a quote (`package_in_view.amount_due`).
"""

from __future__ import annotations

from collections.abc import Callable

from chatbot.dialog import delivery_times, points, quote
from chatbot.dialog.turn import State, Turn

FRAGMENT_WORDS = 6
OWN_INTENT_CONFIDENCE = 0.6  # below this the router's intent is only what a place or a day suggests


def _place(t: Turn) -> bool:
    return bool(t.point or t.place or quote.destination_in(t))


SLOTS: dict[str, tuple[Callable[[Turn], bool], ...]] = {
    "pricing": (_place, lambda t: t.weight is not None or (t.cue("follow_up") and t.bare_number() is not None)),
    "delivery_time": (_place,),
    "hours": (_place, lambda t: t.day is not None),
    "locations": (_place,),
}
CONTINUE: dict[str, Callable[[Turn], State]] = {
    "pricing": lambda t: quote.pricing(t),
    "delivery_time": delivery_times.delivery,
    "hours": points.hours,
    "locations": points.locations,
}


def continued_topic(t: Turn) -> str | None:
    """The topic a fragment continues (rule 1), or None when the message stands on its own (rules 3 and 4)."""
    last = t.ds.last_intent
    if last not in SLOTS or t.code or t.route.answer is not None:
        return None
    if t.cue("where_is") and last != "locations":  # rule 4
        return None
    if not t.cue("follow_up") and len(t.folded.split()) > FRAGMENT_WORDS:
        return None
    own_intent = t.intent not in (last, "out_of_scope", "menu") and t.route.confidence >= OWN_INTENT_CONFIDENCE
    if own_intent:  # rule 3
        return None
    return last if any(filled(t) for filled in SLOTS[last]) else None


def carry_over(t: Turn) -> State | None:
    """Answer a fragment within the topic it continues; None when it does not continue one."""
    topic = continued_topic(t)
    return CONTINUE[topic](t) if topic is not None else None
