"""What the customer saw in one turn and the check of that turn's expectations.

Texts match when they are equal after normalise(): case, accents, WhatsApp marks
(* _ ~) and repeated whitespace do not count. A reply counts by what the customer
reads of it (readable()): text, interactive body and titles, a location's name and
address, a template's parameters.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

_MARKS = re.compile(r"[*_~]")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case, accents, WhatsApp marks (* _ ~) and repeated whitespace do not count."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _SPACES.sub(" ", _MARKS.sub("", plain.lower())).strip()


def readable(payload: dict[str, Any]) -> str:
    """What the customer reads of one message: text, interactive body and titles, a location's name/address."""
    kind = payload.get("kind")
    parts: list[str] = []
    if kind == "text":
        parts.append(str(payload.get("body") or ""))
    elif kind == "buttons":
        parts.append(str(payload.get("body") or ""))
        parts += [str(b.get("title") or "") for b in payload.get("buttons") or []]
    elif kind == "list":
        parts.append(str(payload.get("body") or ""))
        parts += [str(r.get("title") or "") for r in payload.get("rows") or []]
    elif kind == "location":
        parts += [str(payload.get(k) or "") for k in ("name", "address")]
    elif kind == "template":
        parts += [str(p) for p in payload.get("body_params") or []]
    return "\n".join(p for p in parts if p)


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@dataclass
class Observed:
    intent: str | None
    replies: list[dict[str, Any]]
    escalated: bool
    priority: str | None
    opted_out: bool
    escalation_reason: str | None = None  # the latest case's reason: customer_request, complaint, not_understood...
    not_understood: int = 0  # "no entendí" events of the customer's conversations so far (all turns)

    @property
    def text(self) -> str:
        return "\n".join(readable(p) for p in self.replies)


def check(expect: dict[str, Any], seen: Observed, transcript: str) -> list[str]:
    """The failed expectations of one turn, each as one line."""
    failures = []
    replies, history = normalise(seen.text), normalise(transcript)
    shown = seen.text.replace("\n", " | ")[:300] or "(no reply)"
    if "intent" in expect and seen.intent not in _as_list(expect["intent"]):
        failures.append(f"intent is {seen.intent!r}, expected {' or '.join(_as_list(expect['intent']))}")
    for fragment in _as_list(expect.get("reply_contains", [])):
        if normalise(fragment) not in replies:
            failures.append(f"reply_contains {fragment!r} missing; replies: {shown}")
    wanted = _as_list(expect["reply_contains_any"]) if "reply_contains_any" in expect else []
    if wanted and not any(normalise(f) in replies for f in wanted):
        failures.append(f"reply_contains_any {wanted!r}: none found; replies: {shown}")
    for fragment in _as_list(expect.get("reply_not_contains", [])):
        if normalise(fragment) in replies:
            failures.append(f"reply_not_contains {fragment!r} found; replies: {shown}")
    for fragment in _as_list(expect.get("transcript_contains", [])):
        if normalise(fragment) not in history:
            failures.append(f"transcript_contains {fragment!r} missing from the conversation so far")
    if "escalated" in expect and seen.escalated != bool(expect["escalated"]):
        failures.append(f"escalated is {seen.escalated}, expected {bool(expect['escalated'])}")
    if "priority" in expect and seen.priority != str(expect["priority"]):
        failures.append(f"priority is {seen.priority!r}, expected {expect['priority']!r}")
    if "location_sent" in expect:
        sent = any(p.get("kind") == "location" for p in seen.replies)
        if sent != bool(expect["location_sent"]):
            failures.append(f"location_sent is {sent}, expected {bool(expect['location_sent'])}")
    if "opted_out" in expect and seen.opted_out != bool(expect["opted_out"]):
        failures.append(f"opted_out is {seen.opted_out}, expected {bool(expect['opted_out'])}")
    if "replies" in expect and len(seen.replies) != int(expect["replies"]):
        failures.append(f"replies: {len(seen.replies)} messages, expected {int(expect['replies'])}; replies: {shown}")
    return failures
