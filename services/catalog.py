"""Service points and the price table, read from the logistics core through a Redis cache.

Design 3.3.4: points change rarely (cached 1 h, like the company's support
hours and emergency phone), the price table with its delivery times
occasionally (2 h). A package's status is never cached and
never passes through here. Cache failure policy: a Redis error (or a cached
value that cannot be read) is logged and the core is asked directly, so Redis
trouble never stops an answer; a core failure is raised to the caller as the
core client's `CoreError` (`CoreUnavailable` when the core is down).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from core_api_client import Company, ServicePoint
from services import ServiceContext, geography
from services.normalize import fold_words

logger = logging.getLogger(__name__)

CACHE_POINTS = "cache:{tenant}:points"
CACHE_PRICING = "cache:{tenant}:pricing"
CACHE_COMPANY = "cache:{tenant}:company"
POINTS_TTL_S = 3600
COMPANY_TTL_S = 3600
PRICING_TTL_S = 7200

CAPITAL_DEPARTMENT = "San Salvador"
WITHIN_SAN_SALVADOR = "within_san_salvador"
OTHER_DEPARTMENTS = "other_departments"
RURAL = "rural"

def _cached(ctx: ServiceContext, key: str, ttl_s: int, fetch: Callable[[], Any]) -> Any:
    """The JSON value under `key`, else `fetch()` stored for `ttl_s` (Redis errors: logged, core asked)."""
    redis_ok = True
    try:
        raw = ctx.redis.get(key)
    except redis.RedisError as exc:
        logger.warning("cache read of %s failed (%s); asking the core", key, type(exc).__name__)
        raw, redis_ok = None, False
    if raw is not None:
        try:
            return json.loads(raw)
        except ValueError:
            logger.warning("cache value of %s is not JSON; asking the core", key)
    value = fetch()
    if not redis_ok:  # Redis just failed: do not wait for it a second time in the same answer
        return value
    try:
        ctx.redis.set(key, json.dumps(value, ensure_ascii=False), ex=ttl_s)
    except redis.RedisError as exc:
        logger.warning("cache write of %s failed (%s)", key, type(exc).__name__)
    return value


def company(ctx: ServiceContext) -> Company:
    """The company's name, time zone, support hours and emergency phone (cached 1 h; raises CoreError)."""
    key = CACHE_COMPANY.format(tenant=ctx.tenant_slug)
    raw = _cached(ctx, key, COMPANY_TTL_S, lambda: ctx.core.company().to_json())
    return Company.from_json(raw)


def points(ctx: ServiceContext) -> list[ServicePoint]:
    """All service points of the company, in the core's order (cached 1 h; raises CoreError)."""
    raw = _cached(
        ctx,
        CACHE_POINTS.format(tenant=ctx.tenant_slug),
        POINTS_TTL_S,
        lambda: [p.to_json() for p in ctx.core.points()],
    )
    return [ServicePoint.from_json(p) for p in raw]


def points_by_id(ctx: ServiceContext) -> dict[str, ServicePoint]:
    return {p.id: p for p in points(ctx)}


def point_by_id(ctx: ServiceContext, point_id: str | None) -> ServicePoint | None:
    """The point with this id, or None when there is no id or the core does not know it."""
    if not point_id:
        return None
    return points_by_id(ctx).get(point_id)


def find_point(ctx: ServiceContext, text: str) -> ServicePoint | None:
    """A point named by id, full name, or a city that has exactly one point ("Santa Ana")."""
    wanted = fold_words(text)
    if not wanted:
        return None
    all_points = points(ctx)
    for point in all_points:
        if wanted in (fold_words(point.id), fold_words(point.name)):
            return point
    in_city = [p for p in all_points if fold_words(p.city) == wanted]
    return in_city[0] if len(in_city) == 1 else None


def pricing_table(ctx: ServiceContext) -> dict[str, Any]:
    """`{"pricing": {...}, "delivery_times": {...}}` as the core publishes it (cached 2 h; raises CoreError)."""
    table: dict[str, Any] = _cached(
        ctx, CACHE_PRICING.format(tenant=ctx.tenant_slug), PRICING_TTL_S, ctx.core.pricing_table
    )
    return table


