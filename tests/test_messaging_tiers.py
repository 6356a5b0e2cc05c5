"""Issue 17: WhatsApp's messaging-limit tiers for proactive sends (storage/messaging_limits.py,
notifications/limits.py): the tier per business account, the unique customers reached outside the window in
a rolling 24 hours, held notifications in priority order, released when the window rolls."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from psycopg_pool import ConnectionPool

from config import Settings
from notifications import limits, schedule
from runtime.resources import Runtime, build_runtime
from sandbox_core.app import create_sandbox_app
from sandbox_core.server import BackgroundServer
from storage import messaging_limits
from tests.console_support import logged_in, make_agent
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs, text_payload
from tests.notifications_helpers import (
    notification_settings,
    notifications,
    post_event,
    status_event,
    template_sends,
    write_core_data,
)
from web.app import create_app


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


# -- the tier at work: real web app, RQ worker, sandbox core and Graph fake ---------------------------------


@pytest.fixture
def tier_core(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A sandbox core with 302 packages: 300 to customers of their own, the last two to one more customer."""
    codes = write_core_data(tmp_path / "core.json", 302)
    data = json.loads((tmp_path / "core.json").read_text(encoding="utf-8"))
    for package in data["packages"][-2:]:
        package["recipient"]["phone"] = "+50379999999"
    (tmp_path / "core.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with BackgroundServer(create_sandbox_app(tmp_path / "core.json")) as core:
        yield core.url, codes


@pytest.fixture
def tier_settings(meta_settings: Settings, tier_core: tuple[str, list[str]]) -> Settings:
    return notification_settings(meta_settings, tier_core[0], notify_in_transit=True, messaging_limit_tier="250",
                                 meta_throughput_mps=1000)


@pytest.fixture
def rt(tier_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(tier_settings, pool_size=2)
    yield runtime
    runtime.close()


def _post(settings: Settings, events: list[tuple[str, str]]) -> None:
    with create_app(settings).test_client() as client:
        for code, status in events:
            assert post_event(client, status_event(code, status)).status_code == 202


def _templates_by_kind(graph: FakeGraphAPI) -> Counter[str]:
    names = {"paquete_llego": "arrived", "paquete_en_camino": "in_transit"}
    return Counter(names.get(b["template"]["name"], b["template"]["name"]) for b in template_sends(graph.sent))


def _used(rt: Runtime, now: datetime | None = None) -> int:
    with rt.pool.connection() as conn:
        tenant = int(conn.execute("SELECT id FROM tenants ORDER BY id LIMIT 1").fetchone()["id"])  # type: ignore[index]
        return sum(a.used for a in limits.usage(rt.redis, conn, rt.settings, tenant, now))


def test_a_burst_past_the_tier_goes_by_priority_and_the_rest_waits_visibly_until_the_window_rolls(
    tier_settings: Settings, tier_core: tuple[str, list[str]], graph: FakeGraphAPI, db_pool: ConnectionPool,
    rt: Runtime,
) -> None:
    """Tier 250, 300 events: 200 "en camino" first, then 100 "listo para retirar". Exactly 250 templates go:
    all 100 pickups and 150 in-transit; 50 wait with the reason on the admin's page; none lost; the 50 go when
    the 24 hours roll."""
    codes = tier_core[1][:300]
    _post(tier_settings, [(c, "IN_TRANSIT") for c in codes[:200]] + [(c, "ARRIVED_AT_DESTINATION")
                                                                      for c in codes[200:]])
    run_jobs(tier_settings)
    assert template_sends(graph.sent) == []  # the burst is larger than the tier: sorted by priority first
    assert Counter(n["status"] for n in notifications(db_pool)) == {"held": 300}
    make_agent(db_pool, "Alicia Admin", "alicia@primera.sv", role="admin")
    admin = logged_in(create_app(tier_settings), "alicia@primera.sv")
    sorting = admin.get("/console/templates").get_data(as_text=True)
    assert "300 avisos en espera" in sorting
    assert "son más avisos de los que permite el límite diario de WhatsApp (250 clientes en 24 h)" in sorting
    schedule.run_pass(rt)
    run_jobs(tier_settings)  # the released ones queued for the workers (the pass sent them already)
    assert _templates_by_kind(graph) == {"arrived": 100, "in_transit": 150}
    assert len({b["to"] for b in template_sends(graph.sent)}) == 250
    held = [n for n in notifications(db_pool) if n["status"] == "held"]
    assert len(held) == 50 and {n["kind"] for n in held} == {"in_transit"}
    assert {n["hold_reason"] for n in held} == {"messaging_limit"}
    assert _used(rt) == 250
    schedule.run_pass(rt)  # the window has not rolled: nothing more
    assert len(template_sends(graph.sent)) == 250

    page = admin.get("/console/templates").get_data(as_text=True)
    assert "Límite diario de WhatsApp" in page and "250 clientes en 24 h" in page
    assert re.search(r'class="limit-used">250</strong> \(lleno\)', page)
    assert "50 avisos en espera" in page
    assert page.count('class="held-notification"') == 50
    assert "En espera: se alcanzó el límite diario de WhatsApp (250 clientes en 24 h)" in page
    assert "Paquete en camino" in page

    later = datetime.now(UTC) + timedelta(hours=24, seconds=5)
    assert schedule.run_pass(rt, later)["released"] == 50
    run_jobs(tier_settings)
    assert _templates_by_kind(graph) == {"arrived": 100, "in_transit": 200}
    assert Counter(n["status"] for n in notifications(db_pool)) == {"accepted": 300}
    assert len(graph.sent) == 300  # 0 lost, none twice


def test_a_customer_counted_once_and_an_open_window_counted_never(
    tier_settings: Settings, tier_core: tuple[str, list[str]], graph: FakeGraphAPI, db_pool: ConnectionPool,
    rt: Runtime, redis_conn: redis.Redis,
) -> None:
    shared = tier_core[1][300:]  # two packages of +50379999999
    _post(tier_settings, [(shared[0], "ARRIVED_AT_DESTINATION")])
    run_jobs(tier_settings)
    assert _used(rt) == 1
    _post(tier_settings, [(shared[1], "ARRIVED_AT_DESTINATION")])
    run_jobs(tier_settings)
    for key in redis_conn.scan_iter("throttle:*"):  # Meta's pair rate is not what this test waits for
        redis_conn.delete(key)
    schedule.run_pass(rt, datetime.now(UTC) + timedelta(seconds=10))
    assert [b["to"] for b in template_sends(graph.sent)] == ["+50379999999", "+50379999999"]
    assert _used(rt) == 1  # the same customer: one of the 250
    for key in redis_conn.scan_iter("msglimit:*"):  # Redis lost its data: the count comes back from the log
        redis_conn.delete(key)
    assert _used(rt) == 1

    # a customer who wrote to us has an open window: the notice goes free-form and is not counted
    body = text_payload("50371000007", "hola", "wamid.TIER-OPEN-WINDOW")
    assert post_meta(create_app(tier_settings).test_client(), body).status_code == 200
    run_jobs(tier_settings)
    _post(tier_settings, [(tier_core[1][7], "ARRIVED_AT_DESTINATION")])
    run_jobs(tier_settings)
    to_her = graph.messages_to("+50371000007")
    assert to_her and to_her[-1]["type"] == "interactive"
    assert _used(rt) == 1
    assert rows(db_pool, "SELECT mode FROM notification_log WHERE tracking_code = %s", (tier_core[1][7],)) == [
        {"mode": "free_form"}]


def test_a_tier_from_meta_replaces_the_configured_one_and_releases_what_fits(
    tier_settings: Settings, tier_core: tuple[str, list[str]], graph: FakeGraphAPI, db_pool: ConnectionPool,
    rt: Runtime,
) -> None:
    codes = tier_core[1][:260]
    _post(tier_settings, [(c, "ARRIVED_AT_DESTINATION") for c in codes])
    run_jobs(tier_settings)
    assert len(limits.release_pass(rt, datetime.now(UTC))) == 250
    assert limits.release_pass(rt, datetime.now(UTC)) == []  # their places are promised, though not taken yet
    schedule.run_pass(rt)
    assert len(template_sends(graph.sent)) == 250
    with db_pool.connection() as conn:
        tenant = int(conn.execute("SELECT id FROM tenants ORDER BY id LIMIT 1").fetchone()["id"])  # type: ignore[index]
        messaging_limits.set_tier(conn, tenant_id=tenant, account_id="", tier=2000, source="webhook")
    schedule.run_pass(rt)
    run_jobs(tier_settings)
    assert len(template_sends(graph.sent)) == 260
    assert [n for n in notifications(db_pool) if n["status"] == "held"] == []


def test_the_operator_records_a_tier_and_a_tier_meta_does_not_have_is_refused(
    base_env: dict[str, str], db_pool: ConnectionPool,
) -> None:
    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=Path(__file__).parent.parent,
                              capture_output=True, text=True, env={**os.environ, **base_env}, timeout=60,
                              check=False)

    slug = rows(db_pool, "SELECT slug FROM tenants ORDER BY id LIMIT 1")[0]["slug"]
    done = admin("messaging-limit", "--slug", slug, "--tier", "10000", "--waba-id", "102290129340398")
    assert done.returncode == 0 and "messaging limit 10000" in done.stdout, done.stderr
    refused = admin("messaging-limit", "--slug", slug, "--tier", "5000")
    assert refused.returncode == 1 and "not a messaging-limit tier" in refused.stdout
    assert rows(db_pool, "SELECT account_id, tier, source FROM messaging_limits") == [
        {"account_id": "102290129340398", "tier": 10000, "source": "config"}]


def test_a_free_form_notice_refused_for_the_window_waits_as_the_template_when_the_tier_is_full(
    tier_settings: Settings, tier_core: tuple[str, list[str]], graph: FakeGraphAPI, db_pool: ConnectionPool,
    rt: Runtime,
) -> None:
    codes = tier_core[1]
    _post(tier_settings, [(c, "ARRIVED_AT_DESTINATION") for c in codes[:250]])
    run_jobs(tier_settings)
    assert len(template_sends(graph.sent)) == 250 and _used(rt) == 250
    body = text_payload("50371000299", "hola", "wamid.TIER-WINDOW")  # our clock: her window is open
    assert post_meta(create_app(tier_settings).test_client(), body).status_code == 200
    run_jobs(tier_settings)
    graph.fail_next(status=400, code=131047, details="More than 24 hours have passed since the recipient last "
                                                     "replied to the sender number.")
    _post(tier_settings, [(codes[299], "ARRIVED_AT_DESTINATION")])
    run_jobs(tier_settings)
    [note] = rows(db_pool, "SELECT status, hold_reason, mode FROM notification_log WHERE tracking_code = %s",
                  (codes[299],))
    assert note == {"status": "held", "hold_reason": "messaging_limit", "mode": "template"}
    schedule.run_pass(rt, datetime.now(UTC) + timedelta(hours=24, seconds=5))
    to_her = graph.messages_to("+50371000299")
    assert to_her[-1]["type"] == "template"
    assert rows(db_pool, "SELECT status FROM notification_log WHERE tracking_code = %s", (codes[299],)) == [
        {"status": "accepted"}]
