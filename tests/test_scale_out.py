"""Scale-out: two independent worker groups (two hosts) on one Redis and one PostgreSQL (docs/SCALING.md).

Each group is `python -m worker.main --processes 2` in its own session, as a
second host would run it; nothing tells either group about the other. They
share the work through the inboxes (runtime.inbox), whose drain slots follow
the live worker processes both groups report (runtime.presence). The tests
show that both groups take work, that every customer's replies still go out
in the order of their messages and once each, and that killing one group in
the middle of a burst loses nothing.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from psycopg_pool import ConnectionPool
from rq import Worker
from rq.registry import FailedJobRegistry

from config import Settings
from runtime import inbox, presence
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import kill_group, outbound, post_meta, rows, start_worker, stop, text_payload, wait_for, worker_env
from web.app import create_app

pytestmark = pytest.mark.slow

CUSTOMERS = 12
PER_CUSTOMER = 4  # 8 replies: within the pair throttle's burst of 10, so no reply waits for it
REPLIES_PER_MESSAGE = 2  # "Hola": welcome + menu
SEND_DELAY_S = 0.15  # Meta answers each send this late: the groups' work overlaps
# Short timeouts, so a dead group's drain jobs and leases are taken over within seconds.
FAST_TAKEOVER = {"JOB_TIMEOUT_S": "4", "JOB_HEARTBEAT_GRACE_S": "1", "WORKER_MAINTENANCE_INTERVAL_S": "1",
                 "LOG_LEVEL": "INFO"}


def log_records(log: Path) -> list[dict[str, Any]]:
    """A group's JSON log lines (one object per line; a line cut short by SIGKILL is skipped)."""
    found = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def handled(log: Path) -> list[int]:
    """The event pks a group's log says it handled ("message handled")."""
    return [int(r["event_pk"]) for r in log_records(log) if r.get("msg") == "message handled"]


def errors(log: Path) -> list[str]:
    """The ERROR lines of a group's log."""
    return [str(r.get("msg", ""))[:300] for r in log_records(log) if r.get("level") in ("ERROR", "CRITICAL")]


def both_groups_listening(conn: redis.Redis) -> bool:
    """Both groups report 2 live processes each, and all 4 have loaded the bot and wait for jobs."""
    counts = presence.counts(conn)
    return counts is not None and (counts.expected, counts.alive) == (4, 4) and Worker.count(connection=conn) == 4


def processed(db_pool: ConnectionPool) -> int:
    return int(rows(db_pool, "SELECT count(*) AS n FROM webhook_events WHERE status = 'processed'")[0]["n"])


def post_burst(app: Flask, customers: list[str]) -> list[threading.Thread]:
    """Every customer sends PER_CUSTOMER messages, one after the other, all customers at once (one thread each)."""
    def customer_sends(digits: str) -> None:
        with app.test_client() as client:
            for i in range(PER_CUSTOMER):
                assert post_meta(client, text_payload(digits, f"Hola {i}", f"wamid.{digits}.{i}")).status_code == 200

    threads = [threading.Thread(target=customer_sends, args=(digits,)) for digits in customers]
    for thread in threads:
        thread.start()
    return threads


def replies_by_event(graph: FakeGraphAPI, digits: str) -> list[int]:
    """The event pk of every reply Meta received for this customer, in arrival order."""
    return [int(body["biz_opaque_callback_data"].split(":")[0]) for body in graph.messages_to("+" + digits)]


def assert_in_order(graph: FakeGraphAPI, db_pool: ConnectionPool, digits: str,
                    messages: int = PER_CUSTOMER) -> list[int]:
    """The customer's replies reached Meta in the order of their messages, none twice; returns their event pks."""
    sent = graph.messages_to("+" + digits)
    keys = [body["biz_opaque_callback_data"] for body in sent]
    assert len(keys) == len(set(keys)), f"a reply to {digits} went out twice: {keys}"
    events = replies_by_event(graph, digits)
    assert events == sorted(events), f"replies to {digits} went out of order: {events}"
    stored = rows(db_pool, """
        SELECT m.body FROM messages m WHERE m.direction = 'in' AND m.provider_message_id LIKE %s
        ORDER BY m.id""", (f"wamid.{digits}.%",))
    assert [r["body"] for r in stored] == [f"Hola {i}" for i in range(messages)]
    return events


@pytest.fixture
def web_settings(meta_settings: Settings) -> Settings:
    """The web hosts' settings: the same job timeout as the workers' (the web queues the drain jobs)."""
    return meta_settings.with_overrides(job_timeout_s=int(FAST_TAKEOVER["JOB_TIMEOUT_S"]))


def start_groups(base_env: dict[str, str], graph: FakeGraphAPI, core_url: str,
                 tmp_path: Path) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Path, Path]:
    """Two worker groups of 2 processes each, as two hosts would run them; their logs in host-a/b.log."""
    env = worker_env(base_env, graph, CORE_API_URL=core_url, **FAST_TAKEOVER)
    log_a, log_b = tmp_path / "host-a.log", tmp_path / "host-b.log"
    return start_worker(env, processes=2, log=log_a), start_worker(env, processes=2, log=log_b), log_a, log_b