@dataclass(frozen=True)
class Place:
    """Where a shipment starts or ends: the city as we show it and its department (for the zone rule).

    `key` is the place's key in the geography of El Salvador (None for a point's own city), `rural`
    whether the core's rural surcharge applies there.
    """

    city: str
    department: str
    key: str | None = None
    rural: bool = False


def place_of(locality: geography.Locality) -> Place:
    return Place(locality.name, locality.department, locality.key, locality.rural)


def resolve_place(ctx: ServiceContext, text: str) -> Place | None:
    """A point's city, name or id, else any place of El Salvador named by the whole text (department,
    municipality, district, alias, key or misspelling: "Apopa", "Gotera", "Chalate", "dentro de San
    Salvador"); None when unknown or ambiguous."""
    wanted = fold_words(text)
    if not wanted:
        return None
    all_points = points(ctx)
    for point in all_points:
        if wanted in (fold_words(point.id), fold_words(point.name), fold_words(point.city)):
            return Place(point.city, point.department)
    found = geography.resolve(text, whole=True).place
    if found is not None:
        return place_of(found)
    for point in all_points:
        if wanted == fold_words(point.department):
            return Place(point.department, point.department)
    for key in pricing_table(ctx).get("delivery_times") or {}:
        if key not in (WITHIN_SAN_SALVADOR, RURAL) and fold_words(key) == wanted:
            return Place(key, key)
    return None


def zone_for(origin: Place, destination: Place) -> str:
    """The company's zone rule: both ends in the department of San Salvador, or not."""
    capital = fold_words(CAPITAL_DEPARTMENT)
    within = fold_words(origin.department) == capital and fold_words(destination.department) == capital
    return WITHIN_SAN_SALVADOR if within else OTHER_DEPARTMENTS


def brackets(ctx: ServiceContext, zone: str) -> list[tuple[float | None, float | None, float]]:
    """The zone's weight brackets as (above_lbs, up_to_lbs, price); None means open-ended."""
    rows = (pricing_table(ctx).get("pricing") or {}).get("zones", {}).get(zone) or []
    result: list[tuple[float | None, float | None, float]] = []
    above: float | None = None
    for row in rows:
        up_to = None if row.get("max_lbs") is None else float(row["max_lbs"])
        result.append((above, up_to, float(row["price"])))
        above = up_to
    return result


def price_for(ctx: ServiceContext, zone: str, weight_lbs: float) -> float | None:
    """The price of `weight_lbs` pounds in `zone` from the cached table; None when no bracket covers it."""
    for _above, up_to, price in brackets(ctx, zone):
        if up_to is None or weight_lbs <= up_to:
            return price
    return None


def pricing_meta(ctx: ServiceContext) -> tuple[str, str]:
    """(currency, note) of the price table; the note is the core's own remark (e.g. rural surcharges)."""
    pricing = pricing_table(ctx).get("pricing") or {}
    return str(pricing.get("currency") or "USD"), str(pricing.get("note") or "")


def serving_point(ctx: ServiceContext, place: Place) -> tuple[ServicePoint, int] | None:
    """For a place of El Salvador without a point of its own: the nearest point and its distance in km."""
    locality = geography.locality(place.key)
    if locality is None:
        return None
    all_points = points(ctx)
    if geography.points_in(all_points, locality):
        return None
    nearest = geography.nearest_point(all_points, locality)
    return None if nearest is None else (nearest.point, nearest.km)


def delivery_time(ctx: ServiceContext, origin: Place, destination: Place) -> str | None:
    """The core's published delivery time for this trip: by zone, then the far end's department or city
    (the core's own rule), the rural time for a rural destination (faq_data/geography_sv.yaml)."""
    times: dict[str, str] = pricing_table(ctx).get("delivery_times") or {}
    if zone_for(origin, destination) == WITHIN_SAN_SALVADOR:
        return times.get(WITHIN_SAN_SALVADOR)
    if destination.rural and RURAL in times:
        return times[RURAL]
    folded = {fold_words(key): value for key, value in times.items()}
    for place in (destination, origin):
        for name in (place.department, place.city):
            if fold_words(name) != fold_words(CAPITAL_DEPARTMENT) and fold_words(name) in folded:
                return folded[fold_words(name)]
    return times.get(RURAL)
