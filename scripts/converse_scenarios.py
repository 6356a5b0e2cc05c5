"""Scenario files: the format of tests/scenarios/FORMAT.md, loaded and validated.

A file is a YAML list of conversations (name, from or from_user, at,
name_on_whatsapp, turns); `from` is a phone number, `from_user` a business-scoped
user id for a customer who hides their phone behind a WhatsApp username;
each turn has the customer's text (`user`) or a file (`media`: image, video,
document, sticker, or audio for a voice note; `user` is then its caption), an
optional `after` (time since the previous turn: 45s, 2m, 1h, 1m30s) and an
`expect` mapping whose keys must be
among EXPECT_KEYS (their meaning is checked in scripts/converse_checks.py).
Anything else is refused with a ScenarioError saying which conversation and turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

EXPECT_KEYS = frozenset({"intent", "reply_contains", "reply_contains_any", "reply_not_contains",
                         "transcript_contains", "escalated", "priority", "location_sent", "opted_out", "replies"})
MEDIA = frozenset({"image", "video", "document", "sticker", "audio"})  # what a turn's `media` may send
_DURATION = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*[smhd]?)+\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_USER_ID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]{4,80}$")


class ScenarioError(ValueError):
    """The scenario file is not in the expected format; the message says where."""


@dataclass(frozen=True)
class Turn:
    user: str  # the text, or a file's caption ("" for none)
    after: timedelta
    expect: dict[str, Any]
    media: str | None = None  # a file instead of a text: image | video | document | sticker | audio (a voice note)


@dataclass(frozen=True)
class Conversation:
    name: str
    phone: str | None  # None for a username-only customer, known by `user_id` alone
    at: datetime
    turns: tuple[Turn, ...]
    profile_name: str | None = None
    user_id: str | None = None  # Meta's business-scoped user id ("US.1349..."), for `from_user`

    @property
    def who(self) -> str:
        """The customer as the report names them: the phone, or the user id."""
        return self.phone or self.user_id or ""


def duration(raw: Any, where: str) -> timedelta:
    if raw is None:
        return timedelta(0)
    text = str(raw).strip().lower()
    if not _DURATION.match(text):
        raise ScenarioError(f"{where}: after={raw!r} is not a duration like 45s, 2m, 1h or 1m30s")
    units = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return timedelta(seconds=sum(float(n) * units[u] for n, u in _DURATION_PART.findall(text)))


def load_scenarios(path: Path) -> list[Conversation]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(data, list):
        raise ScenarioError(f"{path}: expected a list of conversations")
    found = []
    for n, raw in enumerate(data, 1):
        where = f"{path.name} conversation {n}"
        if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list):
            raise ScenarioError(f"{where}: needs name, from (or from_user), at and a list of turns")
        try:
            at = datetime.fromisoformat(str(raw.get("at")))
        except ValueError:
            raise ScenarioError(f"{where}: at={raw.get('at')!r} is not an ISO date-time") from None
        if at.tzinfo is None:
            raise ScenarioError(f"{where}: at={raw.get('at')!r} needs a UTC offset")
        phone, user_id = _customer(raw, where)
        turns = []
        for m, turn in enumerate(raw["turns"], 1):
            if not isinstance(turn, dict) or ("user" not in turn and "media" not in turn):
                raise ScenarioError(f"{where} turn {m}: needs a 'user' text or a 'media' file")
            if turn.get("media") is not None and turn["media"] not in MEDIA:
                raise ScenarioError(f"{where} turn {m}: media={turn['media']!r} is not one of "
                                    f"{', '.join(sorted(MEDIA))}")
            expect = turn.get("expect") or {}
            if not isinstance(expect, dict):
                raise ScenarioError(f"{where} turn {m}: expect must be a mapping")
            unknown = set(expect) - EXPECT_KEYS
            if unknown:
                raise ScenarioError(f"{where} turn {m}: unknown expectation {', '.join(sorted(unknown))}")
            turns.append(Turn(str(turn["user"] if turn.get("user") is not None else ""),
                              duration(turn.get("after"), f"{where} turn {m}"), expect, turn.get("media")))
        found.append(Conversation(str(raw.get("name") or where), phone, at, tuple(turns),
                                  str(raw["name_on_whatsapp"]) if raw.get("name_on_whatsapp") else None,
                                  user_id))
    return found


def _customer(raw: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    """(phone, user id) from exactly one of `from` (a phone number) and `from_user` (a business-scoped id)."""
    if (raw.get("from") is None) == (raw.get("from_user") is None):
        raise ScenarioError(f"{where}: needs exactly one of from (a phone) and from_user (a user id)")
    if raw.get("from_user") is not None:
        user_id = str(raw["from_user"]).strip()
        if not _USER_ID.match(user_id):
            raise ScenarioError(f"{where}: from_user={raw['from_user']!r} is not a user id like US.1349120865530")
        return None, user_id
    phone = "+" + "".join(ch for ch in str(raw.get("from") or "") if ch.isdigit())
    if len(phone) < 9:
        raise ScenarioError(f"{where}: from={raw.get('from')!r} is not a phone number")
    return phone, None
