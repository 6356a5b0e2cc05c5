"""Who hears about a package event, and what they are told (design 2.1.4, 2.2.4, 3.2.3).

Pure: the event, the package as the core describes it and the service points
in; a list of `Plan`s out (no SQL, Redis or HTTP). The rules:

- ARRIVED_AT_DESTINATION -> the recipient: where to pick it up, hours, amount to
  pay (if any), and an offer of the map pin;
- DELIVERED with a refund waiting, or a `package.refund_available` event -> the
  sender: amount, where to collect it, bring the DUI;
- RETURNED_TO_SENDER -> the sender: where to collect the package;
- IN_TRANSIT -> the recipient, RECEIVED_AT_ORIGIN -> the sender: only when
  switched on (NOTIFY_IN_TRANSIT / NOTIFY_RECEIVED), off by default;
- anything else -> nobody.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core_api_client.models import Package, Party, ServicePoint
from notifications.events import REFUND_AVAILABLE, STATUS_CHANGED

ARRIVED = "arrived"
REFUND = "refund_available"
RETURNED = "returned_to_sender"
REMINDER = "pickup_reminder"
IN_TRANSIT = "in_transit"
RECEIVED = "received_at_origin"

# The order notifications go in when WhatsApp's messaging limit (notifications/limits.py) cannot take them all:
# the customer can act on these first (a package waiting at the point, money to collect), in-transit news last.
# One list, used by the limit's pass and by every list of held notifications.
PRIORITY: tuple[str, ...] = (ARRIVED, REFUND, REMINDER, RETURNED, RECEIVED, IN_TRANSIT)

_DAY_LABELS = {"mon-fri": "lun-vie", "mon-sat": "lun-sáb", "sat": "sáb", "sun": "dom"}


@dataclass(frozen=True)
class Plan:
    """One notification to one party of the package.

    `values` fill the template (notifications/templates.yaml); `pin_point` is the
    point whose map pin the message offers (seeded into the dialog so "sí" sends it).
    """

    kind: str
    role: str  # recipient | sender
    phone: str
    values: dict[str, str]
    package_status: str
    pin_point: str | None


def decide(
    event_type: str, status: str | None, package: Package, points: Mapping[str, ServicePoint], *,
    notify_in_transit: bool = False, notify_received: bool = False, refund_amount: float | None = None,
    refund_point: str | None = None,
) -> list[Plan]:
    """The notifications an event calls for (empty when nobody is to be told)."""
    if event_type == REFUND_AVAILABLE:
        return _refund(package, points, refund_amount, refund_point)
    if event_type != STATUS_CHANGED or status is None:
        return []
    if status == "ARRIVED_AT_DESTINATION":
        return [_arrived(package, points)]
    if status == "DELIVERED":
        return _refund(package, points, refund_amount, refund_point)
    if status == "RETURNED_TO_SENDER":
        origin = points.get(package.origin_point)
        values = {**_common(package, package.sender),
                  "return_point": _place(origin, package.origin_city or package.origin_point),
                  "return_point_id": package.origin_point}
        return [Plan(RETURNED, "sender", e164(package.sender.phone), values, status, package.origin_point)]
    if status == "IN_TRANSIT" and notify_in_transit:
        values = _common(package, package.recipient)
        return [Plan(IN_TRANSIT, "recipient", e164(package.recipient.phone), values, status, None)]
    if status in ("RECEIVED_AT_ORIGIN", "RECEIVED") and notify_received:
        origin = points.get(package.origin_point)
        values = {**_common(package, package.sender),
                  "point_name": origin.name if origin else package.origin_point, "point_id": package.origin_point}
        return [Plan(RECEIVED, "sender", e164(package.sender.phone), values, status, None)]
    return []


def reminder(package: Package, points: Mapping[str, ServicePoint], days_waiting: int, unclaimed_days: int) -> Plan:
    """The day-N reminder to the recipient of a package still waiting at its destination."""
    plan = _arrived(package, points)
    values = {**plan.values, "days_waiting": str(days_waiting), "days_left": str(max(0, unclaimed_days - days_waiting))}
    return Plan(REMINDER, "recipient", plan.phone, values, f"REMINDER_DAY_{days_waiting}", plan.pin_point)


def _arrived(package: Package, points: Mapping[str, ServicePoint]) -> Plan:
    point = points.get(package.destination_point)
    values = {
        **_common(package, package.recipient),
        "point_id": package.destination_point,
        "point_name": point.name if point else (package.destination_city or package.destination_point),
        "point_address": point.address if point else "",
        "point_hours": hours_text(point) if point else "",
        "amount_due": _amount_due(package.amount_to_collect),
    }
    return Plan(ARRIVED, "recipient", e164(package.recipient.phone), values, "ARRIVED_AT_DESTINATION",
                package.destination_point)


def _refund(package: Package, points: Mapping[str, ServicePoint], amount: float | None,
            point_id: str | None) -> list[Plan]:
    refund = package.refund
    if amount is None and (refund is None or refund.status.upper() not in ("AVAILABLE", "PENDING")):
        return []
    amount = amount if amount is not None else (refund.amount if refund else 0.0)
    if amount <= 0:
        return []
    where = point_id or (refund.pickup_point if refund else None) or package.origin_point
    point = points.get(where)
    values = {**_common(package, package.sender), "refund_amount": _money(amount),
              "refund_point": _place(point, where), "refund_point_id": where}
    return [Plan(REFUND, "sender", e164(package.sender.phone), values, "REFUND_AVAILABLE", where)]


def _common(package: Package, party: Party) -> dict[str, str]:
    return {
        "customer_name": first_name(party.name),
        "tracking_code": package.tracking_code,
        "origin_city": package.origin_city or package.origin_point,
        "destination_city": package.destination_city or package.destination_point,
    }


def e164(phone: str) -> str:
    """'+503 7000-0002', '70000002' -> '+50370000002' (8 digits are a Salvadoran number); '' when none."""
    digits = re.sub(r"\D", "", phone)
    if not digits:
        return ""
    return "+" + ("503" + digits if len(digits) == 8 else digits)


def first_name(name: str) -> str:
    """'María López' -> 'María'; an empty name becomes a neutral greeting word."""
    parts = name.split()
    return parts[0] if parts else "cliente"


def hours_text(point: ServicePoint) -> str:
    """'lun-vie 8:00–18:00, sáb 8:00–13:00' (closed days left out)."""
    spans = []
    for day, span in point.hours.items():
        if span:
            spans.append(f"{_DAY_LABELS.get(day, day)} {_clock(span[0])}–{_clock(span[1])}")
    return ", ".join(spans) or "consulta el horario en el punto"


def _clock(value: str) -> str:
    hours, _, minutes = value.partition(":")
    return f"{int(hours)}:{minutes}" if hours.isdigit() else value


def _place(point: ServicePoint | None, fallback: str) -> str:
    return f"{point.name} ({point.address})" if point else fallback


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def _amount_due(amount: float) -> str:
    return _money(amount) if amount > 0 else "$0.00 (no pagas nada)"
