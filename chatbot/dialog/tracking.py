"""Tracking: a package by its code, or the writer's own packages without one.

A code tracks (`services.tracking`); without one, only the writer's own
number lists packages, a name with the point at most confirms one waits there,
and a typed phone is never a key (`services.lookup`, design 9.1). No code
a stranger did not type is ever kept in the session, so nothing can be "opened" later.
"""

from __future__ import annotations

from channels.outbound import Buttons, Choice, ChoiceList
from chatbot.dialog import package_in_view, points
from chatbot.dialog.turn import State, Turn, wording
from chatbot.entities import CODE_LENGTHS, code_fragment, extract_bare_code, join_code
from chatbot.guard import phone_in, safe_name
from core_api_client import CoreError, Package
from services import business, catalog, lookup, selection
from services import tracking as tracking_service

BUTTONS_MAX = 3  # WhatsApp reply buttons; more choices go in a list
SEVERAL_MAX = 3  # codes tracked from one message
FRAGMENT_TTL_S = 300  # the start of a code waits this long for the rest (the next message only)


def ask_code(t: Turn, *, other: bool = False, purpose: str | None = None) -> State:
    t.say("ask_other_code" if other else "ask_code")
    t.ds.purpose = purpose
    t.topic = "track_package"
    return State.AWAITING_CODE


def track_request(t: Turn) -> State:
    """"Quiero rastrear…": a code tracks; "los dos" / "¿cuándo llega?" use the session's packages."""
    if t.code:
        return track(t, t.code)
    if (options := t.route.entities.get("code_options")):
        return confirm_code(t, [str(c) for c in options])
    if (state := code_attempt(t)) is not None:
        return state
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
    named_place = t.point or t.place
    if t.place and not t.point and t.cue("pickup"):  # "vivo en Gotera, ¿dónde lo voy a traer?"
        return points.place_for(t, t.place)
    if not t.ds.packages and not named_place and t.cue("arrival", "plural", "pickup") and (own := _own_listed(t)):
        return show_packages(t, own)  # "¿ya llegó mi encargo?" from a registered phone: no code needed
    return ask_code(t)


def code_attempt(t: Turn) -> State | None:
    """A token typed as a code that is not a valid one (the router's `code_attempt`: "ABC123", "SV2026…" short
    of digits, "12345678"): the not-found answer, which shows the format, never "no entendí". The 13 or 14
    digits of a code typed without its "SV" are looked up as that code. None when there is no attempt."""
    attempt = str(t.route.entities.get("code_attempt") or "")
    if not attempt:
        return None
    if (code := extract_bare_code(attempt)) is not None:
        return track(t, code)
    fragment = code_fragment(t.text)  # "SV2026 0106": the rest may come in the next message
    t.replies += tracking_service.not_found_replies(attempt, partial=fragment is not None)  # the core is not asked
    t.ds.not_found_code = attempt
    t.topic = "track_package"
    if fragment is not None:
        keep_fragment(t, fragment)
    return State.AWAITING_NOT_FOUND_CHOICE


def keep_fragment(t: Turn, fragment: str) -> None:
    """Keep the start of a code (or a 13-digit code not found) for the next message (`continued_code`)."""
    t.ds.code_fragment, t.ds.code_fragment_at = fragment, int(t.ts)


def continued_code(t: Turn) -> State | None:
    """The rest of a code broken over two messages ("SV2026 0106", then "0112 34"): joined and tracked.

    The start is kept for the next message only and for FRAGMENT_TTL_S; the next message must be digits only
    (look-alike letters read as in `chatbot.entities.read_codes`) and not pick an offered option ("1").
    Still short, the longer start is kept again; joined to a 13-digit code that was not found, the 14-digit
    code is a second reading of what was typed, so it is asked about (`confirm_code`), not tracked at once.
    None when the message does not continue a code."""
    fragment, at = t.ds.code_fragment, t.ds.code_fragment_at
    t.ds.code_fragment, t.ds.code_fragment_at = None, 0
    if not fragment or t.ts - at > FRAGMENT_TTL_S or t.choice or t.code:
        return None
    joined = join_code(fragment, t.text)
    if joined is None:
        return None
    t.topic = "track_package"
    if len(joined) < len("SV") + min(CODE_LENGTHS):  # still short: the format, and wait for more
        t.replies += tracking_service.not_found_replies(joined, partial=True)
        t.ds.not_found_code = joined
        keep_fragment(t, joined)
        return State.AWAITING_NOT_FOUND_CHOICE
    if len(fragment) - len("SV") in CODE_LENGTHS:
        return confirm_code(t, [joined])
    return track(t, joined)


def confirm_code(t: Turn, candidates: list[str]) -> State:
    """A code that reads more than one way ("SV2026010601234S"), or a joined code that may be two: never
    guessed. The readings the core knows are asked about ("¿Tu código es SV…?" Sí / No, or one button per
    code); when it knows none, the first reading gets the not-found answer."""
    t.topic = "track_package"
    known = [code for code in candidates if tracking_service.exists(t.ctx, code)][:BUTTONS_MAX - 1]
    if not known:
        return track(t, candidates[0])
    w = wording()["code_confirm"]
    if len(known) == 1:
        t.buttons(str(w["one"]).format(code=known[0]), (f"pkg:{known[0]}", w["yes"]), ("code_no", w["no"]))
    else:
        t.buttons(w["several"], *((f"pkg:{code}", code) for code in known), ("code_no", w["none"]))
    return State.AWAITING_CODE_CONFIRM


