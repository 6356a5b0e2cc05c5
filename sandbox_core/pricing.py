"""Shipping quotes over the demo pricing table.

The company prices by zone and weight bracket: a shipment whose both ends are
in the department of San Salvador is `within_san_salvador`, anything else is
`other_departments`. Delivery times are published per department of the far
end, with a `rural` fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sandbox_core.matching import fold, place_matches

WITHIN_SAN_SALVADOR = "within_san_salvador"
OTHER_DEPARTMENTS = "other_departments"
_CAPITAL_DEPARTMENT = "San Salvador"


class QuoteError(ValueError):
    """A quote request the core refuses; `parameter` names the offending query parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Place:
    """Where a shipment starts or ends: the city the customer named and its department."""

    city: str
    department: str


def resolve_place(text: str, points: list[dict[str, Any]], delivery_times: dict[str, str]) -> Place | None:
    """Find a place by point id, point city, department, or a department with published times."""
    for point in points:
        if place_matches(text, point["id"], point["city"]):
            return Place(city=point["city"], department=point["department"])
    for point in points:
        if place_matches(text, point["department"]):
            return Place(city=point["department"], department=point["department"])
    for key in delivery_times:
        if key not in (WITHIN_SAN_SALVADOR, "rural") and place_matches(text, key):
            return Place(city=key, department=key)
    return None


def parse_weight(raw: str | None) -> float:
    """Pounds as a positive finite number, else QuoteError naming `weight`."""
    if raw is None or not raw.strip():
        raise QuoteError("weight", "weight is required (pounds)")
    try:
        weight = float(raw)
    except ValueError:
        raise QuoteError("weight", f"weight must be a number of pounds, got {raw!r}") from None
    if not math.isfinite(weight) or weight <= 0:
        raise QuoteError("weight", "weight must be a positive number of pounds")
    return weight


def _price(brackets: list[dict[str, Any]], weight: float) -> float:
    for bracket in brackets:
        if bracket["max_lbs"] is None or weight <= float(bracket["max_lbs"]):
            return float(bracket["price"])
    raise QuoteError("weight", "no price bracket covers this weight")


def _delivery_time(
    origin: Place, destination: Place, zone: str, delivery_times: dict[str, str]
) -> str | None:
    if zone == WITHIN_SAN_SALVADOR:
        return delivery_times.get(WITHIN_SAN_SALVADOR)
    folded = {fold(key): value for key, value in delivery_times.items()}
    for place in (destination, origin):
        for name in (place.department, place.city):
            if fold(name) != fold(_CAPITAL_DEPARTMENT) and fold(name) in folded:
                return folded[fold(name)]
    return delivery_times.get("rural")


def quote(
    origin: str | None,
    destination: str | None,
    weight_raw: str | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The price of one shipment as the `/api/pricing` JSON body; QuoteError when a parameter is bad."""
    places: dict[str, Place] = {}
    for parameter, text in (("origin", origin), ("destination", destination)):
        if text is None or not text.strip():
            raise QuoteError(parameter, f"{parameter} is required (city or point id)")
        place = resolve_place(text, data["points"], data["delivery_times"])
        if place is None:
            raise QuoteError(parameter, f"unknown {parameter} {text!r}")
        places[parameter] = place
    weight = parse_weight(weight_raw)
    capital = fold(_CAPITAL_DEPARTMENT)
    within = all(fold(p.department) == capital for p in places.values())
    zone = WITHIN_SAN_SALVADOR if within else OTHER_DEPARTMENTS
    pricing = data["pricing"]
    return {
        "cost": _price(pricing["zones"][zone], weight),
        "currency": pricing["currency"],
        "zone": zone,
        "delivery_time": _delivery_time(
            places["origin"], places["destination"], zone, data["delivery_times"]
        ),
        "origin_city": places["origin"].city,
        "destination_city": places["destination"].city,
        "weight_lbs": weight,
    }
