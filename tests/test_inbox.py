"""Inboxes (runtime/inbox.py, worker/draining.py): few RQ jobs for many events, one customer at a time, nothing lost.

Everything runs on the real Redis, PostgreSQL, Flask app and RQ worker; Meta is the loopback fake.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from rq.job import Job

from config import Settings
from runtime import inbox, presence
from runtime.enqueue import job_id_for
from runtime.resources import Runtime, build_runtime
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs, status_payload, text_payload
from web.app import create_app
from worker import draining, recovery

CUSTOMERS = ["50370000001", "50370000002", "50370000003"]


@pytest.fixture
def one_drainer(meta_settings: Settings) -> Settings:
    """No worker process reports itself here: one drain slot (the least there is)."""
    return meta_settings.with_overrides(recovery_min_age_s=0.0)


@pytest.fixture
def client(one_drainer: Settings) -> Iterator[FlaskClient]:
    with create_app(one_drainer).test_client() as c:
        yield c


@pytest.fixture
def rt(one_drainer: Settings) -> Iterator[Runtime]:
    built = build_runtime(one_drainer, pool_size=2)
    yield built
    built.close()


def send_round(client: FlaskClient, rounds: int) -> None:
    """Every customer writes `rounds` messages, interleaved with the others'."""
    for n in range(rounds):
        for digits in CUSTOMERS:
            assert post_meta(client, text_payload(digits, f"Hola {n}", f"wamid.{digits}.{n}")).status_code == 200


def reply_events(graph: FakeGraphAPI, digits: str) -> list[int]:
    """The inbound event each reply to this customer answered, in the order Meta received them."""
    return [int(body["biz_opaque_callback_data"].split(":")[0]) for body in graph.messages_to("+" + digits)]


def processed(db_pool: ConnectionPool) -> int:
    return int(rows(db_pool, "SELECT count(*) AS n FROM webhook_events WHERE status = 'processed'")[0]["n"])


def test_a_burst_is_one_drain_job_and_each_customer_is_answered_in_order(
        client: FlaskClient, one_drainer: Settings, rt: Runtime, graph: FakeGraphAPI,
        db_pool: ConnectionPool) -> None:
    send_round(client, 3)  # the webhook puts each message in its customer's inbox and queues one drain job:
    assert [job.func_name for job in rt.queue.get_jobs()] == ["worker.jobs.drain_inbox"]  # not nine jobs
    run_jobs(one_drainer)
    assert processed(db_pool) == 9
    for digits in CUSTOMERS:
        events = reply_events(graph, digits)
        assert len(set(events)) == 3 and events == sorted(events), f"{digits} answered out of order: {events}"
    assert rt.redis.zcard(inbox.HELD_KEY) == 0 and rt.redis.llen(inbox.READY_KEY) == 0


