"""Fault drills on real worker processes: a store killed mid-burst, workers killed, messages delivered thrice.

Each drill counts what reached the fake Graph API: every customer gets each
reply exactly once (zero lost, zero duplicated). A drill that kills a store
starts its own private Redis or PostgreSQL (scripts/devservices.py) so the
session's servers are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import meta_webhook
from config import Settings
from runtime.resources import build_runtime
from scripts import devservices
from storage.db import open_pool
from storage.migrate import apply_migrations
from storage.tenants import ensure_configured_tenant
from tests.conftest import load_fixture
from tests.fakes.graph_api import DEFAULT_TOKEN, FakeGraphAPI
from tests.harness import post_meta, rows, served, text_payload, to_our_number
from web.app import create_app
from worker import recovery

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


def recover_until_answered(settings: Settings, pool: ConnectionPool, expected: int) -> None:
    """Run the scheduler's recovery pass (as its loop would) until `expected` messages are processed."""
    rt = build_runtime(settings, pool_size=1)
    try:
        wait_for(lambda: processed(pool) == expected, 60, "every message answered",
                 every=lambda: recovery.recover_events(rt))
    finally:
        rt.close()


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
    from runtime import presence

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
    server = devservices.start_redis(tmp_path / "redis", port, persistent=False)
    state: dict[str, Any] = {"server": server, "port": port, "url": server.url}
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
        recover_until_answered(settings, db_pool, len(first) + len(second))
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


def test_redis_blip_while_idle_is_said_once_each_way(meta_settings: Settings, base_env: dict[str, str],
                                                     graph: FakeGraphAPI, db_pool: ConnectionPool,
                                                     private_redis: dict[str, Any], tmp_path: Path) -> None:
    env = worker_env(base_env, graph, REDIS_URL=private_redis["url"])
    workers = start_workers(env, tmp_path / "worker.log", processes=1)
    conn = redis.Redis.from_url(private_redis["url"], socket_timeout=2)
    try:
        wait_for(lambda: alive_workers(conn) == 1, 60, "the worker")
        time.sleep(1)  # idle, blocked on the queue
        private_redis["server"].process.kill()
        private_redis["server"].process.wait()
        time.sleep(3)  # several of rq's reconnection attempts
        private_redis["server"] = devservices.start_redis(tmp_path / "redis", private_redis["port"],
                                                          persistent=False)
        wait_for(lambda: "redis reachable again" in workers.log(), 30, "the worker to see Redis back")
        with create_app(meta_settings.with_overrides(redis_url=private_redis["url"])).test_client() as client:
            assert post_meta(client, text_payload("50372880001", "Hola", "wamid.blip.1")).status_code == 200
        wait_for(lambda: processed(db_pool) == 1, 30, "the message answered")
        assert workers.proc.poll() is None
    finally:
        code = workers.stop()
        conn.close()
    assert code == 0
    log = workers.log()
    assert (log.count("redis unreachable"), log.count("redis reachable again")) == (1, 1), log
    assert "could not connect to Redis" not in log
    assert len(graph.messages_to("+50372880001")) == 2


