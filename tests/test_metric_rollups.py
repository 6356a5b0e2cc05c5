"""The rollups equal a recount from the raw rows (storage/metric_rollups.py against storage/metric_counts.py).

Generated data (tests/metrics_support.generate): three companies' customers over 36 hours across
midnight on El Salvador's clock, returning customers, replies and notifications whose statuses change
later, rows committed after the job's window passed their time, cases opened hours into a session.
The job runs every 23 minutes of that time (with `now` given), healing as the hours turn; then every
figure, for several ranges and companies, read from the rollups equals the same figure recounted.
The last test goes through the real pipeline: a signed webhook, the worker, then the scheduler's job.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask.testing import FlaskClient
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from config import Settings
from runtime.resources import build_runtime
from storage import metric_rollups, metrics
from storage.metric_counts import Sla, hour_of
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, run_jobs, text_payload, to_our_number
from tests.metrics_support import CATEGORIES, Rows, generate
from web.app import create_app
from worker import metrics_job

SV_TZ = "America/El_Salvador"
SV = ZoneInfo(SV_TZ)
START = datetime(2026, 11, 9, 12, tzinfo=SV)  # noon; the data runs to the next night, across midnight
SLA = Sla(normal_s=300, high_s=120)


def categories(_tenant: int) -> dict[str, str]:
    return CATEGORIES


def refresh(pool: ConnectionPool, now: datetime) -> metric_rollups.Refreshed:
    with pool.connection() as conn, conn.transaction():
        return metric_rollups.refresh(conn, now, sla=SLA, categories=categories)


def same(pool: ConnectionPool, tenants: list[int] | None, start: datetime, end: datetime) -> None:
    with pool.connection() as conn:
        rolled = metrics.operations(conn, tenants, start, end, SV_TZ)
        counted = metrics.recount(conn, tenants, start, end, SV_TZ, sla=SLA, categories=categories)
        assert dataclasses.replace(rolled, source="recount") == counted, (tenants, start, end)
        for metric in metrics.METRICS:
            for step in ("hour", "day"):
                assert metrics.series(conn, tenants, start, end, SV_TZ, metric, step) == metrics.recount_series(
                    conn, tenants, start, end, SV_TZ, metric, step, sla=SLA, categories=categories), (metric, step)


def test_rollups_equal_the_recount_on_generated_data(db_pool: ConnectionPool) -> None:
    with db_pool.connection() as conn:
        made = generate(conn, start=START, hours=36, tenants=3, customers=10)
    rows_late: dict[str, Any] = {}
    now = START
    end = START + timedelta(hours=40)
    healed = 0
    while now < end:
        done = refresh(db_pool, now)
        healed += done.healed_from is not None
        if not rows_late and now >= START + timedelta(hours=25):  # after the first deep heal (24 h)
            with db_pool.connection() as conn:
                rows = Rows(conn)
                # A receipt saying `failed` for notifications the rollups counted as sent, within the hour's heal.
                failed = conn.cursor(row_factory=tuple_row).execute(
                    "SELECT id FROM messages WHERE id = ANY(%s) AND status <> 'failed' AND created_at >= %s"
                    " AND created_at < %s", (made.notifications, hour_of(now) - timedelta(hours=1),
                                             now - timedelta(minutes=5))).fetchall()
                if failed:
                    for row in failed:
                        rows.set_status(row[0], "failed")
                    # A customer's message and a case committed only now, stamped 40 minutes ago (a long
                    # transaction): the job's window passed them already.
                    tenant, late_at = made.tenants[1], now - timedelta(minutes=40)
                    conversation = rows.conversation(tenant, rows.contact(tenant), late_at)
                    rows.customer_message(tenant, conversation, late_at, intent="late")
                    rows.escalation(tenant, conversation, late_at + timedelta(minutes=1), first_response_after_s=20)
                    rows_late = {"failed": len(failed), "tenant": tenant, "at": late_at}
        now += timedelta(minutes=23)
    assert rows_late["failed"] > 0 and healed >= 30  # the scenario did what it says

    day = datetime(2026, 11, 10, tzinfo=SV)
    ranges = [
        (START, START + timedelta(hours=36)),  # everything, across midnight
        (day, day + timedelta(days=1)),  # one day on the companies' clock
        (day - timedelta(hours=3), day + timedelta(hours=2)),  # a few hours across midnight
        (hour_of(rows_late["at"]), hour_of(rows_late["at"]) + timedelta(hours=2)),  # where the late rows went
    ]
    for start, stop in ranges:
        same(db_pool, None, start, stop)
        same(db_pool, [rows_late["tenant"]], start, stop)
    same(db_pool, made.tenants[:2], *ranges[0])
    with db_pool.connection() as conn:
        late = metrics.operations(conn, [rows_late["tenant"]], *ranges[3], SV_TZ)
        assert "late" in {i.intent for i in late.intents.top}  # the late rows made it in
        everything = metrics.operations(conn, None, *ranges[0], SV_TZ)
    assert everything.volume.conversations > 30 and everything.quality.escalation.numerator > 0
    assert everything.quality.response_time.replies > 0 and everything.cost.templates_utility_free >= 0


def test_a_message_through_the_pipeline_shows_in_the_figures(meta_settings: Settings, graph: FakeGraphAPI,
                                                            db_pool: ConnectionPool) -> None:
    with create_app(meta_settings).test_client() as client:
        assert _post(client, "50370001111", "hola", "wamid.metrics.1").status_code == 200
        assert _post(client, "50370002222", "¿a qué hora abren?", "wamid.metrics.2").status_code == 200
    run_jobs(meta_settings)
    rt = build_runtime(meta_settings, pool_size=1)
    try:
        now = datetime.now(UTC)
        done = metrics_job.refresh(rt, now + timedelta(minutes=1))  # past the job's lag
        assert done.hours >= 1
        with rt.pool.connection() as conn:
            found = conn.cursor(row_factory=tuple_row).execute("SELECT DISTINCT tenant_id FROM messages").fetchall()
            assert len(found) == 1
            tenant = int(found[0][0])
            start, stop = hour_of(now) - timedelta(hours=1), hour_of(now) + timedelta(hours=2)
            ops = metrics.operations(conn, [tenant], start, stop, SV_TZ)
            others = metrics.operations(conn, [tenant + 1000], start, stop, SV_TZ)
            hourly = metrics.series(conn, None, start, stop, SV_TZ, "customer_messages", "hour")
    finally:
        rt.close()
    assert ops.volume.conversations == 2 and ops.volume.customer_messages == 2 and ops.volume.unique_customers == 2
    assert ops.intents.routed == 2 and ops.quality.response_time.replies == 2  # accepted by the fake Graph API
    assert ops.quality.response_time.p95_s is not None and ops.quality.response_time.p95_s <= 60
    assert others.volume.customer_messages == 0
    assert sum(v or 0 for _, v in hourly) == 2


def _post(client: FlaskClient, phone: str, text: str, wamid: str) -> Any:
    return post_meta(client, to_our_number(text_payload(phone, text, wamid)))
