"""Business information: opening hours, locations and map pins, shipping prices and delivery times.

Every figure comes from the logistics core (through the catalog cache):
hours and addresses from its service points, prices and delivery times from
its price table. The functions only read (the catalog caches); a core that
cannot answer raises `CoreError` (`CoreUnavailable` when down) to the caller,
which shows `core_unavailable_replies()`. Reply ids the dialog receives back:
`point:<id>` (a point picked from a list), `pin:<id>` / `pin_no` (map pin offer), `place:<key>` (one
of the places an ambiguous name could be).

Places of El Salvador (services/geography.py; keys such as "dep:usulutan", "dis:apopa"):
  place_answer(ctx, place_key) -> list[OutboundMessage]
      "¿tienen sucursal en Usulután?": the place's own point, or an honest "no point there" with the
      nearest point, its distance, address and hours, and the map-pin offer.
  place_options_answer(keys) -> list[OutboundMessage]
      "¿Cuál San Isidro?" with one button per place (`place:<key>`).
  pricing_answer(ctx, destination, weight, origin) and delivery_time_answer(ctx, destination) take
      any place text or key ("Apopa", "Gotera", "dis:apopa", "dentro de San Salvador").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from channels.outbound import Buttons, Choice, ChoiceList, Location, OutboundMessage, Text
from core_api_client import CoreBadRequest, ServicePoint
from services import (
    ServiceContext,
    at_clock,
    catalog,
    clock,
    day_name,
    geography,
    money,
    relative_day,
    wording,
)
from services.normalize import fold_words

# Opening hours as the core gives them: day group ("mon-fri", "sat", "sun") -> (opens, closes) or None.
HoursSpec = Mapping[str, Sequence[str] | None]
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENGLISH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_ORIGIN = "San Salvador"
ROW_TITLE_MAX, ROW_DESCRIPTION_MAX, ROWS_MAX = 24, 72, 10
BUTTON_TITLE_MAX, BUTTONS_MAX = 20, 3
_MONEY_RANGE = re.compile(r"\$\s?\d+(?:\.\d+)?(?:\s*-\s*\$?\d+(?:\.\d+)?)?")


# -- hours ----------------------------------------------------------------------------------------

def _group_days(key: str) -> list[int]:
    first, _, last = key.strip().lower().partition("-")
    if first not in DAY_KEYS or (last and last not in DAY_KEYS):
        return []
    a, b = DAY_KEYS.index(first), DAY_KEYS.index(last or first)
    return list(range(a, b + 1)) if a <= b else [*range(a, 7), *range(0, b + 1)]


def span_on(hours: HoursSpec, weekday: int) -> tuple[time, time] | None:
    """(opens, closes) on a weekday (0 = Monday), None when closed or not listed."""
    for key, span in hours.items():
        if weekday in _group_days(key):
            return (time.fromisoformat(span[0]), time.fromisoformat(span[1])) if span else None
    return None


@dataclass(frozen=True)
class SupportHours(Mapping[str, Sequence[str] | None]):
    """Weekly hours (an `HoursSpec`) and the dates they do not apply: the company's holidays, closed all day."""

    week: HoursSpec
    closed_days: frozenset[date] = frozenset()

    def __getitem__(self, key: str) -> Sequence[str] | None:
        return self.week[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.week)

    def __len__(self) -> int:
        return len(self.week)


def span_on_date(hours: HoursSpec, day: date) -> tuple[time, time] | None:
    """(opens, closes) on a date: None when closed that weekday or it is one of the hours' holidays."""
    if isinstance(hours, SupportHours) and day in hours.closed_days:
        return None
    return span_on(hours, day.weekday())


def support_hours(ctx: ServiceContext, core_hours: HoursSpec | None) -> HoursSpec | None:
    """The company's support hours: its own (set by its admin) or else its core's, with its holidays closed.

    None when neither says (the core could not answer and the company set none)."""
    week = grouped(ctx.support_hours) if ctx.support_hours is not None else core_hours
    if not week:
        return None
    return SupportHours(week, ctx.holidays) if ctx.holidays else week


