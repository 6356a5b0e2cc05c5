"""Faults: re-delivery, Redis or PostgreSQL down, provider errors, a worker killed mid-job, concurrency.

Nothing is lost and no customer gets the same reply twice.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from rq import Worker

from config import Settings
from runtime import delivery
from runtime.resources import build_runtime
from tests.conftest import load_fixture
from tests.fakes.graph_api import DEFAULT_TOKEN, FakeGraphAPI
from tests.harness import (
    outbound,
    post_meta,
    rows,
    run_jobs,
    start_worker,
    stop,
    text_payload,
    to_our_number,
    wait_for,
    worker_env,
)
from web.app import create_app
from worker import jobs, recovery


def closed_port_url(scheme: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if scheme == "redis":
        return f"redis://127.0.0.1:{port}/0"
    return f"postgresql://encargo@127.0.0.1:{port}/encargo"


@pytest.fixture
def meta_settings(settings: Settings, graph: FakeGraphAPI) -> Settings:
    return settings.with_overrides(whatsapp_provider="meta", meta_access_token=DEFAULT_TOKEN,
                                   meta_graph_base_url=graph.url, simulator_enabled=False,
                                   recovery_min_age_s=0.0)


@pytest.fixture
def client(meta_settings: Settings) -> Iterator[FlaskClient]:
    with create_app(meta_settings).test_client() as c:
        yield c


def test_redelivered_message_is_processed_once(client: FlaskClient, meta_settings: Settings,
                                               graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    payload = text_payload("50370000001", "Hola", "wamid.SAME")
    for _ in range(3):
        assert post_meta(client, payload).status_code == 200
    run_jobs(meta_settings)
    post_meta(client, payload)  # Meta re-delivers days later
    run_jobs(meta_settings)
    assert len(rows(db_pool, "SELECT id FROM webhook_events")) == 1
    assert len(graph.messages_to("+50370000001")) == 2


def test_redis_down_event_is_stored_and_processed_later(meta_settings: Settings, graph: FakeGraphAPI,
                                                        db_pool: ConnectionPool) -> None:
    down = create_app(meta_settings.with_overrides(redis_url=closed_port_url("redis")))
    with down.test_client() as c:
        assert post_meta(c, text_payload("50370000001", "Hola", "wamid.R1")).status_code == 200
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "received"}]
    assert graph.sent == []
    # Redis is back: the scheduler's recovery loop queues the event, a worker answers it.
    rt = build_runtime(meta_settings, pool_size=1)
    try:
        assert recovery.recover_events(rt) == 1
        assert recovery.recover_events(rt) == 0  # queued once, not again while its job exists
    finally:
        rt.close()
    run_jobs(meta_settings)
    assert len(graph.messages_to("+50370000001")) == 2
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "processed"}]


def test_postgres_down_event_is_queued_and_stored_by_the_job(meta_settings: Settings, graph: FakeGraphAPI,
                                                             db_pool: ConnectionPool) -> None:
    down = create_app(meta_settings.with_overrides(database_url=closed_port_url("postgresql")))
    payload = text_payload("50370000001", "Hola", "wamid.P1")
    with down.test_client() as c:
        assert post_meta(c, payload).status_code == 200
        assert post_meta(c, payload).status_code == 200  # re-delivery while the database is down
    assert rows(db_pool, "SELECT id FROM webhook_events") == []
    run_jobs(meta_settings)  # the database is reachable for the worker
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "processed"}]
    assert len(graph.messages_to("+50370000001")) == 2
    # and when Meta re-delivers once more after the database is back, it is still a duplicate
    with create_app(meta_settings).test_client() as c:
        assert post_meta(c, payload).status_code == 200
    run_jobs(meta_settings)
    assert len(graph.messages_to("+50370000001")) == 2


def test_both_stores_down_answers_503(meta_settings: Settings, graph: FakeGraphAPI,
                                      db_pool: ConnectionPool) -> None:
    down = create_app(meta_settings.with_overrides(redis_url=closed_port_url("redis"),
                                                   database_url=closed_port_url("postgresql")))
    payload = text_payload("50370000001", "Hola", "wamid.X1")
    with down.test_client() as c:
        resp = post_meta(c, payload)
    assert resp.status_code == 503
    assert "retry" in resp.get_json()["error"]
    # Meta keeps the message and delivers it again once we are back: answered once, nothing lost
    with create_app(meta_settings).test_client() as c:
        assert post_meta(c, payload).status_code == 200
        assert post_meta(c, payload).status_code == 200
    run_jobs(meta_settings)
    assert len(graph.messages_to("+50370000001")) == 2
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "processed"}]


def test_readiness_reports_each_store(meta_settings: Settings) -> None:
    with create_app(meta_settings).test_client() as c:
        assert c.get("/healthz").get_json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200
        assert ready.get_json()["checks"] == {"postgresql": True, "redis": True}
    with create_app(meta_settings.with_overrides(redis_url=closed_port_url("redis"))).test_client() as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"] == {"postgresql": True, "redis": False}


@pytest.mark.parametrize(("status", "code"), [(500, 131000), (429, 130429), (503, 2)])
def test_provider_outage_is_retried_and_delivered_later(client: FlaskClient, meta_settings: Settings,
                                                        graph: FakeGraphAPI, db_pool: ConnectionPool,
                                                        redis_conn: Any, status: int, code: int) -> None:
    graph.fail_next(1, status=status, code=code, details="scripted outage")
    post_meta(client, text_payload("50370000001", "Hola", "wamid.O1"))
    run_jobs(meta_settings)
    first, second = outbound(db_pool)
    assert first["status"] == "pending"
    assert first["error_code"] == str(code)
    assert second["status"] == "accepted"
    assert redis_conn.exists(f"rq:job:out{first['id']:015d}")  # a retry with back-off is scheduled
    rt = build_runtime(meta_settings, pool_size=1)
    try:
        assert jobs.deliver_message(rt, first["id"], None) == "sent"
        assert jobs.deliver_message(rt, first["id"], None) == "skipped"  # a second run never re-sends
    finally:
        rt.close()
    assert outbound(db_pool)[0]["status"] == "accepted"
    assert len(graph.messages_to("+50370000001")) == 2


def test_outside_window_is_recorded_as_failed(client: FlaskClient, meta_settings: Settings,
                                              graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    graph.fail_next(1, status=400, code=131047,
                    details="Message failed to send because more than 24 hours have passed")
    post_meta(client, text_payload("50370000001", "Hola", "wamid.W1"))
    run_jobs(meta_settings)
    first = outbound(db_pool)[0]
    assert first["status"] == "failed"
    assert first["error_code"] == "131047"
    assert first["failed_at"] is not None


# --- real worker processes -----------------------------------------------------------------


@pytest.mark.slow
def test_worker_killed_mid_send_is_retried_without_double_reply(meta_settings: Settings, base_env: dict[str, str],
                                                                graph: FakeGraphAPI,
                                                                db_pool: ConnectionPool) -> None:
    env = worker_env(base_env, graph, JOB_TIMEOUT_S="3", JOB_HEARTBEAT_GRACE_S="1",
                     WORKER_MAINTENANCE_INTERVAL_S="1", SEND_TIMEOUT_S="1")
    graph.hang_next(1)  # Meta receives the first reply, but its answer never comes back
    with create_app(meta_settings.with_overrides(job_timeout_s=3)).test_client() as client:
        post_meta(client, text_payload("50370000001", "Hola", "wamid.K1"))
    doomed = start_worker(env)
    try:
        wait_for(lambda: len(graph.messages_to("+50370000001")) == 1, 20, "the first reply to reach Meta")
        doomed.kill()  # SIGKILL: no cleanup at all
        doomed.wait()
    finally:
        stop(doomed)
    graph.release()
    rescuer = start_worker(env)
    try:
        wait_for(lambda: rows(db_pool, "SELECT status FROM webhook_events")[0]["status"] == "processed",
                 45, "the abandoned job to be retried")
    finally:
        stop(rescuer)
    sent = graph.messages_to("+50370000001")
    assert len(sent) == 2  # welcome (delivered once, before the crash) + menu; nothing twice
    assert [b["biz_opaque_callback_data"] for b in sent] == ["1:0", "1:1"]
    first, second = outbound(db_pool)
    assert (first["status"], first["error_code"]) == ("failed", "interrupted")
    assert second["status"] == "accepted"
    # Meta's receipt for the welcome carries our key back: the reply becomes what the customer got.
    receipt = to_our_number(load_fixture("meta_status_sent.json"))
    receipt["entry"][0]["changes"][0]["value"]["statuses"][0].update(
        id=graph.sent_ids[0], status="delivered", biz_opaque_callback_data="1:0")
    with create_app(meta_settings).test_client() as client:
        assert post_meta(client, receipt).status_code == 200
    run_jobs(meta_settings)
    first, second = outbound(db_pool)
    assert (first["status"], first["provider_message_id"], first["error_code"]) == (
        "delivered", graph.sent_ids[0], None)
    assert rows(db_pool, "SELECT status, count(*) AS n FROM messages WHERE direction = 'out' GROUP BY status"
                         " ORDER BY status") == [{"status": "accepted", "n": 1}, {"status": "delivered", "n": 1}]


@pytest.mark.slow
def test_worker_killed_while_a_reply_waits_for_the_throttle_leaves_it_to_be_sent(
        meta_settings: Settings, base_env: dict[str, str], graph: FakeGraphAPI, db_pool: ConnectionPool,
        redis_conn: Any) -> None:
    """A reply is claimed only right before the provider call: one killed while it waits for the send
    throttle was never in flight, so it stays pending and another worker sends it (once)."""
    env = worker_env(base_env, graph, JOB_TIMEOUT_S="3", JOB_HEARTBEAT_GRACE_S="1",
                     WORKER_MAINTENANCE_INTERVAL_S="1")
    doomed = start_worker(env)
    try:
        wait_for(lambda: Worker.count(connection=redis_conn) == 1, 30, "the worker to start")
        # The customer's pair bucket holds 3/4 of a token: the first reply waits 1.5 s (slept in the job).
        [pair, _number] = delivery.send_buckets(meta_settings, meta_settings.meta_phone_number_id, "+50370000001",
                                                throughput_burst=80)
        seconds, micros = redis_conn.time()
        redis_conn.hset(pair.key, mapping={"tokens": 1 - 1.5 * pair.rate_per_s, "ts": seconds + micros / 1e6})
        with create_app(meta_settings).test_client() as client:
            post_meta(client, text_payload("50370000001", "Hola", "wamid.T1"))
        wait_for(lambda: len(outbound(db_pool)) == 2, 30, "the replies to be stored")
        time.sleep(0.5)  # inside the throttle's 1.5 s wait
        assert graph.messages_to("+50370000001") == []
        doomed.kill()
        doomed.wait()
    finally:
        stop(doomed)
    assert {r["status"] for r in outbound(db_pool)} == {"pending"}
    rescuer = start_worker(env)
    try:
        wait_for(lambda: len(graph.messages_to("+50370000001")) == 2
                 and {r["status"] for r in outbound(db_pool)} == {"accepted"}, 45, "both replies to be sent")
    finally:
        stop(rescuer)
    assert [b["biz_opaque_callback_data"] for b in graph.messages_to("+50370000001")] == ["1:0", "1:1"]


@pytest.mark.slow
def test_messages_of_one_customer_are_handled_in_order(meta_settings: Settings, base_env: dict[str, str],
                                                       graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    customers = [f"5037000{n:04d}" for n in range(1, 7)]
    per_customer = 5
    graph.delay_next(0.03, n=len(customers) * per_customer * 2)  # slow sends make overlaps likely
    app = create_app(meta_settings)

    def customer_sends(digits: str) -> None:
        with app.test_client() as c:
            for i in range(per_customer):
                resp = post_meta(c, text_payload(digits, f"Hola {i}", f"wamid.{digits}.{i}"))
                assert resp.status_code == 200

    threads = [threading.Thread(target=customer_sends, args=(d,)) for d in customers]
    for t in threads:
        t.start()
    workers = [start_worker(worker_env(base_env, graph)) for _ in range(3)]
    try:
        for t in threads:
            t.join()
        total = len(customers) * per_customer
        wait_for(lambda: rows(db_pool, "SELECT count(*) AS n FROM webhook_events WHERE status = 'processed'")[0]["n"]
                 == total, 60, "every message to be processed")
    finally:
        for w in workers:
            stop(w)
    for digits in customers:
        sent = graph.messages_to("+" + digits)
        assert len(sent) == per_customer * 2
        events = [int(b["biz_opaque_callback_data"].split(":")[0]) for b in sent]
        assert events == sorted(events), f"replies to {digits} went out of order: {events}"
        inbound_order = rows(db_pool, """
            SELECT m.body FROM messages m JOIN webhook_events e ON e.id = m.webhook_event_id
            JOIN conversations c ON c.id = m.conversation_id
            WHERE m.direction = 'in' AND m.provider_message_id LIKE %s ORDER BY m.id""", (f"wamid.{digits}.%",))
        assert [r["body"] for r in inbound_order] == [f"Hola {i}" for i in range(per_customer)]


@pytest.mark.slow
def test_a_worker_asked_to_stop_finishes_its_message_and_leaves_the_rest_to_others(
        meta_settings: Settings, base_env: dict[str, str], graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    customers = [f"5037100{n:04d}" for n in range(1, 9)]
    graph.delay_next(0.25, n=len(customers) * 3)  # read receipt + 2 replies: ~0.75 s a message, ~6 s in all
    with create_app(meta_settings).test_client() as client:
        for digits in customers:
            assert post_meta(client, text_payload(digits, "Hola", f"wamid.stop.{digits}")).status_code == 200

    def answered() -> int:
        return sum(1 for digits in customers if graph.messages_to("+" + digits))

    env = worker_env(base_env, graph)
    leaving = start_worker(env)
    try:
        wait_for(lambda: answered() >= 1, 30, "the first reply")
        leaving.send_signal(signal.SIGTERM)  # a deploy: the worker must not take the whole backlog with it
        leaving.wait(timeout=20)
    finally:
        stop(leaving)
    assert leaving.returncode == 0
    assert answered() < len(customers)
    staying = start_worker(env)
    try:
        wait_for(lambda: answered() == len(customers) and rows(
            db_pool, "SELECT count(*) AS n FROM webhook_events WHERE status = 'processed'")[0]["n"] == len(customers),
            60, "the other worker to answer the rest")
    finally:
        stop(staying)
    assert all(len(graph.messages_to("+" + digits)) == 2 for digits in customers)  # welcome + menu, once each
    assert [r["status"] for r in outbound(db_pool)] == ["accepted"] * 2 * len(customers)  # nothing interrupted
