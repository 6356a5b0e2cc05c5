"""Service points: opening hours, addresses and the map pin, of a named point, the point being discussed, or all."""

from __future__ import annotations

from channels.outbound import Choice, ChoiceList
from chatbot.dialog import package_in_view
from chatbot.dialog.turn import State, Turn, wording
from services import business, catalog


def hours(t: Turn) -> State:
    """Opening hours: of the named point, of the package's point ("¿a qué hora puedo recogerlo?"), else a list."""
    t.topic = "hours"
    if not t.point and t.ds.packages and t.cue("arrival") and not t.cue("pickup"):  # "¿y a qué hora llega?"
        return package_in_view.eta(t, t.ds.packages[-1:])
    if not t.point and not t.place and t.cue("pickup"):  # about the package in view, or the writer's own waiting one
        state = package_in_view.pickup(t) if t.ds.packages else package_in_view.pickup_own(t)
        if state is not None:
            return state
    if not t.point and t.place:  # a place without a point of its own: the nearest one, with its hours
        return place_for(t, t.place)
    point = t.point or (t.ds.point if not t.cue("all_points") else None)
    if point:
        return hours_for(t, point, t.day)
    if t.cue("right_now") and t.day in (None, "today"):  # "¿están abiertos ahorita?": every point, now
        t.replies += business.open_now_answer(t.ctx)
        t.solved("hours", point=t.line("summary.all_points"))
    else:
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
    mine = not t.point and not t.place and not t.ds.packages and t.cue("pickup")
    if mine and (state := package_in_view.pickup_own(t)):
        return state  # "¿dónde lo recojo?" from the recipient's registered phone
    if not t.point and t.place:  # "¿tienen sucursal en Usulután?": honest, with the nearest point
        return place_for(t, t.place)
    if not t.point and (options := t.route.entities.get("place_options")):  # "San Isidro": which department?
        t.replies += business.place_options_answer([str(o) for o in options])
        return State.IDLE
    point = t.point or (t.ds.point if not t.cue("all_points") else None)
    if point and t.cue("map"):  # "mándame la ubicación": the pin itself (it carries the address)
        return pin(t, point)
    if point:
        return location_for(t, point)
    t.replies += business.location_answer(t.ctx, None)
    t.ds.purpose = "locations"
    return State.AWAITING_POINT


def place_for(t: Turn, place_key: str) -> State:
    """A place of El Salvador: its own point, its points to pick from, or the nearest point (distance, hours)."""
    t.replies += business.place_answer(t.ctx, place_key)
    name = t.place_name or place_key
    t.solved("location", point=name)
    t.topic = "locations"
    return State.IDLE


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