def code_confirmed(t: Turn) -> State | None:
    """A yes/no typed to "¿Tu código es SV…?" (a tapped button is an offered option): Sí tracks, No asks
    the code again. None when the message is neither."""
    offered = [o.partition(":")[2] for o in t.ds.options if o.startswith("pkg:")]
    if t.route.answer == "yes" and len(offered) == 1:
        return track(t, offered[0])
    if t.route.answer == "no":
        return code_rejected(t)
    return None


def code_rejected(t: Turn) -> State:
    """"No, ese no es": the code is asked for again."""
    t.say("code_confirm.retype")
    t.topic = "track_package"
    return State.AWAITING_CODE


def _own_listed(t: Turn) -> lookup.OwnPackages | None:
    """The writer's own packages by the number they write from, open ones first; None when there are none."""
    if not t.customer.phone:
        return None
    own = lookup.own_packages(t.ctx, t.customer.phone)
    if own.outcome != "listed":
        return None
    open_ = [p for p in own.packages if tracking_service.is_open(p)]
    if len(open_) == 1:
        return lookup.OwnPackages(open_, own.replies, own.outcome)
    return own


def track(t: Turn, code: str) -> State:
    codes = [str(c) for c in t.route.entities.get("tracking_codes") or ()]
    if len(codes) > 1 and code == codes[0]:
        return track_several(t, codes[:SEVERAL_MAX])
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
        keep_fragment(t, code)  # a digit may follow on its own ("SV2026010601234", then "5")
        return State.AWAITING_NOT_FOUND_CHOICE
    return State.AWAITING_CODE  # the core could not answer: the same code may be sent again


def track_several(t: Turn, codes: list[str]) -> State:
    """Several codes in one message: each package's answer in turn (codes not found say so each)."""
    t.topic = "track_package"
    for code in codes:
        answer = tracking_service.track(t.ctx, code, t.customer.phone)
        t.replies += answer.replies
        if answer.package is not None:
            t.ds.remember_package(answer.package.tracking_code)
            t.solved("track", code=answer.package.tracking_code)
    t.ds.purpose, t.ds.not_found_code = None, None
    return State.IDLE


def search(t: Turn) -> State:
    """Packages without a code: only the writer's own number is a key (`services.lookup`).

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
    """The customer typed a name to search by (the router's `name` entity, read only when the bot waits for
    one): ask the destination point (or search at once if named). None when the message gives no name."""
    name = safe_name(str(t.route.entities.get("name") or ""))
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


def pick_described(t: Turn) -> State | None:
    """"El de Pedro Ramírez", "el que va para Santa Ana", "el que ya llegó": a package of the list just shown,
    picked by what the customer remembers (`services.selection`); an ambiguous pick is asked with
    buttons; None when the message describes none of them."""
    if not t.ds.listed or not t.customer.phone:
        return None
    listed = set(t.ds.listed)
    own = [p for p in lookup.own_packages(t.ctx, t.customer.phone).packages if p.tracking_code in listed]
    picked = selection.pick(own, t.text, t.cues, t.customer.phone, _point_names(t))
    if len(picked) == 1:
        return track(t, picked[0].tracking_code)
    if not picked:
        return None
    t.topic = "find_packages"
    t.replies.append(_which_of(t, picked))
    t.ds.listed = [p.tracking_code for p in picked]
    return State.AWAITING_PACKAGE_CHOICE


def _point_names(t: Turn) -> dict[str, str]:
    try:
        return {p.id: p.name for p in catalog.points(t.ctx)}
    except CoreError:
        return {}


def _which_of(t: Turn, packages: list[Package]) -> Buttons | ChoiceList:
    """"¿Cuál de estos?": the packages that fit the description, as buttons (or a list when more than three)."""
    w = wording()["pick_described"]
    names = _point_names(t)
    lines, choices = [], []
    for package in packages[:tracking_service.CHOICES_MAX]:
        sender, _recipient = tracking_service.roles(package, t.customer.phone)
        other = package.recipient.name if sender else package.sender.name
        city = package.destination_city or names.get(package.destination_point, package.destination_point)
        lines.append(str(w["line"]).format(code=package.tracking_code, other=other, city=city))
        title = f"…{package.tracking_code[-6:]} {other}"
        choices.append(Choice(f"pkg:{package.tracking_code}", title, business.fit(city, 72)))
    body = "\n".join([str(w["body"]).format(count=len(packages)), "", *lines])
    if len(choices) <= BUTTONS_MAX:
        return Buttons(body=body, buttons=tuple(Choice(c.id, business.fit(c.title, 20)) for c in choices))
    rows = tuple(Choice(c.id, business.fit(c.title, 24), c.description) for c in choices)
    return ChoiceList(body=body, button_label=w["button"], rows=rows)
