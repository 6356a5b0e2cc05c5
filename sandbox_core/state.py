"""The sandbox core's in-memory copy of the demo company's data.

Loaded once from a JSON file in the core_demo.json format; every app instance
owns its own copy, so tests can change package statuses without affecting
each other. All reads and writes go through one lock and hand out deep
copies, so a response being serialised never sees a half-applied change.
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sandbox_core.matching import name_matches, normalise_tracking_code, phone_digits, place_matches

DEFAULT_DATA_PATH = Path(__file__).parent / "data" / "core_demo.json"
# Statuses after which the package sits at (or left from) its destination point.
_AT_DESTINATION = frozenset({"ARRIVED_AT_DESTINATION", "DELIVERED"})


def load_data(path: Path | str | None = None) -> dict[str, Any]:
    """Read a core_demo.json-shaped file (the bundled demo data when `path` is None)."""
    with open(path or DEFAULT_DATA_PATH, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    for key in ("company", "points", "pricing", "delivery_times", "policies", "packages"):
        if key not in data:
            raise ValueError(f"core data file {path or DEFAULT_DATA_PATH} has no {key!r} block")
    return data


_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


def _first_event_at(package: dict[str, Any]) -> datetime:
    """When the package entered the network (its first history entry), for newest-first order."""
    history = package.get("history") or []
    if not history:
        return _LONG_AGO
    at = datetime.fromisoformat(str(history[0]["at"]))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class CoreState:
    """Packages, service points, pricing and the notification log of one sandbox core."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self._data = copy.deepcopy(data)
        self._points = {p["id"]: p for p in self._data["points"]}
        self._packages = {normalise_tracking_code(p["tracking_code"]): p for p in self._data["packages"]}
        self._notifications: list[dict[str, Any]] = []
        self._notification_ids: dict[str, dict[str, Any]] = {}  # notification_id -> entry (repeats are one)
        self.timezone = ZoneInfo(self._data["company"].get("timezone") or "America/El_Salvador")

    def block(self, name: str) -> Any:
        """A copy of one top-level block of the data (company, policies, pricing, ...)."""
        with self._lock:
            return copy.deepcopy(self._data[name])

    def _city(self, point_id: str | None) -> str | None:
        point = self._points.get(point_id or "")
        return point["city"] if point else None

    def _view(self, package: dict[str, Any]) -> dict[str, Any]:
        """The package as the track/search endpoints return it (caller holds the lock)."""
        view = copy.deepcopy(package)
        view["id"] = package["tracking_code"]
        view["origin_city"] = self._city(package.get("origin_point"))
        view["destination_city"] = self._city(package.get("destination_point"))
        return view

    def track(self, code: str) -> dict[str, Any] | None:
        with self._lock:
            package = self._packages.get(normalise_tracking_code(code))
            return self._view(package) if package else None

    def search(
        self,
        *,
        phone: str | None = None,
        sender_phone: str | None = None,
        name: str | None = None,
        destination: str | None = None,
        statuses: frozenset[str] | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """Packages of a person, newest first.

        A package qualifies when `phone` is its sender's or recipient's number,
        `sender_phone` is its sender's, or `name` loosely matches either party;
        `destination` (point id or city) and `statuses` then narrow the result.
        """
        wanted_any = phone_digits(phone) if phone else None
        wanted_sender = phone_digits(sender_phone) if sender_phone else None
        found = []
        with self._lock:
            for package in self._packages.values():
                parties = (package["sender"], package["recipient"])
                by_phone = wanted_any is not None and any(
                    phone_digits(p["phone"]) == wanted_any for p in parties
                )
                by_sender = (
                    wanted_sender is not None and phone_digits(package["sender"]["phone"]) == wanted_sender
                )
                by_name = bool(name) and any(name_matches(name or "", p["name"]) for p in parties)
                if not (by_phone or by_sender or by_name):
                    continue
                if destination and not place_matches(
                    destination, package["destination_point"], self._city(package["destination_point"])
                ):
                    continue
                if statuses is not None and package["status"] not in statuses:
                    continue
                found.append(self._view(package))
        found.sort(key=_first_event_at, reverse=True)
        return found[:limit]

    def points(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._points.values()))

    def point(self, point_id: str) -> dict[str, Any] | None:
        with self._lock:
            point = self._points.get(point_id)
            return copy.deepcopy(point) if point else None

    def pricing_inputs(self) -> dict[str, Any]:
        """What a quote needs: points, pricing and delivery times (copies)."""
        with self._lock:
            return copy.deepcopy({k: self._data[k] for k in ("points", "pricing", "delivery_times")})

    def has_package(self, code: str) -> bool:
        with self._lock:
            return normalise_tracking_code(code) in self._packages

    def log_notification(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Record that the bot notified someone about a package; returns the stored entry with its id.

        An entry whose `notification_id` was logged before is not stored again (the bot retries until
        accepted); the earlier entry is returned.
        """
        with self._lock:
            key = entry.get("notification_id")
            if key and key in self._notification_ids:
                return copy.deepcopy(self._notification_ids[key])
            stored = {"id": len(self._notifications) + 1, **entry}
            self._notifications.append(stored)
            if key:
                self._notification_ids[key] = stored
            return copy.deepcopy(stored)

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._notifications)

    def now(self) -> str:
        """The current time in the company's time zone, as the core writes timestamps."""
        return datetime.now(self.timezone).isoformat(timespec="seconds")

    def set_status(self, code: str, status: str, note: str, point: str | None) -> dict[str, Any] | None:
        """Move a package to `status`, appending a history entry stamped now; None if unknown.

        Without an explicit `point`, the entry is placed at the destination for
        arrival/delivery, at the origin for RECEIVED_AT_ORIGIN, and nowhere (in
        transit) otherwise.
        """
        with self._lock:
            package = self._packages.get(normalise_tracking_code(code))
            if package is None:
                return None
            if point is None:
                if status in _AT_DESTINATION:
                    point = package["destination_point"]
                elif status == "RECEIVED_AT_ORIGIN":
                    point = package["origin_point"]
            package["status"] = status
            package.setdefault("history", []).append(
                {"at": self.now(), "status": status, "point": point, "note": note}
            )
            if status in _AT_DESTINATION:
                package["eta"] = None
            return self._view(package)
