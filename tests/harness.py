"""Helpers shared by the pipeline tests: signed webhook posts, running the queue, reading what was sent."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from channels import meta_webhook, twilio_webhook
from config import Settings
from runtime.resources import build_runtime
from tests.fakes.graph_api import DEFAULT_TOKEN, FakeGraphAPI
from web.app import create_app
from worker.main import EncargoWorker

ROOT = Path(__file__).resolve().parent.parent


def post_meta(client: FlaskClient, body: bytes | dict[str, Any], *, secret: str = "test-app-secret",
              signature: str | None = None) -> TestResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    sig = signature if signature is not None else meta_webhook.sign(secret, raw)
    if sig:
        headers["X-Hub-Signature-256"] = sig
    return client.post("/webhooks/whatsapp", data=raw, headers=headers)


def post_twilio(client: FlaskClient, form: dict[str, str], *, token: str = "12345",
                path: str = "/webhooks/twilio", signature: str | None = None) -> TestResponse:
    url = f"http://localhost{path}"
    sig = signature if signature is not None else twilio_webhook.sign(token, url, form)
    headers = {"X-Twilio-Signature": sig} if sig else {}
    return client.post(path, data=urlencode(form), headers=headers,
                       content_type="application/x-www-form-urlencoded")


def text_payload(phone_digits: str, text: str, message_id: str, *, phone_number_id: str = "106540352242922",
                 name: str = "Cliente") -> dict[str, Any]:
    """A Meta text-message webhook in the exact shape of Meta's example (fixtures/meta_text.json)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": name}, "wa_id": phone_digits}],
            "messages": [{"from": phone_digits, "id": message_id, "timestamp": "1749416383", "type": "text",
                          "text": {"body": text}}],
        }}]}],
    }


def to_our_number(payload: dict[str, Any], phone_number_id: str = "106540352242922") -> dict[str, Any]:
    """Fixtures from other projects were received on other numbers; address them to our tenant's number."""
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            change.get("value", {}).setdefault("metadata", {})["phone_number_id"] = phone_number_id
    return payload


def status_payload(fixture: str, wamid: str, status: str | None = None) -> dict[str, Any]:
    """A Meta status callback (a fixture of tests/fixtures) for the message `wamid`, optionally another status."""
    from tests.conftest import load_fixture

    payload = to_our_number(copy.deepcopy(load_fixture(fixture)))
    item = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    item["id"] = wamid
    if status:
        item["status"] = status
    return payload


def run_jobs(settings: Settings) -> None:
    """Process everything on the queue with a burst worker in this process (rq SimpleWorker)."""
    rt = build_runtime(settings, pool_size=2)
    try:
        EncargoWorker([rt.queue], connection=rt.redis, runtime=rt).work(burst=True, with_scheduler=False)
    finally:
        rt.close()


class Chat:
    """A customer's WhatsApp: each message a signed Meta webhook (typed text or a tapped button, sent at `at`),
    run by a burst RQ worker; returns the payloads of what was sent back."""

    def __init__(self, client: FlaskClient, settings: Settings, pool: ConnectionPool, *, at: float,
                 id_prefix: str = "CHAT") -> None:
        self.client, self.settings, self.pool, self.at, self.id_prefix = client, settings, pool, at, id_prefix

    def send(self, phone: str, text: str = "", *, tap: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        message_id = f"wamid.{self.id_prefix}{uuid.uuid4().hex}"
        message: dict[str, Any] = {"from": phone.lstrip("+"), "id": message_id, "timestamp": str(int(self.at))}
        if tap is not None:
            message.update(type="interactive", interactive={
                "type": "button_reply", "button_reply": {"id": tap[0], "title": tap[1]}})
        else:
            message.update(type="text", text={"body": text})
        body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"wa_id": phone.lstrip("+")}], "messages": [message]}}]}]}
        assert post_meta(self.client, body).status_code == 200
        run_jobs(self.settings)
        [event] = rows(self.pool, "SELECT id, status FROM webhook_events WHERE event_id = %s", (message_id,))
        assert event["status"] == "processed"
        sent = rows(self.pool, "SELECT payload FROM messages WHERE webhook_event_id = %s AND direction = 'out'"
                               " ORDER BY id", (event["id"],))
        return [r["payload"] for r in sent]

    def text(self, phone: str, text: str = "", *, tap: tuple[str, str] | None = None) -> str:
        """The turn's replies as the customer reads them: bodies, then button and row titles."""
        parts: list[str] = []
        for payload in self.send(phone, text, tap=tap):
            parts.append(str(payload.get("body") or ""))
            parts += [str(c["title"]) for c in payload.get("buttons") or payload.get("rows") or []]
        return "\n".join(parts)

    def buttons(self, phone: str, text: str) -> tuple[str, list[tuple[str, str]]]:
        """The last message of the turn, which must offer buttons: its body and (id, title) pairs."""
        last = self.send(phone, text)[-1]
        return str(last["body"]), [(str(b["id"]), str(b["title"])) for b in last["buttons"]]

    def cases(self) -> list[dict[str, Any]]:
        return rows(self.pool, "SELECT reason, priority FROM escalations ORDER BY id")


@contextmanager
def app_client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def rows(pool: ConnectionPool, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with pool.connection() as conn:
        return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


def outbound(pool: ConnectionPool) -> list[dict[str, Any]]:
    return rows(pool, "SELECT * FROM messages WHERE direction = 'out' ORDER BY id")


@contextmanager
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    """The whole app on a real threaded HTTP server on loopback (for a browser, or the simulator calling its own
    webhook): (app, base URL). Stops the server and closes the app's pools afterwards."""
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="app-test-server", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()


# --- real worker processes -----------------------------------------------------------------


def worker_env(base_env: dict[str, str], graph: FakeGraphAPI, **extra: str) -> dict[str, str]:
    """The environment of a worker process that sends through Meta's transport to the fake Graph API."""
    return {**os.environ, **base_env, "WHATSAPP_PROVIDER": "meta", "META_ACCESS_TOKEN": DEFAULT_TOKEN,
            "META_GRAPH_BASE_URL": graph.url, "LOG_LEVEL": "WARNING", **extra}


def start_worker(env: dict[str, str], *, processes: int = 1, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`python -m worker.main --processes N` in its own session (so `kill_group` reaches its children too).

    Its logs go to `log`, or to an unnamed temporary file: an undrained pipe would fill up and stop the worker.
    """
    with open(log, "ab") if log is not None else tempfile.TemporaryFile() as logs:  # the child keeps its own handle
        return subprocess.Popen([sys.executable, "-m", "worker.main", "--processes", str(processes)], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=logs, start_new_session=True)


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and every process of its session at once (a host that dies: no cleanup at all)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask a worker to stop (SIGTERM: it finishes the job in hand); kill its whole session if it does not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    kill_group(proc)  # also any child a supervisor killed with SIGKILL left behind


# What the encargo-sandbox-core console script runs.
SANDBOX_ENTRY_POINT = [sys.executable, "-c", "from sandbox_core.server import main; main()"]


@contextmanager
def sandbox_process(env: dict[str, str], port: int, stderr_path: Path) -> Iterator[str]:
    """The sandbox core's entry point as its own process (stderr to `stderr_path`), once /health answers:
    its base URL. Stopped with SIGTERM afterwards, which it must answer with exit status 0."""
    import httpx

    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(SANDBOX_ENTRY_POINT, cwd=ROOT, env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, "sandbox core did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
