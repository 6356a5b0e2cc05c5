"""runtime.throttle: a Redis token bucket shared by every worker process."""

from __future__ import annotations

import threading

import pytest
import redis

from runtime import throttle

T0 = 1_700_000_000.0


def test_burst_then_wait_then_refill(redis_conn: redis.Redis) -> None:
    key = throttle.throughput_key("106540352242922")
    assert [throttle.acquire(redis_conn, key, 1.0, 3, now=T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = throttle.acquire(redis_conn, key, 1.0, 3, now=T0)
    assert wait == pytest.approx(1.0)
    # no token was taken by the refused call: after the wait exactly one is there
    assert throttle.acquire(redis_conn, key, 1.0, 3, now=T0 + 1.0) == 0.0
    assert throttle.acquire(redis_conn, key, 1.0, 3, now=T0 + 1.0) > 0.0


def test_wait_is_what_the_rate_needs(redis_conn: redis.Redis) -> None:
    key = "throttle:test:rate"
    assert throttle.acquire(redis_conn, key, 4.0, 1, now=T0) == 0.0
    assert throttle.acquire(redis_conn, key, 4.0, 1, now=T0 + 0.1) == pytest.approx(0.15)
    assert throttle.acquire(redis_conn, key, 4.0, 1, now=T0 + 0.25) == 0.0


def test_refill_never_exceeds_the_burst(redis_conn: redis.Redis) -> None:
    key = "throttle:test:cap"
    throttle.acquire(redis_conn, key, 1.0, 2, now=T0)
    later = T0 + 3600
    waits = [throttle.acquire(redis_conn, key, 1.0, 2, now=later) for _ in range(3)]
    assert waits[:2] == [0.0, 0.0] and waits[2] == pytest.approx(1.0)


def test_keys_are_isolated(redis_conn: redis.Redis) -> None:
    first = throttle.pair_key("106540352242922", "+50370000001")
    second = throttle.pair_key("106540352242922", "+50370000002")
    assert throttle.acquire(redis_conn, first, throttle.PAIR_RATE_PER_S, 1, now=T0) == 0.0
    assert throttle.acquire(redis_conn, first, throttle.PAIR_RATE_PER_S, 1, now=T0) == pytest.approx(6.0)
    assert throttle.acquire(redis_conn, second, throttle.PAIR_RATE_PER_S, 1, now=T0) == 0.0


def test_pair_key_hides_the_phone_number_and_expires(redis_conn: redis.Redis) -> None:
    key = throttle.pair_key("106540352242922", "+50370000001")
    assert key.startswith("throttle:pair:106540352242922:") and "70000001" not in key
    throttle.acquire(redis_conn, key, throttle.PAIR_RATE_PER_S, throttle.PAIR_BURST)
    assert 0 < redis_conn.pttl(key) <= (throttle.PAIR_BURST * 6 + 1) * 1000


def test_redis_clock_is_used_without_now(redis_conn: redis.Redis) -> None:
    key = "throttle:test:server-time"
    assert throttle.acquire(redis_conn, key, 0.5, 2) == 0.0
    assert throttle.acquire(redis_conn, key, 0.5, 2) == 0.0
    assert 0.0 < throttle.acquire(redis_conn, key, 0.5, 2) <= 2.0


def test_concurrent_workers_never_take_more_than_the_burst(redis_conn: redis.Redis,
                                                          services: dict[str, str]) -> None:
    key = "throttle:test:concurrent"
    results: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = redis.Redis.from_url(services["redis_url"])
        for _ in range(5):
            wait = throttle.acquire(conn, key, 0.001, 7)
            with lock:
                results.append(wait)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 40
    assert results.count(0.0) == 7


def test_script_is_reloaded_after_a_flush(redis_conn: redis.Redis) -> None:
    redis_conn.script_flush()
    assert throttle.acquire(redis_conn, "throttle:test:flush", 1.0, 1, now=T0) == 0.0


def test_invalid_rates_are_refused(redis_conn: redis.Redis) -> None:
    with pytest.raises(ValueError):
        throttle.acquire(redis_conn, "k", 0, 1)
    with pytest.raises(ValueError):
        throttle.acquire(redis_conn, "k", 1, 0)


def test_a_send_takes_from_both_buckets_or_from_neither(redis_conn: redis.Redis) -> None:
    pair = throttle.Bucket(throttle.pair_key("106540352242922", "+50370000001"), throttle.PAIR_RATE_PER_S, 1)
    number = throttle.Bucket(throttle.throughput_key("106540352242922"), 2.0, 2)
    assert throttle.acquire_all(redis_conn, [pair, number], now=T0) == 0.0
    # The customer's pair bucket is empty: nothing is taken from the number's bucket either.
    assert throttle.acquire_all(redis_conn, [pair, number], now=T0) == pytest.approx(6.0)
    other = throttle.Bucket(throttle.pair_key("106540352242922", "+50370000002"), throttle.PAIR_RATE_PER_S, 1)
    assert throttle.acquire_all(redis_conn, [other, number], now=T0) == 0.0  # the number still had its 2nd token
    third = throttle.Bucket(throttle.pair_key("106540352242922", "+50370000003"), throttle.PAIR_RATE_PER_S, 1)
    assert throttle.acquire_all(redis_conn, [third, number], now=T0) == pytest.approx(0.5)  # now the number waits
    assert throttle.acquire_all(redis_conn, [third, number], now=T0 + 0.5) == 0.0  # its pair token was kept
