"""The scheduler: one active instance (Redis lease), and its recovery loop queues what Redis missed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
from psycopg_pool import ConnectionPool
from rq import Queue

from config import Settings
from runtime import inbox
from runtime.leader import Leader
from tests.harness import post_meta, rows, text_payload
from web.app import create_app

ROOT = Path(__file__).resolve().parent.parent


def status(pool: ConnectionPool) -> str:
    return str(rows(pool, "SELECT status FROM webhook_events")[0]["status"])


def test_only_one_leader_until_it_releases_or_expires(redis_conn: redis.Redis) -> None:
    first, second = Leader(redis_conn, lease_s=0.5), Leader(redis_conn, lease_s=0.5)
    assert first.holds()
    assert first.holds()  # renewing its own lease
    assert not second.holds()
    first.release()
    assert second.holds()
    assert not first.holds()
    time.sleep(0.7)  # the holder stopped renewing (a crashed scheduler): the lease expires
    assert first.holds()


def test_release_never_drops_someone_elses_lease(redis_conn: redis.Redis) -> None:
    first, second = Leader(redis_conn, lease_s=5), Leader(redis_conn, lease_s=5)
    assert first.holds()
    second.release()
    assert not second.holds()


def test_two_scheduler_processes_recover_an_event_once(settings: Settings, base_env: dict[str, str],
                                                       db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_redis = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    with create_app(settings.with_overrides(redis_url=dead_redis, simulator_enabled=False)).test_client() as c:
        assert post_meta(c, text_payload("50370000001", "Hola", "wamid.SCH1")).status_code == 200
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "received"}]

    env = {**os.environ, **base_env, "RECOVERY_INTERVAL_S": "0.3", "RECOVERY_MIN_AGE_S": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "worker.scheduler"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and status(db_pool) != "queued":
            time.sleep(0.1)
        time.sleep(1.0)  # several more recovery rounds of both processes
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "queued"}]
    (customer,) = redis_conn.lrange(inbox.READY_KEY, 0, -1)  # in its customer's inbox once, one drain job asked for
    assert redis_conn.llen(inbox.inbox_key(customer.decode())) == 1
    assert [job.func_name for job in Queue(settings.queue_name, connection=redis_conn).get_jobs()] == [
        "worker.jobs.drain_inbox"]
    assert all(proc.returncode == 0 for proc in procs)
