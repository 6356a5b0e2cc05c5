"""Fault drills on real worker processes: a store killed mid-burst, workers killed, messages delivered thrice.

Each drill counts what reached the fake Graph API: every customer gets each
reply exactly once (zero lost, zero duplicated). A drill that kills a store
starts its own private Redis or PostgreSQL (scripts/devservices.py) so the
session's servers are left alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from psycopg_pool import ConnectionPool

from app import create_app
from config import Settings
from scripts import devservices
from tests.fakes.graph_api import DEFAULT_TOKEN, FakeGraphAPI
from tests.harness import post_meta, rows, text_payload
from worker import recovery, runtime

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@dataclass
class WorkerGroup:
    """`encargo-worker --processes N` in a subprocess, its log in a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_workers(env: dict[str, str], log_path: Path, processes: int) -> WorkerGroup:
    with log_path.open("ab") as log:  # the child keeps its own handle
        proc = subprocess.Popen([sys.executable, "-m", "worker.main", "--processes", str(processes)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    return WorkerGroup(proc, log_path)


def worker_env(base_env: dict[str, str], graph: FakeGraphAPI, **extra: str) -> dict[str, str]:
    return {**os.environ, **base_env, "WHATSAPP_PROVIDER": "meta", "META_ACCESS_TOKEN": DEFAULT_TOKEN,
            "META_GRAPH_BASE_URL": graph.url, "LOG_LEVEL": "WARNING", "WORKER_MAINTENANCE_INTERVAL_S": "2",
            "JOB_TIMEOUT_S": "10", "JOB_HEARTBEAT_GRACE_S": "1", "PYTHONUNBUFFERED": "1", **extra}


def wait_for(condition: Callable[[], bool], timeout: float, what: str, *, every: Callable[[], Any] | None = None,
             ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if every is not None:
            every()
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def processed(pool: ConnectionPool) -> int:
    return int(rows(pool, "SELECT count(*) AS n FROM webhook_events WHERE kind = 'message'"
                          " AND status = 'processed'")[0]["n"])


def customers(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(1, n + 1)]


def assert_each_got_welcome_and_menu_once(graph: FakeGraphAPI, digits: list[str]) -> None:
    """'Hola' is answered with two replies: the welcome and the menu. Nothing lost, nothing twice."""
    references = Counter(b.get("biz_opaque_callback_data") for b in graph.sent)
    assert [ref for ref, n in references.items() if n > 1] == []  # no reply reached Meta twice
    per_customer = {d: len(graph.messages_to("+" + d)) for d in digits}
    assert per_customer == dict.fromkeys(digits, 2)


def alive_workers(conn: redis.Redis) -> int | None:
    from worker import presence

    try:
        counts = presence.counts(conn)
    except redis.RedisError:
        return None
    return None if counts is None else counts.alive


# --- Redis killed mid-burst ------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Redis of this test's own (non-persistent: a kill loses everything in it, the harshest case)."""
    port = devservices.free_port()
    state = {"server": devservices.start_redis(tmp_path / "redis", port, persistent=False), "port": port}
    state["url"] = state["server"].url
    yield state
    state["server"].stop()


def test_redis_killed_mid_burst_then_restarted(meta_settings: Settings, base_env: dict[str, str],
                                               graph: FakeGraphAPI, db_pool: ConnectionPool,
                                               private_redis: dict[str, Any], tmp_path: Path) -> None:
    settings = meta_settings.with_overrides(redis_url=private_redis["url"], recovery_min_age_s=0.0)
    env = worker_env(base_env, graph, REDIS_URL=private_redis["url"])
    first, second = customers("5037200", 6), customers("5037300", 4)
    graph.delay_next(0.15, n=len(first) * 2)  # slow sends: the kill lands in the middle of the burst
    workers = start_workers(env, tmp_path / "worker.log", processes=2)
    conn = redis.Redis.from_url(private_redis["url"], socket_timeout=2)
    try:
        wait_for(lambda: alive_workers(conn) == 2, 60, "two worker processes")
        with create_app(settings).test_client() as client:
            for digits in first:
                assert post_meta(client, text_payload(digits, "Hola", f"wamid.rk.{digits}")).status_code == 200
            wait_for(lambda: len(graph.sent) >= 2, 30, "the first replies")
            private_redis["server"].process.kill()  # SIGKILL: the queue, the inboxes, rq's registries: all gone
            private_redis["server"].process.wait()
            for digits in second:  # Redis is down: the webhook keeps the messages in PostgreSQL
                assert post_meta(client, text_payload(digits, "Hola", f"wamid.rk.{digits}")).status_code == 200
        time.sleep(2)
        assert workers.proc.poll() is None  # the outage stopped nothing
        private_redis["server"] = devservices.start_redis(tmp_path / "redis", private_redis["port"],
                                                          persistent=False)
        rt = runtime.build_runtime(settings, pool_size=1)
        try:  # the scheduler's recovery loop, every half second
            wait_for(lambda: processed(db_pool) == len(first) + len(second), 60, "every message answered",
                     every=lambda: recovery.recover_events(rt))
        finally:
            rt.close()
        wait_for(lambda: alive_workers(conn) == 2, 15, "both workers reporting again")
        assert workers.proc.poll() is None
    finally:
        code = workers.stop()
        conn.close()
    assert code == 0
    assert_each_got_welcome_and_menu_once(graph, first + second)
    assert [r["status"] for r in rows(db_pool, "SELECT status FROM messages WHERE direction = 'out'")
            if r["status"] not in ("accepted", "sent")] == []  # none failed or left in flight
    log = workers.log()
    # one line per worker process when Redis goes, one when it is back; rq's retry lines are not repeated
    assert 1 <= log.count("redis unreachable") <= 2, log
    assert log.count("redis unreachable") == log.count("redis reachable again"), log
    assert "could not connect to Redis" not in log


# --- worker processes killed -----------------------------------------------------------------


def worker_children(pid: int) -> list[int]:
    """The worker processes `encargo-worker` spawned (not multiprocessing's resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return sorted(found)


def test_killed_worker_processes_are_replaced_and_readyz_shows_it(
        meta_settings: Settings, base_env: dict[str, str], graph: FakeGraphAPI, db_pool: ConnectionPool,
        tmp_path: Path) -> None:
    workers = start_workers(worker_env(base_env, graph), tmp_path / "worker.log", processes=4)
    app = create_app(meta_settings)

    def readyz_workers() -> Any:
        with app.test_client() as c:
            return c.get("/readyz").get_json()["workers"]

    try:
        wait_for(lambda: readyz_workers() == {"alive": 4, "expected": 4} and len(worker_children(workers.proc.pid))
                 == 4, 60, "four worker processes")
        doomed = worker_children(workers.proc.pid)[:2]
        for pid in doomed:
            os.kill(pid, signal.SIGKILL)  # the OOM killer's way: no cleanup
        wait_for(lambda: readyz_workers() == {"alive": 2, "expected": 4}
                 or set(doomed) - set(worker_children(workers.proc.pid)) == set(doomed), 10, "the deaths noticed")
        wait_for(lambda: len(worker_children(workers.proc.pid)) == 4 and readyz_workers()
                 == {"alive": 4, "expected": 4}, 30, "four worker processes again")
        assert set(doomed).isdisjoint(worker_children(workers.proc.pid))
        with app.test_client() as client:  # and they work
            assert post_meta(client, text_payload("50372990001", "Hola", "wamid.pool.1")).status_code == 200
        wait_for(lambda: processed(db_pool) == 1, 30, "the message answered")
        assert len(graph.messages_to("+50372990001")) == 2
    finally:
        code = workers.stop()
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
    assert code == 0
    log = workers.log()
    assert log.count("killed by SIGKILL") == 2, log
    assert "worker processes alive: 2 of 4" in log or "worker processes alive: 3 of 4" in log
    assert "worker processes alive: 4 of 4" in log
    with create_app(meta_settings).test_client() as c:
        assert c.get("/readyz").get_json()["workers"] is None  # stopped on purpose: it no longer counts
