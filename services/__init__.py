"""The services behind the conversation: tracking, points and prices, policies and FAQ, escalation.

Each service function takes a `ServiceContext` (the company, its logistics
core, its Redis and the moment of the customer's message) and returns the
provider-neutral messages the customer reads. The wording lives in
services/texts/services.yaml and the company's policies and FAQ are the
version its admin last saved (`ServiceContext.faq`), so neither needs Python to change. The helpers below
format what every service shows: money, clock times, dates and day names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import redis

from channels.outbound import OutboundMessage, Text
from core_api_client import CoreClient
from services import texts
from storage.faq_content import FaqData

TEXTS_NAME = "services"


@dataclass(frozen=True)
class ServiceContext:
    """Everything a service needs to answer one customer message."""

    core: CoreClient
    redis: redis.Redis
    tenant_slug: str  # selects faq_data/<tenant_slug>.yaml and the cache keys
    company_name: str
    timezone: ZoneInfo
    now: datetime  # aware; the moment of the customer's message
    bot_name: str | None = None  # the tenant's name for the assistant (None: it introduces itself without one)
    greeting: str | None = None  # the tenant's own first-contact welcome (None: the texts' default)
    # the company's own weekly support hours ({"mon": ("08:00", "17:00"), ..., "sun": None}; None: its core's)
    # and its holidays (support closed all day); storage.tenant_hours, read with `business.support_hours`
    support_hours: Mapping[str, Sequence[str] | None] | None = None
    holidays: frozenset[date] = frozenset()
    # the tenant's current policies and FAQ (storage.faq_versions, read through the process's cache);
    # None: services.faq reads faq_data/<tenant_slug>.yaml (tests and tools without a database)
    faq: FaqData | None = None

    @property
    def local_now(self) -> datetime:
        """`now` on the company's wall clock."""
        return self.now.astimezone(self.timezone)


def wording() -> dict[str, Any]:
    """The services' customer-facing text (services/texts/services.yaml, loaded once per process)."""
    return texts.load(TEXTS_NAME)


def money(amount: float, currency: str = "USD") -> str:
    """"$8.00" for dollars (El Salvador's currency); "8.00 EUR" style otherwise."""
    return f"${amount:,.2f}" if currency.upper() == "USD" else f"{amount:,.2f} {currency}"


def at_clock(value: time) -> str:
    """A time with its article, as said after "hasta" or "a": "las 6:00pm", "la 1:00pm"."""
    return ("la " if value.hour % 12 == 1 else "las ") + clock(value)


def clock(value: time) -> str:
    """A wall-clock time the way customers write it: "8:00am", "5:30pm", "12:00pm"."""
    w = wording()
    hour = value.hour % 12 or 12
    return f"{hour}:{value.minute:02d}{w['am'] if value.hour < 12 else w['pm']}"


def day_name(weekday: int) -> str:
    """The Spanish name of a weekday (0 = Monday), lower case."""
    return str(wording()["days"][weekday])


def short_date(when: datetime) -> str:
    return str(wording()["date"]).format(day=when.day, month=when.month, year=when.year)


def stamp(ctx: ServiceContext, when: datetime) -> str:
    """When something happened, on the company's clock: "06/01 10:30am"."""
    local = when.astimezone(ctx.timezone) if when.tzinfo else when.replace(tzinfo=ctx.timezone)
    return str(wording()["stamp"]).format(date=short_date(local), time=clock(local.time()))


def relative_day(ctx: ServiceContext, when: datetime) -> str:
    """"hoy", "mañana (miércoles)" or "el jueves 08/01" relative to the customer's message."""
    w = wording()
    local = when.astimezone(ctx.timezone)
    days_ahead = (local.date() - ctx.local_now.date()).days
    if days_ahead == 0:
        return str(w["today"])
    if days_ahead == 1:
        return str(w["tomorrow_named"]).format(day=day_name(local.weekday()))
    return str(w["on_day_date"]).format(day=day_name(local.weekday()), date=short_date(local))


def core_unavailable_replies() -> list[OutboundMessage]:
    """What to say when the logistics core cannot answer (design 3.3.5): try later, or talk to a person."""
    return [Text(wording()["core_down"])]
