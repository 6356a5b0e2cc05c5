"""Scheduled notification work: reminders on days 3/7/14 (controllable clock), retention, recovery,
the scheduler lock, and the rate limiter (issue 7)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from notifications import reminders, retention, schedule
from runtime.leader import Leader
from runtime.resources import Runtime, build_runtime
from sandbox_core.app import create_sandbox_app
from sandbox_core.server import BackgroundServer
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
from worker.scheduler import build_scheduler

MARIA = "+50370000002"


@pytest.fixture
def fresh_core() -> Iterator[tuple[str, FlaskClient]]:
    """A sandbox core of this test alone (its packages change status), with its control client."""
    sandbox = create_sandbox_app()
    with BackgroundServer(sandbox) as server, sandbox.test_client() as control:
        yield server.url, control


@pytest.fixture
def rt_factory() -> Iterator[Any]:
    built: list[Runtime] = []

    def build(settings: Settings) -> Runtime:
        rt = build_runtime(settings, pool_size=2)
        built.append(rt)
        return rt

    yield build
    for rt in built:
        rt.close()


def _days_pass(redis_conn: redis.Redis) -> None:
    """Days pass between reminders in these tests, but not on Redis's clock: empty the rate-limit buckets."""
    keys = list(redis_conn.scan_iter("throttle:*"))
    if keys:
        redis_conn.delete(*keys)


def test_reminders_go_on_days_3_7_and_14_after_arrival_and_stop_when_collected(
    meta_settings: Settings, fresh_core: tuple[str, FlaskClient], graph: FakeGraphAPI, db_pool: ConnectionPool,
    redis_conn: redis.Redis, rt_factory: Any,
) -> None:
    core_url, control = fresh_core
    settings = notification_settings(meta_settings, core_url)
    assert control.post("/sandbox/packages/SV20260106012345/status",
                        json={"status": "ARRIVED_AT_DESTINATION"}).status_code == 200
    arrival = datetime.now(UTC)
    with create_app(settings).test_client() as client:
        assert post_event(client, status_event("SV20260106012345", "ARRIVED_AT_DESTINATION")).status_code == 202
    run_jobs(settings)
    rt = rt_factory(settings)

    def remind_at(days: float) -> list[list[str]]:
        _days_pass(redis_conn)
        before = len(graph.messages_to(MARIA))
        reminders.send_reminders(rt, now=arrival + timedelta(days=days))
        sent = graph.messages_to(MARIA)[before:]
        return [[p["text"] for p in b["template"]["components"][0]["parameters"]] for b in sent]

    assert remind_at(1) == []
    assert remind_at(2) == []  # calendar days in company time
    assert remind_at(3) == [["María", "SV20260106012345", "Santa Ana - Punto Principal", "3", "12",
                             "lun-vie 8:00–18:00, sáb 8:00–13:00"]]
    assert remind_at(3.5) == []  # once per reminder day
    assert remind_at(6) == []
    assert [r[3:5] for r in remind_at(7)] == [["7", "8"]]
    assert remind_at(10) == []
    assert [r[3:5] for r in remind_at(14)] == [["14", "1"]]
    assert remind_at(14.5) == []
    assert remind_at(15) == []  # the package goes back on day 15: no more reminders
    kinds = [(n["kind"], n["package_status"]) for n in notifications(db_pool)]
    assert kinds == [("arrived", "ARRIVED_AT_DESTINATION"), ("pickup_reminder", "REMINDER_DAY_3"),
                     ("pickup_reminder", "REMINDER_DAY_7"), ("pickup_reminder", "REMINDER_DAY_14")]
    assert {b["template"]["name"] for b in template_sends(graph.sent)} == {"paquete_llego", "recordatorio_retiro"}


