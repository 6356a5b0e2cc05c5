"""Events the logistics core pushes to `POST /internal/events`: signature, schema, parsed form.

Wire contract (docs/openapi.yaml):
- the body is one JSON object (schema `EVENT_SCHEMA`);
- `X-Encargo-Timestamp: <unix seconds>` and
  `X-Encargo-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>`;
  the sandbox core signs exactly this way (`sandbox_core/events.py`);
- a timestamp more than `max_age_s` away from our clock is refused (replay);
- `X-Encargo-Key-Id: <tenant slug>` names whose secret signed it (absent: the
  configured tenant); an event whose `tenant` names another one is refused.

Events carry tracking codes and statuses, never phone numbers or names: the
bot reads those from the core (`GET /api/packages/track/{code}`) when it
decides who to tell.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator

from channels import json_input

TIMESTAMP_HEADER = "X-Encargo-Timestamp"
SIGNATURE_HEADER = "X-Encargo-Signature"
KEY_ID_HEADER = "X-Encargo-Key-Id"
# Unix seconds have 10 digits until the year 2286; more is not a time, and int() of thousands of digits is slow.
_MAX_TIMESTAMP_DIGITS = 12

STATUS_CHANGED = "package.status_changed"
REFUND_AVAILABLE = "package.refund_available"
EVENT_TYPES = (STATUS_CHANGED, REFUND_AVAILABLE)

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["event_id", "type", "tracking_code", "occurred_at"],
    "additionalProperties": False,
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[A-Za-z0-9._:-]+$"},
        "type": {"enum": list(EVENT_TYPES)},
        "tracking_code": {"type": "string", "minLength": 4, "maxLength": 40, "pattern": r"^[A-Za-z0-9-]+$"},
        "status": {"type": "string", "pattern": r"^[A-Z][A-Z_]{1,63}$"},
        "occurred_at": {"type": "string", "minLength": 10, "maxLength": 40},
        "tenant": {"type": "string", "minLength": 1, "maxLength": 64},
        "refund": {
            "type": "object",
            "additionalProperties": False,
            "required": ["amount"],
            "properties": {
                "amount": {"type": "number", "minimum": 0},
                "pickup_point": {"type": "string", "minLength": 1, "maxLength": 64},
            },
        },
    },
    "allOf": [
        {"if": {"properties": {"type": {"const": STATUS_CHANGED}}}, "then": {"required": ["status"]}},
    ],
}
_VALIDATOR = Draft202012Validator(EVENT_SCHEMA)


class InvalidEvent(ValueError):
    """The body is not a valid event; the message says what is wrong (shown in the 400)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BadSignature(ValueError):
    """Missing or wrong signature, or a timestamp outside the allowed age (shown in the 401)."""


class MalformedHeader(ValueError):
    """A signing header that cannot be what it claims, e.g. a timestamp of "²" or 5,000 digits (shown in the 400)."""


@dataclass(frozen=True)
class CoreEvent:
    """A validated event; `raw` is the decoded body as received (stored as the payload)."""

    event_id: str
    type: str
    tracking_code: str
    status: str | None
    occurred_at: datetime
    tenant: str | None
    refund_amount: float | None
    refund_point: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Encargo-Signature` value for `body` sent at `timestamp` (unix seconds as text)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *, now: float,
           max_age_s: float) -> None:
    """Raise BadSignature unless `signature` signs `body` at `timestamp` and the timestamp is recent.

    Raises MalformedHeader for a timestamp that is not unix seconds in ASCII digits (str.isdigit alone
    accepts "²" and "١٢٣", which int() then refuses or reads; thousands of digits are refused unread).
    """
    if not secret:
        raise BadSignature("internal events are not configured (INTERNAL_EVENTS_SECRET is empty)")
    if not timestamp or not signature:
        raise BadSignature(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
        raise MalformedHeader(f"{TIMESTAMP_HEADER} must be unix seconds (at most {_MAX_TIMESTAMP_DIGITS} ASCII digits)")
    if abs(now - int(timestamp)) > max_age_s:
        raise BadSignature(f"{TIMESTAMP_HEADER} is more than {int(max_age_s)} s from now (replay refused)")
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.strip().encode()):
        raise BadSignature(f"{SIGNATURE_HEADER} does not match the body")


def parse(body: bytes) -> CoreEvent:
    """Decode and validate one event; raises InvalidEvent naming the first problem found."""
    try:
        data = json_input.load(body)
    except json_input.TooDeep as exc:
        raise InvalidEvent(f"body must be a JSON object: {exc}") from None
    except json_input.BadJson:
        raise InvalidEvent("body must be a JSON object") from None
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.absolute_path) or None
        raise InvalidEvent(f"{where}: {error.message}" if where else error.message, where)
    try:
        occurred_at = datetime.fromisoformat(data["occurred_at"])
    except ValueError:
        raise InvalidEvent("occurred_at: must be an ISO 8601 date-time with offset", "occurred_at") from None
    if occurred_at.tzinfo is None:
        raise InvalidEvent("occurred_at: must include a UTC offset", "occurred_at")
    refund = data.get("refund") or {}
    return CoreEvent(
        event_id=data["event_id"],
        type=data["type"],
        tracking_code=data["tracking_code"].upper(),
        status=data.get("status"),
        occurred_at=occurred_at,
        tenant=data.get("tenant"),
        refund_amount=float(refund["amount"]) if "amount" in refund else None,
        refund_point=refund.get("pickup_point"),
        raw=data,
    )