def test_worker_started_while_redis_is_down_waits_and_stops_cleanly(base_env: dict[str, str], graph: FakeGraphAPI,
                                                                    tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workers = start_workers(worker_env(base_env, graph, REDIS_URL=f"redis://127.0.0.1:{port}/0"),
                            tmp_path / "worker.log", processes=1)
    try:
        wait_for(lambda: "redis unreachable" in workers.log(), 60, "the worker to notice")
        time.sleep(1.5)  # a few back-off rounds
        assert workers.proc.poll() is None
    finally:
        code = workers.stop()
    assert code == 0
    assert workers.log().count("redis unreachable") == 1
    assert "Traceback" not in workers.log()


# --- PostgreSQL stopped mid-burst -----------------------------------------------------------


@pytest.fixture
def private_postgres(settings: Settings) -> Iterator[dict[str, Any]]:
    """A PostgreSQL of this test's own, migrated, with the tenant; `stop_now()` is `pg_ctl -m immediate`."""
    top = Path(tempfile.mkdtemp(prefix="encargo-drill-"))
    os.chmod(top, 0o755)  # noqa: S103 - the server runs as the postgres user when we are root
    base = top / "pg"
    port = devservices.free_port()
    server = devservices.start_postgres(base, port)
    apply_migrations(server.url)
    pool = open_pool(server.url, max_size=4, name="drill")
    pool.wait(timeout=30)
    ensure_configured_tenant(pool, settings)
    bindir = devservices.postgres_bindir()
    assert bindir is not None
    state: dict[str, Any] = {"url": server.url, "pool": pool, "servers": [server]}

    def stop_now() -> None:
        command = [str(bindir / "pg_ctl"), "-D", str(base / "pgdata"), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=30)

    state["stop_now"] = stop_now
    state["start"] = lambda: state["servers"].append(devservices.start_postgres(base, port))
    yield state
    pool.close()
    for srv in state["servers"]:
        srv.stop()
    stop_now_quietly = [str(bindir / "pg_ctl"), "-D", str(base / "pgdata"), "-m", "immediate", "stop"]
    if os.geteuid() == 0:
        stop_now_quietly = ["runuser", "-u", "postgres", "--", *stop_now_quietly]
    subprocess.run(stop_now_quietly, check=False, capture_output=True, timeout=30)
    shutil.rmtree(top, ignore_errors=True)


def post_receipts(client: FlaskClient, graph: FakeGraphAPI) -> None:
    """Meta's 'sent' receipt for every message it accepted, our key echoed back, as Meta would post them."""
    payload = to_our_number(load_fixture("meta_status_sent.json"))
    template = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    statuses = []
    with graph.lock:
        accepted = list(graph.accepted)
    for item in accepted:
        status = {**template, "id": item.id, "status": "sent", "recipient_id": item.body["to"].lstrip("+"),
                  "biz_opaque_callback_data": item.body["biz_opaque_callback_data"]}
        statuses.append(status)
    payload["entry"][0]["changes"][0]["value"]["statuses"] = statuses
    assert post_meta(client, payload).status_code == 200


def test_postgres_stopped_immediately_mid_burst_then_started(meta_settings: Settings, base_env: dict[str, str],
                                                             graph: FakeGraphAPI, redis_conn: redis.Redis,
                                                             private_postgres: dict[str, Any],
                                                             tmp_path: Path) -> None:
    settings = meta_settings.with_overrides(database_url=private_postgres["url"], recovery_min_age_s=0.0)
    pool: ConnectionPool = private_postgres["pool"]
    env = worker_env(base_env, graph, DATABASE_URL=private_postgres["url"])
    first, second = customers("5037400", 6), customers("5037500", 4)
    graph.delay_next(0.15, n=len(first) * 2)  # slow sends: the stop lands in the middle of the burst
    workers = start_workers(env, tmp_path / "worker.log", processes=2)
    app = create_app(settings)
    try:
        wait_for(lambda: alive_workers(redis_conn) == 2, 60, "two worker processes")
        with app.test_client() as client:
            for digits in first:
                assert post_meta(client, text_payload(digits, "Hola", f"wamid.pk.{digits}")).status_code == 200
            wait_for(lambda: len(graph.sent) >= 2, 30, "the first replies")
            private_postgres["stop_now"]()  # no checkpoint, connections cut: a crash
            for digits in second:  # PostgreSQL is down: the webhook queues the sealed messages in Redis
                assert post_meta(client, text_payload(digits, "Hola", f"wamid.pk.{digits}")).status_code == 200
            time.sleep(2)
            assert workers.proc.poll() is None
            private_postgres["start"]()
            pool.check()  # this test's own connections died with the server
            recover_until_answered(settings, pool, len(first) + len(second))
            assert_each_got_welcome_and_menu_once(graph, first + second)
            post_receipts(client, graph)
            # replies in flight when the database went are failed/interrupted until their receipts come
            wait_for(lambda: rows(pool, "SELECT count(*) AS n FROM messages WHERE direction = 'out'"
                                        " AND status = 'sent' AND error_code IS NULL")[0]["n"]
                     == 2 * (len(first) + len(second)), 30, "every reply marked sent by its receipt")
        assert workers.proc.poll() is None
    finally:
        code = workers.stop()
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
    assert code == 0
    assert rows(pool, "SELECT count(*) AS n FROM messages WHERE direction = 'out'")[0]["n"] \
        == 2 * (len(first) + len(second))  # one row per reply: none written twice


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


# --- every message delivered three times at once ---------------------------------------------


def test_every_message_delivered_three_times_concurrently(meta_settings: Settings, base_env: dict[str, str],
                                                          graph: FakeGraphAPI, db_pool: ConnectionPool,
                                                          redis_conn: redis.Redis, tmp_path: Path) -> None:
    digits = customers("5037600", 8)
    workers = start_workers(worker_env(base_env, graph), tmp_path / "worker.log", processes=2)
    try:
        wait_for(lambda: alive_workers(redis_conn) == 2, 60, "two worker processes")
        with served(meta_settings) as (_app, base_url):
            bodies = [json.dumps(text_payload(d, "Hola", f"wamid.x3.{d}")).encode() for d in digits]
            start = threading.Barrier(3 * len(bodies))
            codes: list[int] = []

            def deliver(body: bytes) -> None:  # Meta re-delivering while the first delivery is in flight
                headers = {"Content-Type": "application/json",
                           "X-Hub-Signature-256": meta_webhook.sign("test-app-secret", body)}
                request = urllib.request.Request(f"{base_url}/webhooks/whatsapp", data=body,  # noqa: S310 - loopback
                                                 method="POST", headers=headers)
                start.wait(timeout=10)
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                    codes.append(response.status)

            threads = [threading.Thread(target=deliver, args=(body,)) for body in bodies for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        assert codes == [200] * len(threads)
        wait_for(lambda: processed(db_pool) == len(digits), 60, "every message answered")
        time.sleep(1)  # a duplicate would be answered just after: give it the time to show
    finally:
        code = workers.stop()
    assert code == 0
    assert rows(db_pool, "SELECT count(*) AS n FROM webhook_events")[0]["n"] == len(digits)  # stored once each
    assert_each_got_welcome_and_menu_once(graph, digits)
