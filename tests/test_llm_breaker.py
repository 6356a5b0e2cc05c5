"""The circuit breaker's states in Redis, shared by every process: closed -> open -> half-open -> closed."""

from __future__ import annotations

import redis

from llm import breaker

POLICY = breaker.BreakerPolicy(failures=3, window_s=60, cooldown_s=120)


def test_failures_within_the_window_open_then_one_trial_decides(redis_conn: redis.Redis) -> None:
    now = 1_000_000.0
    assert breaker.allow(redis_conn, "openai", now, POLICY)
    assert not breaker.record_failure(redis_conn, "openai", now, POLICY)
    assert not breaker.record_failure(redis_conn, "openai", now + 1, POLICY)
    assert breaker.record_failure(redis_conn, "openai", now + 2, POLICY)  # the third opens it
    assert breaker.state(redis_conn, "openai", now + 3) == "open"
    assert not breaker.allow(redis_conn, "openai", now + 100, POLICY)
    assert breaker.allow(redis_conn, "gemini", now + 100, POLICY)  # another provider is not affected
    # the cooldown is over: exactly one trial call, whoever asks first
    assert breaker.state(redis_conn, "openai", now + 123) == "half_open"
    assert breaker.allow(redis_conn, "openai", now + 123, POLICY)
    assert not breaker.allow(redis_conn, "openai", now + 123, POLICY)
    assert breaker.record_failure(redis_conn, "openai", now + 124, POLICY)  # the trial failed: open again
    assert not breaker.allow(redis_conn, "openai", now + 200, POLICY)
    assert breaker.allow(redis_conn, "openai", now + 245, POLICY)
    breaker.record_success(redis_conn, "openai")
    assert breaker.state(redis_conn, "openai", now + 246) == "closed"
    assert breaker.allow(redis_conn, "openai", now + 246, POLICY) and breaker.allow(redis_conn, "openai", now + 246,
                                                                                     POLICY)


def test_a_success_forgets_earlier_failures(redis_conn: redis.Redis) -> None:
    now = 2_000_000.0
    breaker.record_failure(redis_conn, "openai", now, POLICY)
    breaker.record_failure(redis_conn, "openai", now, POLICY)
    breaker.record_success(redis_conn, "openai")
    assert not breaker.record_failure(redis_conn, "openai", now, POLICY)
    assert breaker.state(redis_conn, "openai", now) == "closed"


def test_redis_down_lets_calls_through() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert breaker.allow(dead, "openai", 0.0, POLICY)
    assert not breaker.record_failure(dead, "openai", 0.0, POLICY)
    breaker.record_success(dead, "openai")
