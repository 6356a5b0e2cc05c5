"""A shipping quote: destination and weight are its slots; what is missing is asked, a follow-up re-quotes."""

from __future__ import annotations

from chatbot.dialog.turn import State, Turn
from chatbot.services import business, catalog


def pricing(t: Turn, destination: str | None = None) -> State:
    """A quote; what is missing (destination, weight) is asked, and "¿y para 20 libras?" re-quotes."""
    t.topic = "pricing"
    last = t.ds.pricing
    follow_up = t.ds.last_intent == "pricing" or t.weight is not None
    dest = destination or t.point or destination_in(t) or (last.get("destination") if follow_up else None)
    weight = t.weight
    if weight is None and t.ds.state == State.AWAITING_WEIGHT:
        weight = t.bare_number()
    if weight is None and (destination or t.point) and t.ds.last_intent == "pricing":
        weight = last.get("weight")  # "¿y a San Miguel?": the same package to another place
    answer = business.pricing_answer(t.ctx, dest, weight)
    t.replies += answer.replies
    t.ds.pricing = {"destination": dest, "weight": weight}
    if answer.missing == "destination":
        t.ds.purpose = "pricing"
        return State.AWAITING_POINT
    if answer.missing == "weight":
        return State.AWAITING_WEIGHT
    t.solved("pricing", destination=_place_name(t, dest))
    return State.IDLE


def destination_in(t: Turn) -> str | None:
    """A place the company serves named after "a", "para", "hacia" or "hasta" ("enviar a Usulután")."""
    words = t.folded.split()
    for index, word in enumerate(words):
        if word in ("a", "al", "para", "hacia", "hasta"):
            for size in (3, 2, 1):
                candidate = " ".join(words[index + 1: index + 1 + size])
                if candidate and catalog.resolve_place(t.ctx, candidate) is not None:
                    return candidate
    return None


def _place_name(t: Turn, place: str | None) -> str:
    point = catalog.point_by_id(t.ctx, place) if place else None
    return point.city if point else (place or "")
