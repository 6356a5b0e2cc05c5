"""Issue 17: WhatsApp's messaging-limit tiers for proactive sends (storage/messaging_limits.py,
notifications/limits.py): the tier per business account, the unique customers reached outside the window in
a rolling 24 hours, held notifications in priority order, released when the window rolls."""

from __future__ import annotations

import pytest
from psycopg_pool import ConnectionPool

from storage import messaging_limits


@pytest.mark.parametrize(("value", "tier"), [
    (250, 250), ("2000", 2000), ("2.000", 2000), ("TIER_2K", 2000), ("TIER_10K", 10000), (100000, 100000),
    ("TIER_100K", 100000), (-1, None), ("TIER_UNLIMITED", None), ("unlimited", None), (None, None),
])
def test_meta_tiers_are_read_in_all_their_spellings(value: object, tier: int | None) -> None:
    assert messaging_limits.parse_tier(value) == tier


@pytest.mark.parametrize("value", [300, "1000", "TIER_1K", 0, True, "mucho"])
def test_a_tier_not_meta_s_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="tier"):
        messaging_limits.parse_tier(value)


def test_set_tier_records_the_change_and_the_previous_value(db_pool: ConnectionPool) -> None:
    with db_pool.connection() as conn:
        tenant = int(conn.execute("SELECT id FROM tenants ORDER BY id LIMIT 1").fetchone()["id"])  # type: ignore[index]
        assert messaging_limits.tier_of(conn, tenant, "waba-1") is None
        assert messaging_limits.set_tier(conn, tenant_id=tenant, account_id="", tier=250, source="config")
        assert messaging_limits.tier_of(conn, tenant, "waba-1").tier == 250  # the company-wide one
        assert messaging_limits.set_tier(conn, tenant_id=tenant, account_id="waba-1", tier=2000, source="webhook")
        assert not messaging_limits.set_tier(conn, tenant_id=tenant, account_id="waba-1", tier=2000,
                                             source="webhook")
        assert messaging_limits.set_tier(conn, tenant_id=tenant, account_id="waba-1", tier=None, source="webhook")
        row = messaging_limits.tier_of(conn, tenant, "waba-1")
        assert (row.tier, row.previous_tier, row.source) == (None, 2000, "webhook")
        assert [t.account_id for t in messaging_limits.tiers_of_tenant(conn, tenant)] == ["", "waba-1"]
        with pytest.raises(ValueError):
            messaging_limits.set_tier(conn, tenant_id=tenant, account_id="", tier=300, source="config")
