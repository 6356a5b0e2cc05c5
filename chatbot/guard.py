"""Abuse and bad input (design 9.3): per-number rate limits, repeated messages, and cleaning what was typed.

Redis key family `guard:{conversation_hash}:*` (hashed customer key, never a
phone number):
- `guard:{h}:minute|hour|day`: sorted sets of message ids scored by the
  message's own time (the provider timestamp), so limits follow the
  customer's clock and a replayed job counts a message once;
- `guard:{h}:notice`: the message time until which the customer has already
  been asked to wait (one polite notice per burst);
- `guard:{h}:repeat`: the fingerprint of the last text and how many times in
  a row it came.

Failure policy: Redis errors are logged and never raised; the message is
then let through (a broken limiter must not silence customers).
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import redis

from chatbot.entities import lexicon
from runtime import lua
from services.normalize import fold

log = logging.getLogger(__name__)

KEY = "guard:{conversation_hash}:{part}"
WINDOWS = (("minute", 60), ("hour", 3600), ("day", 86400))
REPEAT_TTL_S = 24 * 3600
ROUTED_MAX_CHARS = 1000  # what the router reads of a very long message
NAME_MAX_CHARS = 60

_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^<>]{0,300}>")
_SPACES = re.compile(r"\s+")
_NAME_CHARS = re.compile(r"[^\w\s.'\-]|\d|_")
_DIGITS = re.compile(r"\d")
_WORDS = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class RateLimits:
    per_minute: int = 20
    per_hour: int = 100
    per_day: int = 500

    def limit(self, window: str) -> int:
        return {"minute": self.per_minute, "hour": self.per_hour, "day": self.per_day}[window]


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    notify: bool = False  # the first message over the limit: tell the customer once
    window: str | None = None  # which limit was exceeded


def _key(conversation_hash: str, part: str) -> str:
    return KEY.format(conversation_hash=conversation_hash, part=part)


# KEYS: the minute, hour and day sorted sets, then the notice key; ARGV: message id, its time, then each
# window's seconds. Counts the message once (by id) in each window and drops what fell out of it.
# Returns the three counts and the stored notice time (false when none): one round trip.
_RATE = lua.script("""
local at = tonumber(ARGV[2])
local counts = {}
for i = 1, 3 do
  local since = '(' .. tostring(at - tonumber(ARGV[2 + i]))
  redis.call('ZADD', KEYS[i], at, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', since)
  counts[i] = redis.call('ZCOUNT', KEYS[i], since, at)
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2 + i]) + 3600)
end
counts[4] = redis.call('GET', KEYS[4])
return counts
""")


def check_rate(conn: redis.Redis, conversation_hash: str, message_id: str, at: float,
               limits: RateLimits) -> RateDecision:
    """Count this message (idempotently, by id) and say whether it is within the limits."""
    keys = [_key(conversation_hash, window) for window, _s in WINDOWS] + [_key(conversation_hash, "notice")]
    try:
        results = _RATE(keys=keys, args=[message_id, repr(at), *(seconds for _w, seconds in WINDOWS)], client=conn)
    except redis.RedisError as exc:
        log.warning("rate limit check failed, letting the message through: %s", type(exc).__name__)
        return RateDecision(True)
    counts = {window: int(results[i]) for i, (window, _s) in enumerate(WINDOWS)}
    exceeded = [(w, s) for w, s in WINDOWS if counts[w] > limits.limit(w)]
    if not exceeded:
        return RateDecision(True)
    window, seconds = exceeded[-1]  # the longest window exceeded decides how long the wait is
    raw_notice = results[3]
    noticed_until = float(raw_notice) if raw_notice else 0.0
    try:
        conn.set(_key(conversation_hash, "notice"), str(max(noticed_until, at + seconds)), ex=seconds + 3600)
    except redis.RedisError as exc:
        log.warning("rate limit notice could not be stored: %s", type(exc).__name__)
    return RateDecision(False, notify=at >= noticed_until, window=window)


# KEYS: the customer's repeat key; ARGV: fingerprint, message id, TTL. The same message again (a retried job)
# gets its count back unchanged. Read and write in one round trip.
_REPEATS = lua.script("""
local last = {}
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then last = decoded end
end
if last['last'] == ARGV[2] then
  return tonumber(last['count']) or 1
end
local count = 1
if last['fp'] == ARGV[1] then
  count = (tonumber(last['count']) or 0) + 1
