"""The package in view: the session's packages (codes only, statuses read again): when they arrive, where to
pick them up."""

from __future__ import annotations

from chatbot.dialog.turn import State, Turn
from chatbot.services import tracking as tracking_service
from core_api_client import Package


def session_packages(t: Turn, codes: list[str]) -> list[Package]:
    """The session's packages read again from the core (statuses are never remembered, only codes)."""
    found = []
    for code in codes[-5:]:
        package = t.ctx.core.track(code)
        if package is not None:
            found.append(package)
    return found


def eta(t: Turn, codes: list[str]) -> State:
    t.replies += tracking_service.eta_answer(t.ctx, session_packages(t, codes), t.customer.phone)
    t.solved("eta")
    t.topic = "track_package"
    return State.IDLE


def pickup(t: Turn) -> State:
    """"¿A qué hora puedo recogerlo?" about the package just looked at: its destination point's hours."""
    packages = session_packages(t, t.ds.packages[-1:])
    if not packages:
        t.say("pickup_which")
        return State.AWAITING_CODE
    t.replies += tracking_service.pickup_answer(t.ctx, packages[0], t.customer.phone)
    t.ds.point = packages[0].destination_point
    t.solved("pickup")
    t.topic = "hours"
    return State.IDLE
