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

Each bucket lives in one hash per key; one Lua script takes a token from all
the buckets of a send at once (or from none), so
concurrent workers on any machine see the same count; the clock is Redis's
own `TIME`, so workers' clocks do not matter.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import cast

import redis

from runtime import lua

log = logging.getLogger(__name__)

THROUGHPUT_KEY = "throttle:number:{number}"
PAIR_KEY = "throttle:pair:{number}:{recipient_hash}"

PAIR_RATE_PER_S = 1 / 6
PAIR_BURST = 10

# KEYS: the buckets; ARGV: now (seconds, or "" for Redis TIME), then rate per second and burst of each bucket.
# A token is taken from every bucket, or from none: the answer is the longest wait among the buckets
# that are empty (as a string, "0" when the tokens were taken).
_LUA = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local tokens, stamps, wait = {}, {}, 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local have = tonumber(state[1])
  local ts = tonumber(state[2])
  if have == nil or ts == nil then
    have = burst
    ts = now
  end
  if now > ts then
    have = math.min(burst, have + (now - ts) * rate)
    ts = now
  end
  tokens[i] = have
  stamps[i] = ts
  if have < 1 then
    wait = math.max(wait, (1 - have) / rate)
  end
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local have = tokens[i]
  if wait == 0 then
    have = have - 1
  end
  redis.call('HSET', key, 'tokens', have, 'ts', stamps[i])
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
end
return string.format('%.6f', wait)
"""
_TAKE = lua.script(_LUA)


@dataclass(frozen=True)
class Bucket:
    key: str
    rate_per_s: float
    burst: int


def acquire(
    redis_conn: redis.Redis, key: str, rate_per_s: float, burst: int, now: float | None = None
) -> float:
    """Take one token from the bucket at `key`: 0.0 when taken, else the seconds to wait.

    When the answer is above zero no token was taken: wait that long and call
    again. `now` (seconds) replaces Redis's clock, for tests. Redis errors are
    raised: the caller decides whether to send unthrottled or retry.
    """
    return acquire_all(redis_conn, [Bucket(key, rate_per_s, burst)], now)


def acquire_all(redis_conn: redis.Redis, buckets: list[Bucket], now: float | None = None) -> float:
    """Take one token from each bucket in one round trip, all or none: 0.0 when taken, else the longest wait."""
    if not buckets:
        return 0.0
    if any(b.rate_per_s <= 0 or b.burst < 1 for b in buckets):
        raise ValueError("rate_per_s must be > 0 and burst >= 1")
    args = ["" if now is None else repr(float(now))]
    for bucket in buckets:
        args += [repr(float(bucket.rate_per_s)), str(int(bucket.burst))]
    keys = [bucket.key for bucket in buckets]
    raw = cast(bytes | str, _TAKE(keys=keys, args=args, client=redis_conn))
    return float(raw.decode() if isinstance(raw, bytes) else raw)


def take(redis_conn: redis.Redis, buckets: list[Bucket], max_wait_s: float) -> float:
    """A token from every bucket for one send: 0.0 once taken. Waits up to `max_wait_s` are slept here;
    a longer one is returned (nothing taken: the caller retries later). Redis down: logged, 0.0 (the send
    goes out unthrottled rather than not at all)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        try:
            wait = acquire_all(redis_conn, buckets)
        except redis.RedisError as exc:
            log.warning("throttle unavailable, sending unthrottled (%s)", type(exc).__name__)
            return 0.0
        if wait <= 0:
            return 0.0
        if time.monotonic() + wait > deadline:
            return wait
        time.sleep(wait)


def recipient_hash(recipient: str) -> str:
    """A short stable hash of a phone number or BSUID, used in keys instead of the number itself."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:20]


def throughput_key(number: str) -> str:
    """The bucket of one business number (Meta phone_number_id or Twilio sender)."""
    return THROUGHPUT_KEY.format(number=number)


def pair_key(number: str, recipient: str) -> str:
    """The bucket of one (business number, customer) pair; `recipient` is the phone or BSUID."""
    return PAIR_KEY.format(number=number, recipient_hash=recipient_hash(recipient))
