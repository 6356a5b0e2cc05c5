"""Tracking: a package by its code, or the writer's own packages without one.

A code tracks (`chatbot.services.tracking`); without one, only the writer's own
number lists packages, a name with the point at most confirms one waits there,
and a typed phone is never a key (`chatbot.services.lookup`, design 9.1). No code
a stranger did not type is ever kept in the session, so nothing can be "opened" later.
"""

from __future__ import annotations

from chatbot.dialog import package_in_view, points
from chatbot.dialog.turn import State, Turn, wording
from chatbot.guard import phone_in, safe_name
from chatbot.services import lookup
from chatbot.services import tracking as tracking_service


def ask_code(t: Turn, *, other: bool = False, purpose: str | None = None) -> State:
    t.say("ask_other_code" if other else "ask_code")
    t.ds.purpose = purpose
    t.topic = "track_package"
    return State.AWAITING_CODE


def track_request(t: Turn) -> State:
    """"Quiero rastrear…": a code tracks; "los dos" / "¿cuándo llega?" use the session's packages."""
    if t.code:
        return track(t, t.code)
    if _typed_other_phone(t):  # "rastrea los del 7000-0002": never a key
        return typed_phone(t)
    if t.ds.packages and t.cue("plural"):
        return package_in_view.eta(t, t.ds.packages if len(t.ds.packages) > 1 else t.ds.listed or t.ds.packages)
    if t.ds.packages and t.cue("pickup"):
        return package_in_view.pickup(t)
    if t.ds.packages and t.cue("other"):
        return ask_code(t, other=True)
    if t.ds.packages and t.cue("arrival"):
        return package_in_view.eta(t, t.ds.packages[-1:])
    return ask_code(t)


def track(t: Turn, code: str) -> State:
    answer = tracking_service.track(t.ctx, code, t.customer.phone)
    t.replies += answer.replies
    t.topic = "track_package"
    if answer.outcome == "found" and answer.package is not None:
        package = answer.package
        t.ds.remember_package(package.tracking_code)
        t.ds.point = package.destination_point
        t.ds.not_found_code = None
        t.solved("track", code=package.tracking_code)
        if t.ds.purpose == "complaint":
            w = wording()["complaint_check"]
            t.buttons(w["body"], ("cmp_ok", w["ok"]), ("cmp_human", w["human"]))
            return State.AWAITING_COMPLAINT_CHECK
        t.ds.purpose = None
        return State.IDLE
    if answer.outcome == "not_found":
        t.ds.not_found_code = code
        return State.AWAITING_NOT_FOUND_CHOICE
    return State.AWAITING_CODE  # the core could not answer: the same code may be sent again


def search(t: Turn) -> State:
    """Packages without a code: only the writer's own number is a key (`chatbot.services.lookup`).

    A phone typed in the chat gets the honest answer instead; a number with no packages may give the
    recipient's full name and point (design 2.1.2); a username-only writer is told to get the code.
    """
    t.topic = "find_packages"
    if _typed_other_phone(t):
        return typed_phone(t)
    own = lookup.own_packages(t.ctx, t.customer.phone)
    if own.outcome == "listed":
        return show_packages(t, own)
    t.replies += own.replies
    if own.outcome == "no_phone":
        return _no_code_choices(t)
    t.ds.search = {}
    t.say("ask_search")
    return State.AWAITING_NAME


def show_packages(t: Turn, own: lookup.OwnPackages) -> State:
    """The writer's own packages: the one package tracked at once, several as a list to pick from."""
    if len(own.packages) == 1:
        return track(t, own.packages[0].tracking_code)
    t.replies += own.replies
    t.ds.listed = own.codes
    t.solved("search")
    return State.AWAITING_PACKAGE_CHOICE


def _typed_other_phone(t: Turn) -> bool:
    typed = phone_in(t.text)
    return typed is not None and not lookup.is_writers_phone(typed, t.customer.phone)


def typed_phone(t: Turn) -> State:
    """A phone number typed as a key to packages: never searched; how to get the code instead."""
    t.topic = "find_packages"
    t.replies += lookup.typed_phone_replies(t.customer.phone)
    return _no_code_choices(t)


def _no_code_choices(t: Turn) -> State:
    """After an answer without packages: the buttons (code / another name / a person) are awaited."""
    t.ds.not_found_code, t.ds.listed = None, []
    return State.AWAITING_NOT_FOUND_CHOICE


def name_given(t: Turn) -> State | None:
    """The customer typed a name to search by: ask the destination point (or search at once if named)."""
    name = safe_name(t.text.split(",")[0])
    if name is None:
        return None
    t.topic = "find_packages"
    refused = lookup.check_name(t.customer.phone, name)
    if refused is not None:
        t.replies += refused.replies
        if refused.outcome == "needs_full_name":
            t.ds.search = {}
            return State.AWAITING_NAME
        return _no_code_choices(t)
    t.ds.search = {"name": name}
    if t.point:
        return name_search(t, t.point)
    body = t.line("ask_search_point", name=name.split(" ")[0])
    t.replies.append(points.point_list(t, body))
    t.ds.purpose = "search"
    return State.AWAITING_POINT


def name_search(t: Turn, point_id: str | None) -> State:
    """Design 2.1.2 within 9.1: at most "there is a package for that name at <point>", never its code."""
    name = str(t.ds.search.get("name") or "")
    answer = lookup.confirm_by_name(t.ctx, t.customer.phone, name, point_id)
    t.replies += answer.replies
    t.topic = "find_packages"
    t.ds.purpose = None
    if answer.outcome == "needs_full_name":
        t.ds.search = {}
        return State.AWAITING_NAME
    if answer.outcome == "exists":
        t.solved("search")
    return _no_code_choices(t)
