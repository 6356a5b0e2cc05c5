"""What processes read about tenants is kept until a tenant changes (storage.tenant_changes.TenantCache).

Against the real Redis: a value is read once while nothing changes, read again within a check interval
of an announced change, a failed read caches nothing, and `on_change` runs for a change (not for the
first read). The end-to-end effects (a suspension, a new number, a new token seen without a restart)
are in test_tenants.py and test_tenant_sending.py.
"""

from __future__ import annotations

import time

import pytest
import redis

from storage import tenant_changes
from storage.tenant_changes import TenantCache


class Source:
    """The database a cache reads from: a value per key and a count of the reads."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {"acme": "v1"}
        self.reads: list[str] = []

    def load(self, key: str) -> str:
        self.reads.append(key)
        return self.values[key]


def test_a_value_is_read_once_until_a_change_is_announced(redis_conn: redis.Redis) -> None:
    source, changes = Source(), []
    cache: TenantCache[str, str] = TenantCache(redis_conn, source.load, on_change=lambda: changes.append(1))

    assert [cache.get("acme") for _ in range(50)] == ["v1"] * 50
    assert source.reads == ["acme"]
    assert changes == []  # the first look at the version is not a change

    source.values["acme"] = "v2"
    tenant_changes.announce(redis_conn)
    time.sleep(tenant_changes.CHECK_INTERVAL_S)
    assert cache.get("acme") == "v2"
    assert source.reads == ["acme", "acme"]
    assert changes == [1]


def test_an_entry_expires_when_an_announcement_was_lost(redis_conn: redis.Redis) -> None:
    source = Source()
    cache: TenantCache[str, str] = TenantCache(redis_conn, source.load, ttl_s=0.2)
    assert cache.get("acme") == "v1"
    source.values["acme"] = "v2"  # changed while Redis did not hear of it
    assert cache.get("acme") == "v1"
    time.sleep(0.25)
    assert cache.get("acme") == "v2"


def test_a_failed_read_is_not_cached(redis_conn: redis.Redis) -> None:
    source = Source()
    cache: TenantCache[str, str] = TenantCache(redis_conn, source.load)
    with pytest.raises(KeyError):
        cache.get("unknown")
    source.values["unknown"] = "created"
    assert cache.get("unknown") == "created"
    assert source.reads == ["unknown", "unknown"]
