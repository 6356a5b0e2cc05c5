"""A shipping quote: origin, destination and weight are its slots (chatbot/dialog/frames.py has the rules that
carry them from one message to the next); what is missing is asked, a follow-up re-quotes."""

from __future__ import annotations

from chatbot.dialog.turn import State, Turn
from chatbot.entities import lexicon
from services import business, catalog


def pricing(t: Turn, destination: str | None = None) -> State:
    """A quote; what is missing (destination, weight) is asked, and "¿y para 20 libras?" re-quotes."""
    t.topic = "pricing"
    continuing = t.ds.last_intent == "pricing" or t.ds.state in (State.AWAITING_WEIGHT, State.AWAITING_POINT)
    last = t.ds.pricing if continuing else {}
    named = destination or t.point or t.place_name or destination_in(t)
    origin = origin_in(t)
    if origin and named and not t.within and _same_place(t, origin, named):
        named = None  # "de Santa Ana": only the origin was named
    if t.within and named:
        origin = named  # "dentro de San Salvador": both ends there (frames rule 2)
    dest = named or last.get("destination")
    origin = origin or (None if t.within else last.get("origin"))
    weight = t.weight
    if weight is None and (t.ds.state == State.AWAITING_WEIGHT or (continuing and t.cue("follow_up"))):
        weight = t.bare_number()  # "8", "¿y si fueran 35?"
    if weight is None:
        weight = last.get("weight")  # "¿y a San Miguel?": the same package to another place
    answer = business.pricing_answer(t.ctx, dest, weight, origin)
    t.replies += answer.replies
    t.ds.pricing = {"destination": dest, "weight": weight, "origin": origin}
    if answer.missing == "destination":
        t.ds.purpose = "pricing"
        return State.AWAITING_POINT
    if answer.missing == "weight":
        return State.AWAITING_WEIGHT
    t.solved("pricing", destination=_place_name(t, dest))
    return State.IDLE


def _after(t: Turn, markers: list[str]) -> str | None:
    """A place the company can price, named right after one of `markers` (the lexicon's words for "to"/"from")."""
    words = t.folded.split()
    for index, word in enumerate(words):
        if word in markers:
            for size in (3, 2, 1):
                candidate = " ".join(words[index + 1: index + 1 + size])
                if candidate and catalog.resolve_place(t.ctx, candidate) is not None:
                    return candidate
    return None


def destination_in(t: Turn) -> str | None:
    """A place named after "a", "para", "hacia", "hasta"… ("enviar a Usulután")."""
    return _after(t, lexicon()["destination_markers"])


def origin_in(t: Turn) -> str | None:
    """A place named after "de", "desde"… ("de Santa Ana a La Unión")."""
    return _after(t, lexicon()["origin_markers"])


def _same_place(t: Turn, one: str, other: str) -> bool:
    first, second = catalog.resolve_place(t.ctx, one), catalog.resolve_place(t.ctx, other)
    return first is not None and second is not None and first.city == second.city


def _place_name(t: Turn, place: str | None) -> str:
    point = catalog.point_by_id(t.ctx, place) if place else None
    return point.city if point else (place or "")