end
redis.call('SET', KEYS[1], cjson.encode({fp = ARGV[1], count = count, last = ARGV[2]}), 'EX', ARGV[3])
return count
""")


def count_repeats(conn: redis.Redis, conversation_hash: str, message_id: str, text: str) -> int:
    """How many times in a row the customer has now sent this same text (1 for a new one; 0 if unknown)."""
    fingerprint = " ".join(fold(text).split())
    if not fingerprint:
        return 0
    try:
        return int(_REPEATS(keys=[_key(conversation_hash, "repeat")], args=[fingerprint, message_id, REPEAT_TTL_S],
                            client=conn))
    except redis.RedisError as exc:
        log.warning("repeat detection failed: %s", type(exc).__name__)
        return 0


# -- cleaning what the customer typed ------------------------------------------------------------


@dataclass(frozen=True)
class CleanText:
    """The message as the router should read it, and what was odd about it."""

    text: str
    empty: bool = False
    emoji_only: bool = False
    truncated: bool = False
    had_markup: bool = False
    foreign: bool = False  # reads as English rather than Spanish


def _printable(text: str) -> str:
    """Without control and format characters (keeps line breaks and tabs as spaces)."""
    return "".join(
        " " if ch in "\n\t\r" else ch
        for ch in text
        if ch in "\n\t\r" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )


def clean(raw: str | None) -> CleanText:
    """Normalise a customer's text for routing: no control characters, no HTML tags, bounded length."""
    text = unicodedata.normalize("NFC", raw or "")
    text = _printable(text)
    had_markup = bool(_TAG.search(text))
    if had_markup:
        text = _TAG.sub(" ", text)
    text = html.unescape(text) if "&" in text else text
    text = _printable(text)
    text = _SPACES.sub(" ", text).strip()
    truncated = len(text) > ROUTED_MAX_CHARS
    if truncated:
        cut = text[:ROUTED_MAX_CHARS]
        text = cut.rsplit(" ", 1)[0] if " " in cut[-50:] else cut
    if not text:
        return CleanText("", empty=True, had_markup=had_markup)
    emoji_only = not any(ch.isalnum() for ch in text)
    return CleanText(text, emoji_only=emoji_only, truncated=truncated, had_markup=had_markup,
                     foreign=not emoji_only and _looks_english(text))


@cache
def _language_words() -> tuple[frozenset[str], frozenset[str]]:
    """The lexicon's English and Spanish words (`language` in chatbot/lexicon/es_sv.yaml)."""
    words = lexicon()["language"]
    return frozenset(map(str, words["english"])), frozenset(map(str, words["spanish"]))


def _looks_english(text: str) -> bool:
    """At least two English words of the lexicon's list, and more than twice as many as Spanish ones."""
    words = _WORDS.findall(fold(text))
    if len(words) < 2:
        return False
    english_words, spanish_words = _language_words()
    english = sum(w in english_words for w in words)
    spanish = sum(w in spanish_words for w in words)
    return english >= 2 and english > spanish * 2


def safe_name(text: str) -> str | None:
    """A name made safe to repeat back ("<b>María</b> López" -> "María López"), or None when too little or too
    much of one is left.

    Only letters, spaces, dots, apostrophes and hyphens survive, so whatever the bot repeats back is never
    markup or a command. It only cleans: which words of a message are the name ("Buenos días, mi nombre es
    María López") is the router's `name` entity (chatbot/router.py).
    """
    candidate = clean(text).text.strip(" .,-'")
    candidate = _SPACES.sub(" ", _NAME_CHARS.sub(" ", candidate)).strip(" .,-'")
    letters = sum(ch.isalpha() for ch in candidate)
    if letters < 2 or len(candidate) > NAME_MAX_CHARS or len(candidate.split()) > 6:
        return None
    return candidate


def first_name(profile_name: str | None) -> str | None:
    """The first word of a WhatsApp profile name, when it is a plausible name (letters only, short)."""
    name = safe_name(profile_name or "")
    first = name.split(" ")[0] if name else ""
    return first if 2 <= len(first) <= 20 and first.replace("'", "").replace("-", "").isalpha() else None


def phone_in(text: str) -> str | None:
    """A Salvadoran phone number typed in the text, as E.164 ("7000-0001" -> "+50370000001"), else None."""
    digits = "".join(_DIGITS.findall(text))
    if len(digits) == 8 and digits[0] in "267":
        return "+503" + digits
    if len(digits) == 11 and digits.startswith("503"):
        return "+" + digits
    return None