def test_two_worker_groups_share_the_work_and_keep_each_customer_in_order(
        web_settings: Settings, base_env: dict[str, str], graph: FakeGraphAPI, core_url: str,
        db_pool: ConnectionPool, redis_conn: redis.Redis, tmp_path: Path) -> None:
    customers = [f"5037200{n:04d}" for n in range(1, CUSTOMERS + 1)]
    total = CUSTOMERS * PER_CUSTOMER
    graph.delay_next(SEND_DELAY_S, n=total * REPLIES_PER_MESSAGE)
    host_a, host_b, log_a, log_b = start_groups(base_env, graph, core_url, tmp_path)
    try:
        wait_for(lambda: both_groups_listening(redis_conn), 60, "both groups' 2 worker processes to listen")
        app = create_app(web_settings)
        for thread in post_burst(app, customers):
            thread.join()
        wait_for(lambda: processed(db_pool) == total, 40, "every message to be processed")
        counts = presence.counts(redis_conn)
        assert counts is not None and counts.alive == 4  # what /readyz shows while both run
    finally:
        stop(host_a)
        stop(host_b)
    by_a, by_b = handled(log_a), handled(log_b)
    assert by_a and by_b, f"one group took no work: {len(by_a)} and {len(by_b)} messages"
    assert sorted(by_a + by_b) == sorted(r["id"] for r in rows(db_pool, "SELECT id FROM webhook_events"))
    for digits in customers:
        events = assert_in_order(graph, db_pool, digits)
        assert sorted(Counter(events).values()) == [REPLIES_PER_MESSAGE] * PER_CUSTOMER  # each message answered once
    assert {r["status"] for r in outbound(db_pool)} == {"accepted"}
    # A group stopped on purpose withdraws its report at once: the drain slots shrink with it.
    assert presence.counts(redis_conn) is None


def test_killing_one_worker_group_mid_burst_loses_nothing(
        web_settings: Settings, base_env: dict[str, str], graph: FakeGraphAPI, core_url: str,
        db_pool: ConnectionPool, redis_conn: redis.Redis, tmp_path: Path) -> None:
    customers = [f"5037300{n:04d}" for n in range(1, CUSTOMERS + 1)]
    total = CUSTOMERS * PER_CUSTOMER
    graph.delay_next(SEND_DELAY_S, n=total * REPLIES_PER_MESSAGE)
    doomed, survivor, log_doomed, log_survivor = start_groups(base_env, graph, core_url, tmp_path)
    try:
        wait_for(lambda: both_groups_listening(redis_conn), 60, "both groups' 2 worker processes to listen")
        app = create_app(web_settings)
        threads = post_burst(app, customers)
        wait_for(lambda: len(handled(log_doomed)) >= 3, 30, "the doomed group to handle a few messages")
        kill_group(doomed)  # the host dies mid-burst: supervisor and worker processes, no cleanup at all
        killed_after = processed(db_pool)
        for thread in threads:
            thread.join()
        assert killed_after < total, "the burst was over before the kill: nothing was shown"
        wait_for(lambda: processed(db_pool) == total, 45, "the surviving group to process every message")
        # The dead group's report runs out: the survivor's 2 processes are the drain slots now, and the slots the
        # dead drain jobs held do not keep later messages waiting.
        wait_for(lambda: (c := presence.counts(redis_conn)) is not None and c.alive == 2, 15,
                 "the dead group's report to expire")
        with app.test_client() as client:
            for digits in customers:
                later = text_payload(digits, f"Hola {PER_CUSTOMER}", f"wamid.{digits}.{PER_CUSTOMER}")
                assert post_meta(client, later).status_code == 200
        wait_for(lambda: processed(db_pool) == total + CUSTOMERS, 30, "the messages sent after the death")
        # Nothing the dead host held stays behind: RQ ran its drain jobs again, and every slot was given back.
        wait_for(lambda: redis_conn.zcard(inbox.DRAINERS_KEY) == 0, 20, "every drain slot to be given back")
    finally:
        kill_group(doomed)
        stop(survivor)
    assert handled(log_survivor), "the surviving group took no work"
    assert errors(log_survivor) == []
    assert FailedJobRegistry(web_settings.queue_name, connection=redis_conn).get_job_ids() == []
    assert {r["status"] for r in rows(db_pool, "SELECT status FROM webhook_events")} == {"processed"}
    replies = outbound(db_pool)
    assert len(replies) == (total + CUSTOMERS) * REPLIES_PER_MESSAGE  # every message answered, none twice
    # A reply whose send was in flight when its process died is failed/interrupted, never sent again (Meta may
    # or may not have it: its receipt settles it). At most one per killed worker process.
    interrupted = [r for r in replies if r["status"] == "failed"]
    assert all(r["error_code"] == "interrupted" for r in interrupted)
    assert len(interrupted) <= 2
    assert {r["status"] for r in replies} <= {"accepted", "failed"}
    received = {body["biz_opaque_callback_data"] for body in graph.sent}
    assert {r["idempotency_key"] for r in replies if r["status"] == "accepted"} <= received
    assert {r["idempotency_key"] for r in replies} >= received
    assert len(graph.sent) >= len(replies) - len(interrupted)
    for digits in customers:
        assert_in_order(graph, db_pool, digits, messages=PER_CUSTOMER + 1)