def test_a_message_that_fails_is_retried_on_its_own_and_the_customer_goes_on(
        client: FlaskClient, one_drainer: Settings, rt: Runtime, graph: FakeGraphAPI,
        db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    customer = "c0ffee"
    # A message whose stored event is gone (a database restored from an older backup) cannot be handled.
    inbox.deliver(redis_conn, rt.queue, one_drainer, customer, 424242, "cid-lost")
    post_meta(client, text_payload("50370000001", "Hola", "wamid.after"))
    assert draining.drain(rt, "inbox-test") == 2
    assert processed(db_pool) == 1 and len(graph.messages_to("+50370000001")) == 2  # the other customer: answered
    retry = Job.fetch(job_id_for(424242), connection=redis_conn)  # the failed one: its own job, with back-off
    assert retry.func_name == "worker.jobs.handle_message" and retry.retries_left == 5
    assert redis_conn.llen(inbox.inbox_key(customer)) == 0


def test_a_customer_held_by_a_dead_drain_job_is_taken_over_once_its_lease_runs_out(
        client: FlaskClient, one_drainer: Settings, rt: Runtime, graph: FakeGraphAPI,
        db_pool: ConnectionPool) -> None:
    post_meta(client, text_payload("50370000001", "Hola", "wamid.D1"))
    (doomed,) = rt.queue.job_ids
    rt.queue.remove(doomed)  # a worker takes the drain job, claims the customer and dies for good
    held = inbox.claim(rt.redis, doomed, lease_s=0.3, slot_life=1)
    assert held is not None
    assert draining.drain(rt, "inbox-other") == 0  # held: no other drain job may touch the customer yet
    assert recovery.recover_events(rt) == 0 and rt.queue.count == 0
    time.sleep(1.1)  # the lease and the dead job's slot run out
    recovery.recover_events(rt)  # the scheduler's pass: the customer back in turn, a drain job queued
    run_jobs(one_drainer)
    assert processed(db_pool) == 1
    assert reply_events(graph, "50370000001") == [held.event_pk, held.event_pk]  # welcome + menu, once each
    assert inbox.release(rt.redis, held) == -1  # the dead job's late release changes nothing


def test_only_the_lease_holder_removes_the_message(one_drainer: Settings, rt: Runtime,
                                                   redis_conn: redis.Redis) -> None:
    assert inbox.deliver(redis_conn, rt.queue, one_drainer, "cafe", 7, "cid-7")  # a drain job queued
    assert not inbox.deliver(redis_conn, rt.queue, one_drainer, "cafe", 8, "cid-8")  # the customer waits already
    first = inbox.claim(redis_conn, "inbox-a", lease_s=0.1, slot_life=60)
    assert first is not None and (first.owner, first.event_pk, first.correlation_id) == ("cafe", 7, "cid-7")
    assert inbox.claim(redis_conn, "inbox-b", lease_s=5, slot_life=60) is None  # held: nothing else to take
    time.sleep(0.2)
    second = inbox.claim(redis_conn, "inbox-b", lease_s=5, slot_life=60)
    assert second is not None and second.event_pk == 7  # the same message, taken over
    assert inbox.release(redis_conn, first) == -1
    assert redis_conn.lrange(inbox.inbox_key("cafe"), 0, -1) == [b"7:cid-7", b"8:cid-8"]
    assert inbox.release(redis_conn, second) == 1  # more waits: the customer is back in turn
    third = inbox.claim(redis_conn, "inbox-b", lease_s=5, slot_life=60)
    assert third is not None and third.event_pk == 8
    assert inbox.release(redis_conn, third) == 0
    assert redis_conn.exists(inbox.inbox_key("cafe"), inbox.HELD_KEY, inbox.READY_KEY) == 0


def test_a_drain_job_hands_its_slot_to_a_fresh_job_after_its_share(
        client: FlaskClient, one_drainer: Settings, rt: Runtime, graph: FakeGraphAPI,
        db_pool: ConnectionPool) -> None:
    send_round(client, 1)
    (started,) = rt.queue.job_ids
    rt.queue.remove(started)  # a worker took it
    assert draining.drain(rt, started, items_per_job=2) == 2
    assert processed(db_pool) == 2
    (successor,) = rt.queue.job_ids
    assert successor != started and Job.fetch(successor, connection=rt.redis).func_name == "worker.jobs.drain_inbox"
    assert [m.decode() for m in rt.redis.zrange(inbox.DRAINERS_KEY, 0, -1)] == [successor]
    run_jobs(one_drainer)
    assert processed(db_pool) == 3
    assert all(len(graph.messages_to("+" + digits)) == 2 for digits in CUSTOMERS)


def test_recovery_queues_a_message_again_only_when_redis_lost_it(
        client: FlaskClient, one_drainer: Settings, rt: Runtime, graph: FakeGraphAPI,
        db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    post_meta(client, text_payload("50370000001", "Hola", "wamid.R1"))
    assert recovery.recover_events(rt) == 0  # waiting in its inbox: nothing to do
    redis_conn.flushdb()  # Redis restarted without its data
    assert recovery.recover_events(rt) == 1
    run_jobs(one_drainer)
    assert processed(db_pool) == 1 and len(graph.messages_to("+50370000001")) == 2


def test_a_lingering_drain_job_takes_the_next_message_without_a_new_job(
        client: FlaskClient, one_drainer: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    lingering = one_drainer.with_overrides(message_drain_linger_s=3.0)
    built = build_runtime(lingering, pool_size=2)
    try:
        post_meta(client, text_payload("50370000001", "Hola", "wamid.L1"))
        (job_id,) = built.queue.job_ids
        built.queue.remove(job_id)  # a worker took it
        handled: list[int] = []
        worker = threading.Thread(target=lambda: handled.append(draining.drain(built, job_id)))
        worker.start()
        wait_until(lambda: processed(db_pool) == 1)
        post_meta(client, text_payload("50370000002", "Hola", "wamid.L2"))  # arrives while the job lingers
        worker.join(timeout=30)
        assert handled == [2]  # the same job answered both, then gave up after 3 s with nothing to do
        assert built.queue.count == 0  # no other drain job was asked for
        assert built.redis.zcard(inbox.DRAINERS_KEY) == 0  # and its slot is free again
        assert len(graph.messages_to("+50370000002")) == 2
    finally:
        built.close()


def test_drain_slots_follow_the_live_worker_processes(
        client: FlaskClient, one_drainer: Settings, rt: Runtime, redis_conn: redis.Redis) -> None:
    # Two worker hosts report 3 and 2 live processes (a third host's report has expired): five drain slots.
    presence.report(redis_conn, presence.group_key("host-a:1"), expected=4, alive=3)
    presence.report(redis_conn, presence.group_key("host-b:1"), expected=2, alive=2)
    redis_conn.sadd(presence.GROUPS_KEY, presence.group_key("host-gone:1"))
    for n in range(7):
        post_meta(client, text_payload(f"5037100000{n}", "Hola", f"wamid.S{n}"))
    assert [job.func_name for job in rt.queue.get_jobs()] == ["worker.jobs.drain_inbox"] * 5
    assert redis_conn.zcard(inbox.DRAINERS_KEY) == 5
    presence.withdraw(redis_conn, presence.group_key("host-a:1"))  # a host stopped: its slots are not refilled
    for job in rt.queue.get_jobs():
        rt.queue.remove(job.id)
    redis_conn.delete(inbox.DRAINERS_KEY)
    for n in range(7, 10):
        post_meta(client, text_payload(f"5037100000{n}", "Hola", f"wamid.S{n}"))
    assert rt.queue.count == 2


def test_delivery_receipts_wait_in_status_lanes_and_are_applied_by_the_drain_job(
        client: FlaskClient, one_drainer: Settings, rt: Runtime, graph: FakeGraphAPI,
        db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    post_meta(client, text_payload("50370000001", "Hola", "wamid.ST1"))
    run_jobs(one_drainer)
    sent = rows(db_pool, "SELECT provider_message_id FROM messages WHERE direction = 'out' ORDER BY id")
    for row in sent:
        post_meta(client, status_payload("meta_status_read.json", row["provider_message_id"], "delivered"))
    lanes = [key.decode() for key in redis_conn.lrange(inbox.READY_KEY, 0, -1)]
    assert lanes and all(lane.startswith(inbox.STATUS_PREFIX) for lane in lanes)
    assert [job.func_name for job in rt.queue.get_jobs()] == ["worker.jobs.drain_inbox"]  # no job per receipt
    run_jobs(one_drainer)
    statuses = rows(db_pool, "SELECT status FROM messages WHERE direction = 'out' ORDER BY id")
    assert [row["status"] for row in statuses] == ["delivered"] * len(sent)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