def grouped(by_day: HoursSpec) -> dict[str, Sequence[str] | None]:
    """Hours given day by day ({"mon": ..., "tue": ...}) as the core groups them ({"mon-fri": ..., "sat": ...}),
    so that they read "lunes a viernes de 8:00am a 5:00pm" rather than day after day."""
    spans = [span_on(by_day, weekday) for weekday in range(7)]
    groups: dict[str, Sequence[str] | None] = {}
    first = 0
    for weekday in range(1, 8):
        if weekday == 7 or spans[weekday] != spans[first]:
            key = DAY_KEYS[first] if weekday - 1 == first else f"{DAY_KEYS[first]}-{DAY_KEYS[weekday - 1]}"
            span = spans[first]
            groups[key] = (f"{span[0]:%H:%M}", f"{span[1]:%H:%M}") if span else None
            first = weekday
    return groups


def is_open(ctx: ServiceContext, hours: HoursSpec, when: datetime) -> bool:
    """Whether `hours` cover `when`, read on the company's wall clock."""
    local = when.astimezone(ctx.timezone)
    span = span_on_date(hours, local.date())
    return span is not None and span[0] <= local.time() < span[1]


def next_opening(ctx: ServiceContext, hours: HoursSpec, when: datetime) -> datetime | None:
    """`when` itself if open then, else the next time `hours` open (within a week, holidays skipped); None if never."""
    if is_open(ctx, hours, when):
        return when
    local = when.astimezone(ctx.timezone)
    for offset in range(8 + (len(hours.closed_days) if isinstance(hours, SupportHours) else 0)):
        day = local.date() + timedelta(days=offset)
        span = span_on_date(hours, day)
        if span is not None:
            opening = datetime.combine(day, span[0], tzinfo=ctx.timezone)
            if opening > local:
                return opening
    return None


def _days_label(days: list[int]) -> str:
    if len(days) == 1:
        return day_name(days[0])
    return str(wording()["day_range"]).format(first=day_name(days[0]), last=day_name(days[-1]))


def hours_lines(hours: HoursSpec) -> list[str]:
    """"Lunes a viernes: 8:00am - 6:00pm", "Domingo: cerrado", one per day group."""
    w, lines = wording(), []
    for key, span in hours.items():
        days = _group_days(key)
        if days:
            label = _days_label(days).capitalize()
            line = (
                w["hours_line"].format(days=label, opens=clock(time.fromisoformat(span[0])),
                                       closes=clock(time.fromisoformat(span[1])))
                if span else w["closed_line"].format(days=label)
            )
            lines.append(line)
    return lines


def schedule_summary(hours: HoursSpec) -> str:
    """The open days in one phrase: "lunes a viernes de 8:00am a 6:00pm y sábado de 8:00am a 1:00pm"."""
    w = wording()
    parts = [
        w["schedule_part"].format(days=_days_label(days), opens=clock(time.fromisoformat(span[0])),
                                  closes=clock(time.fromisoformat(span[1])))
        for key, span in hours.items()
        if span and (days := _group_days(key))
    ]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])}{w['schedule_and']}{parts[-1]}"


def open_status(ctx: ServiceContext, hours: HoursSpec) -> str:
    """Open now (until when) or closed (and when it opens next), at the customer's message time."""
    w, local = wording()["now"], ctx.local_now
    span = span_on(hours, local.weekday())
    if is_open(ctx, hours, local) and span is not None:
        return str(w["open"]).format(time=clock(local.time()), closes=at_clock(span[1]))
    opening = next_opening(ctx, hours, local)
    if opening is None:
        return str(w["closed"]).format(time=clock(local.time()))
    return str(w["closed_opens"]).format(
        time=clock(local.time()), when=relative_day(ctx, opening), opens=at_clock(opening.time())
    )


def day_status(ctx: ServiceContext, hours: HoursSpec, day: date) -> str:
    """"Mañana (miércoles) atendemos de 8:00am a 6:00pm." or "... está cerrado."."""
    w = wording()["day"]
    ahead = (day - ctx.local_now.date()).days
    label_key = "today" if ahead == 0 else "tomorrow" if ahead == 1 else "other"
    label = str(w[label_key]).format(day=day_name(day.weekday()))
    span = span_on_date(hours, day)
    if span is None:
        return str(w["closed"]).format(when=label)
    return str(w["open"]).format(when=label, opens=clock(span[0]), closes=clock(span[1]))


