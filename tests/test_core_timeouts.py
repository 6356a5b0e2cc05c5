"""runtime/core_timeouts.py through runtime/cores.py: every client a `TenantCores` builds counts its core's timeouts."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis
from psycopg_pool import ConnectionPool

from config import Settings
from core_api_client import CoreUnavailable
from runtime import core_timeouts
from runtime.cores import TenantCores, core_url
from storage.crypto import Vault
from tests.harness import rows


@pytest.fixture
def silent_core() -> Iterator[str]:
    """A core that accepts connections and never answers (each request times out)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def closed_port() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


def cores(settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis) -> TenantCores:
    return TenantCores(settings, pool, redis_conn, Vault(settings.phone_encryption_keys, settings.phone_hash_key),
                       timeout_s=0.2)


def test_each_attempt_that_times_out_is_counted_for_that_core(
        settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis, silent_core: str) -> None:
    settings = settings.with_overrides(core_api_url=silent_core)
    tenant_id = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    tenant_cores = cores(settings, db_pool, redis_conn)
    try:
        with pytest.raises(CoreUnavailable):
            tenant_cores.client(tenant_id).track("SV20260106012345")  # a GET: tried twice
        with pytest.raises(CoreUnavailable):
            tenant_cores.client(tenant_id).company()
    finally:
        tenant_cores.close()
    now = time.time()
    assert core_url(settings, settings.tenant_slug, None) == silent_core
    assert core_timeouts.count(redis_conn, silent_core, now) == 4
    assert core_timeouts.count(redis_conn, silent_core + "/", now) == 4  # the same core
    assert core_timeouts.count(redis_conn, "http://127.0.0.1:1", now) == 0
    [key] = redis_conn.keys("core:timeouts:*")
    assert 0 < redis_conn.ttl(key) <= core_timeouts.TTL_S


def test_a_refused_connection_is_not_a_timeout(
        settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    down = closed_port()
    settings = settings.with_overrides(core_api_url=down)
    tenant_id = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    tenant_cores = cores(settings, db_pool, redis_conn)
    try:
        with pytest.raises(CoreUnavailable):
            tenant_cores.client(tenant_id).track("SV20260106012345")
    finally:
        tenant_cores.close()
    assert core_timeouts.count(redis_conn, down, time.time()) == 0


def test_hours_are_counted_apart_and_read_back_over_a_window(redis_conn: redis.Redis) -> None:
    url, hour = "https://core.example.sv", 1_800_000_000 // 3600 * 3600
    for moment in (hour - 10, hour + 5, hour + 3000):
        core_timeouts.record(redis_conn, url, moment)
    assert core_timeouts.count(redis_conn, url, hour + 10) == 2
    assert core_timeouts.count(redis_conn, url, hour + 10, hours=2) == 3
    assert core_timeouts.count(redis_conn, url, hour + 3600) == 0
