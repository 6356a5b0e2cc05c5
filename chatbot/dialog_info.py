"""Dialog actions that answer with information: packages (tracking, search, pickup, arrival) and the business.

Each action appends the services' replies to the turn, updates what the
session remembers (packages, the point being discussed, the last quote) and
returns the dialog's next state. Statuses, prices, hours and policies come
from the services only; the services raise `CoreError` when the core cannot
answer, and the dialog turns that into the "try again later" reply.
Searching without a code is `chatbot.services.lookup`'s decision (design 9.1):
only the writer's own number lists packages; a name with the point at most
confirms one waits there; a typed phone is never a key. No code a stranger
did not type is ever kept in the session, so nothing can be "opened" later.
"""

from __future__ import annotations

from channels.outbound import Choice, ChoiceList
from chatbot.dialog_turn import State, Turn, wording
from chatbot.guard import phone_in, safe_name
from chatbot.services import business, catalog, faq, lookup, tracking
from core_api_client import Package

PLURAL = (" los dos ", " ambos ", " los 2 ", " todos ", " mis paquetes ", " los paquetes ", " cada uno ",
          " los tres ", " los 3 ", " mis encargos ", " los encargos ")
PICKUP = (" recog", " retir", " ir a traer", " pasar a traer", " pasar por ", " lo paso ", " ir por ")
ARRIVAL = (" cuando lleg", " ya lleg", " a que hora lleg", " cuando va a llegar", " cuando van a llegar",
           " cuando estara", " cuando estaran", " para cuando", " lleguen ", " llegan ")
OTHER = (" otro ", " otra ", " el otro", " la otra")
OTHER_PACKAGE = (" el otro ", " la otra ", " otro paquete", " otro encargo", " los otros ", " otra caja")
ALL_POINTS = (" puntos ", " sucursales ", " agencias ", " oficinas ", " ubicados ", " todos los ", " cuales ")
MAP = (" ubicacion", " mapa", " pin ", " maps", " como llego", " gps", " waze")


# -- packages -------------------------------------------------------------------------------------


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
    if t.ds.packages and t.mentions(*PLURAL):
        return eta(t, t.ds.packages if len(t.ds.packages) > 1 else t.ds.listed or t.ds.packages)
    if t.ds.packages and t.mentions(*PICKUP):
        return pickup(t)
    if t.ds.packages and t.mentions(*OTHER):
        return ask_code(t, other=True)
    if t.ds.packages and t.mentions(*ARRIVAL):
        return eta(t, t.ds.packages[-1:])
    return ask_code(t)


def track(t: Turn, code: str) -> State:
    answer = tracking.track(t.ctx, code, t.customer.phone)
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


def session_packages(t: Turn, codes: list[str]) -> list[Package]:
    """The session's packages read again from the core (statuses are never remembered, only codes)."""
    found = []
    for code in codes[-5:]:
        package = t.ctx.core.track(code)
        if package is not None:
            found.append(package)
    return found


def eta(t: Turn, codes: list[str]) -> State:
    t.replies += tracking.eta_answer(t.ctx, session_packages(t, codes), t.customer.phone)
    t.solved("eta")
    t.topic = "track_package"
    return State.IDLE


def pickup(t: Turn) -> State:
    """"¿A qué hora puedo recogerlo?" about the package just looked at: its destination point's hours."""
    packages = session_packages(t, t.ds.packages[-1:])
    if not packages:
        t.say("pickup_which")
        return State.AWAITING_CODE
    t.replies += tracking.pickup_answer(t.ctx, packages[0], t.customer.phone)
    t.ds.point = packages[0].destination_point
    t.solved("pickup")
    t.topic = "hours"
    return State.IDLE


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
    t.replies.append(point_list(t, body))
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


def point_list(t: Turn, body: str) -> ChoiceList:
    """The service points as a list (rows `point:<id>`), numbered in the text too for typed answers."""
    points = catalog.points(t.ctx)[:10]
    lines = [f"{n}. {p.name}" for n, p in enumerate(points, 1)]
    rows = [Choice(f"point:{p.id}", _row_title(p.name), business.fit(p.address, 72)) for p in points]
    return ChoiceList(body="\n".join([body, "", *lines]), button_label=wording()["search_point_button"],
                      rows=tuple(rows))


def _row_title(name: str) -> str:
    """A point's name as a list row title (24 characters): "San Salvador - Centro" rather than cut off."""
    return business.fit(name if len(name) <= 24 else name.replace("Punto ", ""), 24)


# -- the business ---------------------------------------------------------------------------------


def hours(t: Turn) -> State:
    """Opening hours: of the named point, of the package's point ("¿a qué hora puedo recogerlo?"), else a list."""
    t.topic = "hours"
    if not t.point and t.ds.packages and t.mentions(*PICKUP):
        return pickup(t)
    point = t.point or (t.ds.point if not t.mentions(*ALL_POINTS) else None)
    if point:
        return hours_for(t, point, t.day)
    t.replies += business.hours_answer(t.ctx, None, t.day)
    t.ds.purpose, t.ds.day = "hours", t.day
    return State.AWAITING_POINT


def hours_for(t: Turn, point_id: str, day: str | None) -> State:
    t.replies += business.hours_answer(t.ctx, point_id, day)
    t.ds.point, t.ds.purpose, t.ds.day = point_id, None, None
    point = catalog.point_by_id(t.ctx, point_id)
    t.solved("hours", point=point.name if point else point_id)
    t.topic = "hours"
    return State.IDLE


def locations(t: Turn) -> State:
    """Addresses: the named point, the point being discussed ("dame la dirección"), else all points."""
    t.topic = "locations"
    point = t.point or (t.ds.point if not t.mentions(*ALL_POINTS) else None)
    if point and t.mentions(*MAP):  # "mándame la ubicación": the pin itself (it carries the address)
        return pin(t, point)
    if point:
        return location_for(t, point)
    t.replies += business.location_answer(t.ctx, None)
    t.ds.purpose = "locations"
    return State.AWAITING_POINT


def location_for(t: Turn, point_id: str) -> State:
    t.replies += business.location_answer(t.ctx, point_id)
    t.ds.point, t.ds.purpose = point_id, None
    point = catalog.point_by_id(t.ctx, point_id)
    t.solved("location", point=point.name if point else point_id)
    t.topic = "locations"
    return State.IDLE


def pin(t: Turn, point_id: str) -> State:
    t.replies.append(business.location_pin(t.ctx, point_id))
    t.say("anything_else")
    t.ds.point, t.ds.pin_point = point_id, None
    t.solved("pin")
    t.topic = "locations"
    return State.IDLE


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


def delivery(t: Turn) -> State:
    """How long it takes: the session's packages when asked about them, else the published times."""
    t.topic = "delivery_time"
    if not t.point and t.ds.packages and (t.mentions(*PLURAL) or t.mentions(*ARRIVAL)):
        plural = t.mentions(*PLURAL)
        return eta(t, t.ds.packages if plural and len(t.ds.packages) > 1 else t.ds.packages[-1:])
    t.replies += business.delivery_time_answer(t.ctx, t.point or destination_in(t) or t.ds.pricing.get("destination"))
    t.solved("delivery")
    return State.IDLE


def policy(t: Turn, topic: str) -> State:
    if topic == "delivery":
        return delivery(t)
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
