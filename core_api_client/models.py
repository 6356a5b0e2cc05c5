"""Typed views of what the logistics core returns.

Each model is frozen and built by `from_json` from the core's JSON; a missing
field raises KeyError/TypeError/ValueError, which the client turns into
`CoreBadResponse`. Models that may be cached (points, quotes, company) also
have `to_json`, the inverse of `from_json`. A Party's name and phone are left
out of repr so a logged package never carries personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Opening hours by day group ("mon-fri", "sat", "sun"): (opens, closes) as "HH:MM", None when closed.
Hours = dict[str, tuple[str, str] | None]


def _hours(raw: dict[str, Any] | None) -> Hours:
    return {day: (str(span[0]), str(span[1])) if span else None for day, span in (raw or {}).items()}


def _hours_json(hours: Hours) -> dict[str, list[str] | None]:
    return {day: list(span) if span else None for day, span in hours.items()}


def _datetime(raw: Any) -> datetime | None:
    return datetime.fromisoformat(str(raw)) if raw else None


def _phone_digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return "503" + digits if len(digits) == 8 else digits


@dataclass(frozen=True)
class Party:
    """The sender or recipient of a package as the core knows them."""

    name: str = field(repr=False)
    phone: str = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Party:
        return cls(name=str(raw.get("name") or ""), phone=str(raw.get("phone") or ""))


@dataclass(frozen=True)
class Refund:
    """Money the sender can collect back (e.g. cash on delivery), and where."""

    amount: float
    status: str
    pickup_point: str | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Refund:
        return cls(
            amount=float(raw["amount"]), status=str(raw["status"]), pickup_point=raw.get("pickup_point")
        )


@dataclass(frozen=True)
class HistoryEntry:
    """One step of a package's journey; `point` is None while in transit between points."""

    at: datetime
    status: str
    point: str | None
    note: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> HistoryEntry:
        at = _datetime(raw["at"])
        if at is None:
            raise ValueError("history entry without a time")
        return cls(at=at, status=str(raw["status"]), point=raw.get("point"), note=str(raw.get("note") or ""))


@dataclass(frozen=True)
class Package:
    """A shipment: where it goes, who sends and receives it, what to collect, and its history.

    `amount_to_collect` is cash the recipient pays on pickup (0 when none);
    `eta` is the core's estimate while the package is still on its way.
    """

    tracking_code: str
    status: str
    origin_point: str
    origin_city: str | None
    destination_point: str
    destination_city: str | None
    sender: Party
    recipient: Party
    weight_lbs: float
    amount_to_collect: float
    refund: Refund | None
    eta: datetime | None
    history: tuple[HistoryEntry, ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Package:
        return cls(
            tracking_code=str(raw["tracking_code"]),
            status=str(raw["status"]),
            origin_point=str(raw["origin_point"]),
            origin_city=raw.get("origin_city"),
            destination_point=str(raw["destination_point"]),
            destination_city=raw.get("destination_city"),
            sender=Party.from_json(raw["sender"]),
            recipient=Party.from_json(raw["recipient"]),
            weight_lbs=float(raw.get("weight_lbs") or 0),
            amount_to_collect=float(raw.get("amount_to_collect") or 0),
            refund=Refund.from_json(raw["refund"]) if raw.get("refund") else None,
            eta=_datetime(raw.get("eta")),
            history=tuple(HistoryEntry.from_json(h) for h in raw.get("history") or ()),
        )

    def is_party(self, phone: str) -> bool:
        """Whether `phone` is the sender's or recipient's number (design 3.3.3: who may see it)."""
        wanted = _phone_digits(phone)
        return bool(wanted) and wanted in (
            _phone_digits(self.sender.phone),
            _phone_digits(self.recipient.phone),
        )

    @property
    def last_event(self) -> HistoryEntry | None:
        return self.history[-1] if self.history else None


@dataclass(frozen=True)
class ServicePoint:
    """A branch where packages are dropped off and picked up."""

    id: str
    name: str
    city: str
    department: str
    address: str
    reference: str
    phone: str
    lat: float | None
    lng: float | None
    hours: Hours

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ServicePoint:
        lat, lng = raw.get("lat", raw.get("location_lat")), raw.get("lng", raw.get("location_lng"))
        return cls(
            id=str(raw["id"]),
            name=str(raw["name"]),
            city=str(raw.get("city") or ""),
            department=str(raw.get("department") or ""),
            address=str(raw.get("address") or ""),
            reference=str(raw.get("reference") or ""),
            phone=str(raw.get("phone") or ""),
            lat=float(lat) if lat is not None else None,
            lng=float(lng) if lng is not None else None,
            hours=_hours(raw.get("hours")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "city": self.city,
            "department": self.department,
            "address": self.address,
            "reference": self.reference,
            "phone": self.phone,
            "lat": self.lat,
            "lng": self.lng,
            "hours": _hours_json(self.hours),
        }


@dataclass(frozen=True)
class Quote:
    """The price of a shipment: `zone` is within_san_salvador or other_departments."""

    cost: float
    currency: str
    zone: str
    delivery_time: str | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Quote:
        return cls(
            cost=float(raw["cost"]),
            currency=str(raw.get("currency") or "USD"),
            zone=str(raw.get("zone") or ""),
            delivery_time=raw.get("delivery_time"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "cost": self.cost,
            "currency": self.currency,
            "zone": self.zone,
            "delivery_time": self.delivery_time,
        }


@dataclass(frozen=True)
class Company:
    """The parcel company itself: name, time zone, support hours and emergency phone."""

    name: str
    timezone: str
    support_hours: Hours
    emergency_phone: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Company:
        return cls(
            name=str(raw["name"]),
            timezone=str(raw.get("timezone") or "America/El_Salvador"),
            support_hours=_hours(raw.get("support_hours")),
            emergency_phone=str(raw.get("emergency_phone") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timezone": self.timezone,
            "support_hours": _hours_json(self.support_hours),
            "emergency_phone": self.emergency_phone,
        }
