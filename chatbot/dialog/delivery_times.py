"""Delivery times: of the session's packages when asked about them, else the published times to a place."""

from __future__ import annotations

from chatbot.dialog import package_in_view, quote
from chatbot.dialog.turn import State, Turn
from services import business


def delivery(t: Turn) -> State:
    """How long it takes: the session's packages when asked about them, else the published times."""
    t.topic = "delivery_time"
    if not t.point and t.ds.packages and (t.cue("plural") or t.cue("arrival")):
        plural = t.cue("plural")
        return package_in_view.eta(t, t.ds.packages if plural and len(t.ds.packages) > 1 else t.ds.packages[-1:])
    place = t.point or t.place_name or quote.destination_in(t) or t.ds.pricing.get("destination")
    t.replies += business.delivery_time_answer(t.ctx, place)
    t.ds.pricing = {**t.ds.pricing, "destination": place} if place else t.ds.pricing
    t.solved("delivery")
    return State.IDLE
