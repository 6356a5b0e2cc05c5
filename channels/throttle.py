"""Token buckets in Redis that keep our sends under WhatsApp's rate limits, across all workers.

Two limits matter (CONTRACT §2.5):

- throughput: 80 messages per second per business number (Meta answers 130429
  above it). Key `THROUGHPUT_KEY`, rate = `Settings.meta_throughput_mps`,
  burst = the same number.
- pair rate: about one message every 6 seconds to the same customer (Meta
  answers 131056). Meta tolerates bursts of 45 in 6 s by borrowing from the
  future; we allow a burst of 10, enough for a reply of several bubbles, and
  refill at 1/6 per second. Key `PAIR_KEY`; the customer is hashed so no phone
  number is written to Redis.

The bucket lives in one hash per key and is updated by one Lua script, so
concurrent workers on any machine see the same count; the clock is Redis's
own `TIME`, so workers' clocks do not matter.
"""

from __future__ import annotations

import hashlib
from typing import cast

import redis

THROUGHPUT_KEY = "throttle:number:{number}"
PAIR_KEY = "throttle:pair:{number}:{recipient_hash}"

PAIR_RATE_PER_S = 1 / 6
PAIR_BURST = 10

# KEYS[1] bucket; ARGV: rate per second, burst, now (seconds, or "" for Redis TIME).
# Returns the seconds to wait as a string ("0" when a token was taken).
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', ts)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""
_LUA_SHA = hashlib.sha1(_LUA.encode(), usedforsecurity=False).hexdigest()


def acquire(
    redis_conn: redis.Redis, key: str, rate_per_s: float, burst: int, now: float | None = None
) -> float:
    """Take one token from the bucket at `key`: 0.0 when taken, else the seconds to wait.

    When the answer is above zero no token was taken: wait that long and call
    again. `now` (seconds) replaces Redis's clock, for tests. Redis errors are
    raised: the caller decides whether to send unthrottled or retry.
    """
    if rate_per_s <= 0 or burst < 1:
        raise ValueError("rate_per_s must be > 0 and burst >= 1")
    args = (repr(float(rate_per_s)), str(int(burst)), "" if now is None else repr(float(now)))
    try:
        result = redis_conn.evalsha(_LUA_SHA, 1, key, *args)
    except redis.exceptions.NoScriptError:
        result = redis_conn.eval(_LUA, 1, key, *args)
    raw = cast(bytes | str, result)
    return float(raw.decode() if isinstance(raw, bytes) else raw)


def recipient_hash(recipient: str) -> str:
    """A short stable hash of a phone number or BSUID, used in keys instead of the number itself."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:20]


def throughput_key(number: str) -> str:
    """The bucket of one business number (Meta phone_number_id or Twilio sender)."""
    return THROUGHPUT_KEY.format(number=number)


def pair_key(number: str, recipient: str) -> str:
    """The bucket of one (business number, customer) pair; `recipient` is the phone or BSUID."""
    return PAIR_KEY.format(number=number, recipient_hash=recipient_hash(recipient))