def test_a_collected_package_gets_no_reminder_and_a_missed_day_is_not_sent_late(
    meta_settings: Settings, fresh_core: tuple[str, FlaskClient], graph: FakeGraphAPI, db_pool: ConnectionPool,
    redis_conn: redis.Redis, rt_factory: Any,
) -> None:
    core_url, control = fresh_core
    settings = notification_settings(meta_settings, core_url)
    for code in ("SV20260106012345", "SV20260106012890"):
        control.post(f"/sandbox/packages/{code}/status", json={"status": "ARRIVED_AT_DESTINATION"})
    arrival = datetime.now(UTC)
    with create_app(settings).test_client() as client:
        for code in ("SV20260106012345", "SV20260106012890"):
            assert post_event(client, status_event(code, "ARRIVED_AT_DESTINATION")).status_code == 202
    run_jobs(settings)
    control.post("/sandbox/packages/SV20260106012345/status", json={"status": "DELIVERED"})
    rt = rt_factory(settings)
    _days_pass(redis_conn)
    reminders.send_reminders(rt, now=arrival + timedelta(days=8))  # the scheduler was down on day 3
    sent = [n for n in notifications(db_pool) if n["kind"] == "pickup_reminder"]
    assert [(n["tracking_code"], n["package_status"]) for n in sent] == [("SV20260106012890", "REMINDER_DAY_7")]
    assert graph.messages_to(MARIA)[1:] == []  # María's package was collected


def test_retention_erases_old_conversation_content_and_keeps_counts(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool, rt_factory: Any,
) -> None:
    settings = notification_settings(meta_settings, core_url)
    with create_app(settings).test_client() as client:
        for phone, wamid in (("50370000001", "wamid.R1"), ("50370000002", "wamid.R2"), ("50370000004", "wamid.R3")):
            assert post_meta(client, text_payload(phone, "Hola", wamid)).status_code == 200
    run_jobs(settings)
    convs = [r["id"] for r in rows(db_pool, "SELECT id FROM conversations ORDER BY id")]
    with db_pool.connection() as conn:
        # the first conversation is 91 days old; the second too, but escalated; the third is recent
        conn.execute("UPDATE conversations SET last_message_at = now() - interval '91 days' WHERE id = ANY(%s)",
                     (convs[:2],))
        conn.execute("INSERT INTO escalations (tenant_id, conversation_id, case_number, priority, reason)"
                     " SELECT tenant_id, id, 'CASE-R1', 'normal', 'complaint' FROM conversations WHERE id = %s",
                     (convs[1],))
    counts_before = rows(db_pool, "SELECT conversation_id, count(*) AS n FROM messages GROUP BY 1 ORDER BY 1")
    result = retention.apply_retention(rt_factory(settings))
    assert result.conversations == 1
    content = rows(db_pool, "SELECT conversation_id, bool_and(body IS NULL) AS erased FROM messages GROUP BY 1"
                            " ORDER BY 1")
    assert [c["erased"] for c in content] == [True, False, False]
    assert rows(db_pool, "SELECT conversation_id, count(*) AS n FROM messages GROUP BY 1 ORDER BY 1") == counts_before
    assert rows(db_pool, "SELECT count(*) AS n FROM webhook_events WHERE payload_encrypted = ''") == [{"n": 1}]
    [event] = rows(db_pool, "SELECT conversation_id, data FROM events WHERE kind = 'retention'")
    assert event["conversation_id"] is None and event["data"]["conversations"] == 1
    with db_pool.connection() as conn:  # a year later the escalated one goes too
        conn.execute("UPDATE conversations SET last_message_at = now() - interval '366 days' WHERE id = %s",
                     (convs[1],))
    assert retention.apply_retention(rt_factory(settings)).conversations == 2
    content = rows(db_pool, "SELECT conversation_id, bool_and(body IS NULL) AS erased FROM messages GROUP BY 1"
                            " ORDER BY 1")
    assert [c["erased"] for c in content] == [True, True, False]


def test_retention_keeps_the_values_of_a_notification_still_held(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool, rt_factory: Any,
) -> None:
    """A notification held (messaging limit, paused template; issue 17) still has to be sent: its names and
    amounts stay however old it is; a sent one's go."""
    settings = notification_settings(meta_settings, core_url)
    with create_app(settings).test_client() as client:
        for code in ("SV20260105007834", "SV20260106012345"):
            assert post_event(client, status_event(code, "ARRIVED_AT_DESTINATION")).status_code == 202
    run_jobs(settings)
    [sent, held] = [n["id"] for n in notifications(db_pool)]
    with db_pool.connection() as conn:
        conn.execute("UPDATE notification_log SET created_at = now() - interval '91 days' WHERE id = ANY(%s)",
                     ([sent, held],))
        conn.execute("UPDATE notification_log SET status = 'held', hold_reason = 'template_paused' WHERE id = %s",
                     (held,))
    assert retention.apply_retention(rt_factory(settings)).notification_values == 1
    kept = rows(db_pool, "SELECT id, values_encrypted IS NOT NULL AS kept FROM notification_log ORDER BY id")
    assert kept == [{"id": sent, "kept": False}, {"id": held, "kept": True}]