def _target_day(ctx: ServiceContext, day: str) -> date | None:
    """"today"/"tomorrow"/"monday"… (or hoy/mañana/lunes…) as a date from the message's day; None if unread."""
    w, today = wording(), ctx.local_now.date()
    wanted = fold_words(day)
    if wanted in ("today", fold_words(w["today"])):
        return today
    if wanted in ("tomorrow", fold_words(w["tomorrow"])):
        return today + timedelta(days=1)
    for index in range(7):
        if wanted in (_ENGLISH_DAYS[index], DAY_KEYS[index], fold_words(day_name(index))):
            return today + timedelta(days=(index - today.weekday()) % 7)
    return None


# -- points ---------------------------------------------------------------------------------------

def fit(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis (list titles and descriptions)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _row_title(point: ServicePoint) -> str:
    """A list row title (≤ 24): "San Salvador - Punto Soyapango" loses the word "Punto" before being cut."""
    name = point.name if len(point.name) <= ROW_TITLE_MAX else point.name.replace("Punto ", "")
    return fit(name, ROW_TITLE_MAX)


def _points_list(ctx: ServiceContext, intro: str, points: list[ServicePoint] | None = None) -> list[OutboundMessage]:
    """The points (all by default) numbered in the text (for typed answers) and as list rows `point:<id>`."""
    w, shown = wording()["points"], (catalog.points(ctx) if points is None else points)[:ROWS_MAX]
    lines = [w["line"].format(n=n, name=p.name, address=p.address) for n, p in enumerate(shown, 1)]
    body = "\n".join([intro, "", *lines, "", w["reply_hint"]])
    rows = tuple(Choice(f"point:{p.id}", _row_title(p), fit(p.address, ROW_DESCRIPTION_MAX)) for p in shown)
    return [ChoiceList(body=body, button_label=w["button"], rows=rows)]


def pin_offer(point_id: str, body: str) -> Buttons:
    """`body` followed by the map-pin question: buttons `pin:<point_id>` and `pin_no`."""
    w = wording()["pin"]
    return Buttons(
        body=f"{body}\n\n{w['offer']}",
        buttons=(Choice(f"pin:{point_id}", w["yes"]), Choice("pin_no", w["no"])),
    )


def hours_answer(ctx: ServiceContext, point_id: str | None, day: str | None) -> list[OutboundMessage]:
    """One point's hours (and open now, or the asked day); without a known point, the list to pick from."""
    point = catalog.point_by_id(ctx, point_id)
    if point is None:
        return _points_list(ctx, wording()["points"]["ask_hours"])
    w = wording()["hours"]
    target = _target_day(ctx, day) if day else None
    status = [open_status(ctx, point.hours)] if target is None or target == ctx.local_now.date() else []
    if target is not None:
        status.append(day_status(ctx, point.hours, target))
    body = "\n".join(
        [w["header"].format(name=point.name, address=point.address), "", w["title"], *hours_lines(point.hours),
         "", *status]
    )
    return [pin_offer(point.id, body)]


def open_now_answer(ctx: ServiceContext) -> list[OutboundMessage]:
    """"¿Están abiertos ahorita?": every point, open (until when) or closed (and when it opens), as a list to pick."""
    w, now = wording()["now"], ctx.local_now
    shown = catalog.points(ctx)[:ROWS_MAX]
    lines = [str(w["all"]).format(time=clock(now.time()))]
    for point in shown:
        span = span_on(point.hours, now.weekday())
        opening = None if is_open(ctx, point.hours, now) else next_opening(ctx, point.hours, now)
        if span is not None and is_open(ctx, point.hours, now):
            lines.append(str(w["point_open"]).format(name=point.name, closes=at_clock(span[1])))
        elif opening is not None:
            lines.append(str(w["point_closed_opens"]).format(name=point.name, when=relative_day(ctx, opening),
                                                             opens=at_clock(opening.time())))
        else:
            lines.append(str(w["point_closed"]).format(name=point.name))
    rows = tuple(Choice(f"point:{p.id}", _row_title(p), fit(p.address, ROW_DESCRIPTION_MAX)) for p in shown)
    body = "\n".join([*lines, "", str(w["pick"])])
    return [ChoiceList(body=body, button_label=wording()["points"]["button"], rows=rows)]


def location_answer(ctx: ServiceContext, point_id: str | None) -> list[OutboundMessage]:
    """A point's address, reference, phone and hours with the pin offer; without a point, all points."""
    point = catalog.point_by_id(ctx, point_id)
    if point is None:
        return _points_list(ctx, wording()["points"]["intro"].format(count=len(catalog.points(ctx))))
    body = wording()["location"].format(
        name=point.name, address=point.address, reference=point.reference, phone=point.phone,
        hours=" · ".join(hours_lines(point.hours)),
    )
    return [pin_offer(point.id, body)]


def location_pin(ctx: ServiceContext, point_id: str) -> OutboundMessage:
    """The point as a map pin; a text with the address when the core has no coordinates for it."""
    w = wording()["pin"]
    point = catalog.point_by_id(ctx, point_id)
    if point is None:
        return Text(w["unknown"])
    if point.lat is None or point.lng is None:
        return Text(w["no_coordinates"].format(name=point.name, address=point.address))
    return Location(latitude=point.lat, longitude=point.lng, name=point.name,
                    address=f"{point.address}. {point.reference}".strip(". "))


# -- places of El Salvador ------------------------------------------------------------------------

def place_answer(ctx: ServiceContext, place_key: str) -> list[OutboundMessage]:
    """Where to go for a place: its own point (or its points to pick from), else the nearest point."""
    place = geography.locality(place_key) or geography.resolve(place_key).place
    if place is None:
        return location_answer(ctx, None)
    all_points = catalog.points(ctx)
    inside = geography.points_in(all_points, place)
    if len(inside) == 1:
        return location_answer(ctx, inside[0].id)
    if inside:
        return _points_list(ctx, wording()["places"]["several"].format(place=place.name, count=len(inside)), inside)
    nearest = geography.nearest_point(all_points, place)
    if nearest is None:
        return location_answer(ctx, None)
    point = nearest.point
    body = wording()["places"]["no_point"].format(
        place=place.name, name=point.name, km=nearest.km, address=point.address, reference=point.reference,
        schedule=schedule_summary(point.hours), phone=point.phone,
    )
    return [pin_offer(point.id, body)]


def place_options_answer(place_keys: Sequence[str]) -> list[OutboundMessage]:
    """The question for an ambiguous place name, one button per place: `place:<key>`."""
    w = wording()["places"]
    places = [p for key in place_keys if (p := geography.locality(key)) is not None][:ROWS_MAX]
    if not places:
        return [Text(w["unknown"])]
    body = w["which"].format(name=places[0].name)
    if len(places) <= BUTTONS_MAX:
        return [Buttons(body=body, buttons=tuple(Choice(f"place:{p.key}", fit(p.department, BUTTON_TITLE_MAX))
                                                 for p in places))]
    rows = tuple(Choice(f"place:{p.key}", fit(p.department, ROW_TITLE_MAX)) for p in places)
    return [ChoiceList(body=body, button_label=w["button"], rows=rows)]


# -- prices and delivery times --------------------------------------------------------------------

@dataclass(frozen=True)
class PricingAnswer:
    """The replies, and what the dialog still has to ask for ("destination" | "weight" | None)."""

    replies: list[OutboundMessage]
    missing: str | None


def _lbs(value: float) -> str:
    return f"{value:g}"


def _bracket_lines(ctx: ServiceContext, zone: str, currency: str) -> list[str]:
    w, lines = wording()["pricing"], []
    for above, up_to, price in catalog.brackets(ctx, zone):
        if up_to is None:
            line = w["bracket_over"].format(above=_lbs(above or 0), price=money(price, currency))
        elif above is None:
            line = w["bracket_upto"].format(up_to=_lbs(up_to), price=money(price, currency))
        else:
            line = w["bracket_range"].format(above=_lbs(above), up_to=_lbs(up_to), price=money(price, currency))
        lines.append(line)
    return lines


def _note_line(note: str, rural_place: str | None = None) -> str | None:
    """The core's pricing note in Spanish when it is the rural surcharge ("Rural zones add $2-5."), said of
    the place when the shipment goes to (or comes from) a rural one."""
    w, amount = wording()["pricing"], _MONEY_RANGE.search(note)
    if not note:
        return None
    if "rural" in note.lower() and amount:
        key = "rural_place" if rural_place else "rural_note"
        return str(w[key]).format(amount=amount.group(0).replace(" ", ""), place=rural_place)
    return str(w["note"]).format(note=note)


def _cities(ctx: ServiceContext) -> str:
    return ", ".join(dict.fromkeys(p.city for p in catalog.points(ctx)))


def _zone_of(ctx: ServiceContext, origin: catalog.Place, destination: str) -> tuple[str, str] | None:
    """(zone, city shown) for a destination; unknown places are asked to the core's quote."""
    place = catalog.resolve_place(ctx, destination)
    if place is not None:
        return catalog.zone_for(origin, place), place.city
    try:
        quote = ctx.core.quote(origin.city, destination, 1)
    except CoreBadRequest:
        return None
    return quote.zone, destination.strip()


def pricing_answer(
    ctx: ServiceContext, destination: str | None, weight_lbs: float | None, origin: str | None = None
) -> PricingAnswer:
    """The cost of one shipment from the cached price table, or the question for what is missing."""
    w = wording()["pricing"]
    currency, note = catalog.pricing_meta(ctx)
    if not destination or not destination.strip():
        return PricingAnswer([Text(w["ask_destination"])], "destination")
    if not origin and geography.resolve(destination).within:  # "dentro de San Salvador": both ends there
        origin = destination
    origin_place = catalog.resolve_place(ctx, origin) if origin else None
    assumed = origin_place is None
    origin_place = origin_place or catalog.Place(DEFAULT_ORIGIN, catalog.CAPITAL_DEPARTMENT)
    found = _zone_of(ctx, origin_place, destination)
    if found is None:
        text = w["unknown_destination"].format(destination=destination.strip(), cities=_cities(ctx))
        return PricingAnswer([Text(text)], "destination")
    zone, city = found
    if weight_lbs is None or weight_lbs <= 0:
        table = [w["table_intro"].format(destination=city, zone=w["zones"].get(zone, zone)),
                 *_bracket_lines(ctx, zone, currency)]
        return PricingAnswer([Text("\n".join([*table, "", w["ask_weight"]]))], "weight")
    price = catalog.price_for(ctx, zone, weight_lbs)
    if price is None:
        return PricingAnswer([Text(w["ask_weight"])], "weight")
    lines = [w["answer"].format(weight=_lbs(weight_lbs), origin=origin_place.city, destination=city,
                                price=money(price, currency))]
    place = catalog.resolve_place(ctx, destination)
    time_text = catalog.delivery_time(ctx, origin_place, place) if place else None
    lines += [w["delivery"].format(time=time_text)] if time_text else []
    lines += [line] if place and (line := _collection_line(ctx, origin_place, place)) else []
    extra = [w["origin_assumed"].format(origin=DEFAULT_ORIGIN)] if assumed else []
    rural = next((p for p in (place, origin_place) if p is not None and p.rural), None)
    extra += [line] if (line := _note_line(note, rural.city if rural else None)) else []
    return PricingAnswer([Text("\n".join([*lines, *([""] if extra else []), *extra]))], None)


def _collection_line(ctx: ServiceContext, origin: catalog.Place, destination: catalog.Place) -> str | None:
    """Where the package is picked up (or dropped off) when a end has no point of its own: one line."""
    w = wording()["pricing"]
    for place, key in ((destination, "collected_at"), (origin, "dropped_at")):
        serving = catalog.serving_point(ctx, place)
        if serving is not None:
            return str(w[key]).format(place=place.city, point=serving[0].name, km=serving[1])
    return None


def _delivery_place(key: str) -> str:
    labels: dict[str, Any] = wording()["delivery"]["labels"]
    return str(labels.get(key, key))


def delivery_time_answer(ctx: ServiceContext, destination: str | None) -> list[OutboundMessage]:
    """How long a shipment to `destination` takes (from San Salvador), with the nearest point when it has
    none of its own; every published time when the destination is unknown."""
    w = wording()["delivery"]
    times: dict[str, str] = catalog.pricing_table(ctx).get("delivery_times") or {}
    place = catalog.resolve_place(ctx, destination) if destination else None
    if place is not None:
        origin = catalog.Place(DEFAULT_ORIGIN, catalog.CAPITAL_DEPARTMENT)
        found = catalog.delivery_time(ctx, origin, place)
        serving = catalog.serving_point(ctx, place)
        if found and serving is not None:  # a place without a point: and the point that serves it
            return [Text(w["served"].format(destination=place.city, point=serving[0].name, km=serving[1],
                                            time=found))]
        if found:
            return [Text(w["answer"].format(destination=place.city, time=found))]
    intro = w["unknown"].format(destination=destination.strip()) if destination else w["title"]
    order = sorted(times, key=lambda k: (k != catalog.WITHIN_SAN_SALVADOR, k == catalog.RURAL))
    lines = [w["line"].format(place=_delivery_place(key), time=times[key]) for key in order]
    return [Text("\n".join([intro, *lines]))]
