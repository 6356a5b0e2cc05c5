"""The circuit breaker around the model provider, shared by every worker process through Redis.

Keys (one family per provider name): `llm:breaker:{provider}:failures`
(a counter that lives one window), `…:open_until` (epoch seconds while the
circuit is open) and `…:probe` (the one trial call allowed once the cooldown
is over: half-open). `LLM_BREAKER_FAILURES` failures within
`LLM_BREAKER_WINDOW_S` open the circuit for `LLM_BREAKER_COOLDOWN_S`; while
open the bot is rules-only and only the logs and the `llm_calls` rows
(outcome `skipped`) say so. A successful trial closes it; a failed one opens
it again.

Failure policy: Redis errors are logged and never raised; with Redis down the
breaker lets calls through (the request timeouts still bound them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)

KEY = "llm:breaker:{provider}:{part}"


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int
    window_s: int
    cooldown_s: int


def _key(provider: str, part: str) -> str:
    return KEY.format(provider=provider, part=part)


def state(conn: redis.Redis, provider: str, now: float) -> str:
    """closed | open | half_open (for logs, metrics and tests)."""
    raw = conn.get(_key(provider, "open_until"))
    if raw is None:
        return "closed"
    return "open" if now < float(raw) else "half_open"


def allow(conn: redis.Redis, provider: str, now: float, policy: BreakerPolicy) -> bool:
    """Whether a call may be made now: closed, or the single trial call after the cooldown."""
    try:
        raw = conn.get(_key(provider, "open_until"))
        if raw is None:
            return True
        if now < float(raw):
            return False
        return bool(conn.set(_key(provider, "probe"), "1", nx=True, ex=max(1, policy.cooldown_s)))
    except (redis.RedisError, ValueError) as exc:
        log.warning("llm breaker unreadable (%s); allowing the call", type(exc).__name__)
        return True


def record_success(conn: redis.Redis, provider: str) -> None:
    try:
        was_open = conn.delete(_key(provider, "open_until"))
        conn.delete(_key(provider, "failures"), _key(provider, "probe"))
    except redis.RedisError as exc:
        log.warning("llm breaker not updated (%s)", type(exc).__name__)
        return
    if was_open:
        log.warning("llm circuit closed: provider %s answers again", provider)


def record_failure(conn: redis.Redis, provider: str, now: float, policy: BreakerPolicy) -> bool:
    """Count one failure; True when this failure opened (or re-opened) the circuit."""
    try:
        if conn.exists(_key(provider, "open_until")):  # the trial call failed: open again
            _open(conn, provider, now, policy)
            return True
        pipe = conn.pipeline()
        pipe.incr(_key(provider, "failures"))
        pipe.expire(_key(provider, "failures"), max(1, policy.window_s), nx=True)
        count = int(pipe.execute()[0])
        if count >= policy.failures:
            _open(conn, provider, now, policy)
            return True
    except redis.RedisError as exc:
        log.warning("llm breaker not updated (%s)", type(exc).__name__)
    return False


def _open(conn: redis.Redis, provider: str, now: float, policy: BreakerPolicy) -> None:
    pipe = conn.pipeline()
    pipe.set(_key(provider, "open_until"), repr(now + policy.cooldown_s))
    pipe.delete(_key(provider, "failures"), _key(provider, "probe"))
    pipe.execute()
    log.warning("llm circuit open: provider %s failing; rules only for %ss", provider, policy.cooldown_s)