def test_events_stored_while_redis_was_down_are_queued_by_the_scheduler_pass(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool, rt_factory: Any,
) -> None:
    settings = notification_settings(meta_settings, core_url, recovery_min_age_s=0.0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_redis = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    with create_app(settings.with_overrides(redis_url=dead_redis)).test_client() as client:
        assert post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION")).status_code == 202
    assert rows(db_pool, "SELECT state FROM core_events") == [{"state": "received"}]
    result = schedule.run_pass(rt_factory(settings))
    assert result["events_queued"] == 1
    assert schedule.run_pass(rt_factory(settings))["events_queued"] == 0  # its job is on the queue
    run_jobs(settings)
    assert rows(db_pool, "SELECT state FROM core_events") == [{"state": "processed"}]
    assert [b["template"]["name"] for b in graph.messages_to(MARIA)] == ["paquete_llego"]


def test_only_the_scheduler_holding_the_lock_sends_what_is_due(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool,
    redis_conn: redis.Redis, rt_factory: Any,
) -> None:
    settings = notification_settings(meta_settings, core_url)
    graph.fail_next(status=400, code=130429, details="Cloud API message throughput has been reached.")
    with create_app(settings).test_client() as client:
        assert post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION")).status_code == 202
    run_jobs(settings)
    [note] = notifications(db_pool)
    assert note["status"] == "deferred"
    time.sleep(max(0.0, (note["send_after"] - datetime.now(UTC)).total_seconds()) + 0.2)
    rt_a, rt_b = rt_factory(settings), rt_factory(settings)
    leader_a, leader_b = Leader(rt_a.redis, lease_s=30), Leader(rt_b.redis, lease_s=30)
    jobs_a = {job.id: job for job in build_scheduler(rt_a, leader_a).get_jobs()}
    jobs_b = {job.id: job for job in build_scheduler(rt_b, leader_b).get_jobs()}
    assert {"notifications", "retention"} <= set(jobs_a) & set(jobs_b)
    assert leader_a.holds()
    jobs_b["notifications"].func()  # not the leader: does nothing
    assert graph.messages_to(MARIA) == []
    jobs_a["notifications"].func()
    assert [b["template"]["name"] for b in graph.messages_to(MARIA)] == ["paquete_llego"]
    jobs_a["notifications"].func()
    assert len(graph.messages_to(MARIA)) == 1
    leader_a.release()


def test_the_rate_limiter_keeps_a_burst_under_the_number_and_pair_limits(
    meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, tmp_path: Path,
) -> None:
    """Meta's limits enforced by the fake: our buckets keep every send under them, so none is refused.

    Our buckets space the sends when they take a token; Meta counts them when they arrive, and a loaded
    machine can delay one send more than the next. So the sender runs a little under the number's limit
    (6 of 8 a second here), as a deployment sets META_THROUGHPUT_MPS under its number's limit, and the
    second round waits a second longer than Meta's 6-second pair window."""
    codes = write_core_data(tmp_path / "core.json", 24, recipients=20)  # four customers get two packages
    graph.enforce_throughput(8)
    graph.enforce_pair_limit(1, 6.0)
    with BackgroundServer(create_sandbox_app(tmp_path / "core.json")) as core:
        settings = notification_settings(meta_settings, core.url, meta_throughput_mps=6)
        with create_app(settings).test_client() as client:
            for code in codes:
                assert post_event(client, status_event(code, "ARRIVED_AT_DESTINATION")).status_code == 202
        run_jobs(settings)
        assert len(graph.received) == len(graph.accepted)  # nothing refused with 130429 or 131056
        assert len(graph.accepted) == 20
        waiting = [n for n in notifications(db_pool) if n["status"] == "deferred"]
        assert len(waiting) == 4 and all(n["error"].startswith("throttled") for n in waiting)
        time.sleep(7.0)  # Meta's pair rate: one message per customer every 6 s
        rt = build_runtime(settings, pool_size=2)
        try:
            assert schedule.send_due(rt, datetime.now(UTC)) == 4
        finally:
            rt.close()
    assert len(graph.received) == len(graph.accepted) == 24
    recipients = [b["to"] for b in graph.sent]
    assert len(set(recipients)) == 20
