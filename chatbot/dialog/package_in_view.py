"""The package in view: the packages the customer is talking about, when they arrive, where to pick them up and
what to pay for them.

The package in view is the last one looked at, or the list just shown; when the
session has none, the writer's own number may say which (roles from the phone:
"¿ya llegó?", "¿cuánto pago?" and "¿dónde lo recojo?" from a registered sender or
recipient need no code). Only codes are remembered; statuses are read again.
"""

from __future__ import annotations

from chatbot.dialog.turn import State, Turn
from core_api_client import Package
from services import lookup
from services import tracking as tracking_service

OWN_IN_VIEW_MAX = 5


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


def pickup(t: Turn, packages: list[Package] | None = None) -> State:
    """"¿A qué hora puedo recogerlo?" about the package just looked at (or `packages`): its point's hours."""
    packages = session_packages(t, t.ds.packages[-1:]) if packages is None else packages
    if not packages:
        t.say("pickup_which")
        return State.AWAITING_CODE
    t.replies += tracking_service.pickup_answer(t.ctx, packages[0], t.customer.phone)
    t.ds.remember_package(packages[0].tracking_code)  # the package in view now
    t.ds.point = packages[0].destination_point
    t.solved("pickup")
    t.topic = "hours"
    return State.IDLE


def own_open(t: Turn) -> list[Package]:
    """The writer's own packages still on their way or waiting, found by the number they write from (design 9.1.3)
    and remembered as the packages in view; [] for strangers and writers without a phone."""
    if not t.customer.phone:
        return []
    own = lookup.own_packages(t.ctx, t.customer.phone)
    found = [p for p in own.packages if tracking_service.is_open(p)][:OWN_IN_VIEW_MAX]
    for package in reversed(found):
        t.ds.remember_package(package.tracking_code)
    return found


def in_view(t: Turn) -> list[Package]:
    """The packages a question without a code is about: the list just shown, else the last package looked at,
    else the writer's own open packages."""
    if t.ds.listed and t.ds.options and all(o.startswith("pkg:") for o in t.ds.options):
        return session_packages(t, t.ds.listed)
    if t.ds.packages:
        return session_packages(t, t.ds.packages[-1:])
    return own_open(t)


def amount_due(t: Turn) -> State | None:
    """"¿Cuánto tengo que pagar?" about the packages in view (design 2.1.2): the amount to collect for their
    recipient; for anyone else with a package in view, who pays it (its sender) or that only the registered
    phone sees it (a stranger). None without a package in view that the writer receives, so the question is
    a shipping quote after all."""
    looked_at = bool(t.ds.packages or t.ds.listed)
    packages = in_view(t)
    if packages and not any(tracking_service.roles(p, t.customer.phone)[1] for p in packages) and t.ds.packages:
        own = own_open(t)  # the package looked at is not theirs to receive: their own received ones may be meant
        packages = own if any(tracking_service.roles(p, t.customer.phone)[1] for p in own) else packages
    replies = tracking_service.amount_due_answer(t.ctx, packages, t.customer.phone)
    if not replies and looked_at and packages:
        replies = tracking_service.amount_due_other_answer(t.ctx, packages, t.customer.phone)
    if not replies:
        return None
    t.replies += replies
    t.solved("amount_due")
    t.topic = "track_package"
    return State.IDLE


def pickup_own(t: Turn) -> State | None:
    """"¿Dónde lo recojo?" without a package in view: the writer's own package waiting for them, if any."""
    waiting = _waiting(own_open(t))
    return pickup(t, waiting) if waiting else None


def _waiting(packages: list[Package]) -> list[Package]:
    """The one package ready to pick up first, else the first on its way."""
    ready = [p for p in packages if p.status == tracking_service.ARRIVED]
    return (ready or packages)[:1]
