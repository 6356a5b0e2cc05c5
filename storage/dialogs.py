"""Where a customer's dialog state lives: Redis key `dialog:{conversation_hash}`, JSON, 24 h TTL.

The state is what the bot remembers of the session (design 4.3): the
dialog's current state, what it asked last, the packages and the point being
discussed, a pending request the customer left for another topic, and a few
counters. `conversation_hash` is the hashed customer key of
`runtime.enqueue.conversation_hash` (never a phone number), which is also what
the simulator's reset looks for. Every save renews the 24 hours.

Failure policy: Redis errors and unreadable values are logged and never
raised; a load that fails gives a fresh state (the customer is answered as a
new session), a save that fails loses only this turn's memory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from typing import Any

import redis

log = logging.getLogger(__name__)

KEY = "dialog:{conversation_hash}"
TTL_S = 24 * 3600
MAX_PACKAGES = 10
SCHEMA_VERSION = 1


@dataclass
class DialogState:
    """One customer's session. Plain JSON-able values only; `chatbot.dialog` gives them meaning."""

    conversation_id: int | None = None  # the conversation this session belongs to; another one starts afresh
    state: str = "idle"
    purpose: str | None = None  # what a question is for: hours | locations | search | pricing | delivery | complaint
    day: str | None = None  # the day an hours question was about ("mañana", "saturday"...)
    options: list[str] = field(default_factory=list)  # ids of the choices offered last, in order
    option_titles: list[str] = field(default_factory=list)
    last_intent: str | None = None
    packages: list[str] = field(default_factory=list)  # tracking codes looked at this session, latest last
    listed: list[str] = field(default_factory=list)  # codes of the last list of packages shown
    point: str | None = None  # the service point being discussed
    pin_point: str | None = None  # the point whose map pin was offered last
    pricing: dict[str, Any] = field(default_factory=dict)  # destination, weight, origin of the last quote
    search: dict[str, Any] = field(default_factory=dict)  # name / phone given to find packages
    pending: dict[str, Any] | None = None  # a request left for another topic: state, purpose, day
    not_found_code: str | None = None
    code_fragment: str | None = None  # the start of a code short of digits ("SV20260106"), for the next message
    code_fragment_at: int = 0  # when it was typed (unix seconds)
    not_understood: int = 0  # consecutive messages not understood
    declined_human: bool = False  # said no to the offer of a person: not offered again when not understood
    exchanges: int = 0  # customer messages answered this session
    solved: list[str] = field(default_factory=list)  # what the bot answered, for the long-session summary
    summary_sent: bool = False
    csat_asked: bool = False
    complaints: int = 0
    handoff: dict[str, Any] | None = None  # case, priority, replied_at (ts), expecting
    # An album (chatbot/media_replies.py): the customer's last photo/video/document/sticker in a row, as a Unix time
    # (0: the last message was something else), and whether a caption of that album was answered already.
    media_at: int = 0
    album_caption: bool = False
    # When the bot last asked about a code read in a photo (chatbot/photo_reply.py), Unix time of that photo: the
    # album's other photos ask nothing more.
    photo_code_at: int = 0
    version: int = SCHEMA_VERSION

    def remember_package(self, code: str) -> None:
        if code in self.packages:
            self.packages.remove(code)
        self.packages.append(code)
        del self.packages[:-MAX_PACKAGES]

    def to_json(self) -> str:
        # Not dataclasses.asdict: it deep-copies every list and dict first, on every message.
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, ensure_ascii=False,
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> DialogState:
        """Rebuild a state; unknown keys are ignored, and missing ones or values of the wrong kind (written by
        another version) take their defaults."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("dialog state is not a JSON object")
        defaults = cls()
        values = {}
        for f in fields(cls):
            if f.name in data and _same_kind(data[f.name], getattr(defaults, f.name), f.name):
                values[f.name] = data[f.name]
        return cls(**values)


_OPTIONAL_TEXT = frozenset({"purpose", "day", "last_intent", "point", "pin_point", "not_found_code",
                            "code_fragment"})
_OPTIONAL_MAPPING = frozenset({"pending", "handoff"})


def _same_kind(value: Any, default: Any, name: str) -> bool:
    if name in _OPTIONAL_TEXT:
        return value is None or isinstance(value, str)
    if name in _OPTIONAL_MAPPING:
        return value is None or isinstance(value, dict)
    if name == "conversation_id":
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def key_for(conversation_hash: str) -> str:
    return KEY.format(conversation_hash=conversation_hash)


def load(conn: redis.Redis, conversation_hash: str) -> DialogState:
    """The customer's state, or a fresh one when there is none, it expired, or it cannot be read."""
    try:
        raw = conn.get(key_for(conversation_hash))
    except redis.RedisError as exc:
        log.warning("dialog state could not be read: %s", type(exc).__name__)
        return DialogState()
    if raw is None:
        return DialogState()
    try:
        return DialogState.from_json(raw)  # type: ignore[arg-type,unused-ignore]
    except (ValueError, TypeError) as exc:
        log.warning("dialog state unreadable, starting afresh: %s", type(exc).__name__)
        return DialogState()


def save(conn: redis.Redis, conversation_hash: str, state: DialogState) -> bool:
    """Store the state for 24 hours from now; False (logged) when Redis refused."""
    try:
        conn.set(key_for(conversation_hash), state.to_json(), ex=TTL_S)
    except redis.RedisError as exc:
        log.warning("dialog state could not be saved: %s", type(exc).__name__)
        return False
    return True


def clear(conn: redis.Redis, conversation_hash: str) -> None:
    """Forget the session (errors logged)."""
    try:
        conn.delete(key_for(conversation_hash))
    except redis.RedisError as exc:
        log.warning("dialog state could not be cleared: %s", type(exc).__name__)
