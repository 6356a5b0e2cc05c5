"""The fake Graph API (tests/fakes/graph_api.py) in its own process, so it does not share the load generator's GIL.

`GraphFakeProcess` spawns `_graph_fake_main`: FakeGraphAPI with HTTP/1.1 keep-alive and TCP_NODELAY
(as Meta keeps connections alive) and without the rate-limit scan when both limits are off, answering
commands (count, take, stop) over a Pipe; it stops when its parent is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import time
from typing import Any

from bench.common import GRAPH_TOKEN, PHONE_NUMBER_ID


def _graph_fake_main(conn: Any, access_token: str, phone_number_id: str, parent_pid: int) -> None:
    """Child process: FakeGraphAPI (keep-alive, no rate-limit scan) serving commands over a Pipe."""
    from tests.fakes.graph_api import FakeGraphAPI, _GraphHandler

    class KeepAliveHandler(_GraphHandler):
        # Meta keeps connections alive; http.server's default HTTP/1.0 would close each one. With keep-alive
        # the handler's two writes (headers, body) must not wait for a delayed ACK (40 ms): no Nagle.
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

    class BenchGraphAPI(FakeGraphAPI):
        handler_class = KeepAliveHandler

        def _check_rate_limits(self, number: str, body: dict[str, Any]) -> None:
            # The fake scans every accepted message on each send even with both limits off: O(n) per send.
            if self._throughput_mps is None and self._pair_limit is None:
                return
            super()._check_rate_limits(number, body)

        def take(self) -> tuple[list[tuple[str | None, str, float]], int, int]:
            with self.lock:
                accepted, self.accepted = self.accepted, []
                received, self.received = len(self.received), []
                receipts, self.read_receipts = len(self.read_receipts), []
            records = [(a.body.get("biz_opaque_callback_data"),
                        hashlib.sha1(json.dumps(a.body, sort_keys=True).encode(), usedforsecurity=False).hexdigest(),
                        a.received_at) for a in accepted]
            return records, received, receipts

    fake = BenchGraphAPI(access_token=access_token, phone_number_id=phone_number_id).start()
    conn.send(fake.url)
    try:
        deadline = time.monotonic() + 4 * 3600
        while time.monotonic() < deadline:
            if os.getppid() != parent_pid:
                break
            if not conn.poll(1.0):
                continue
            try:
                command = conn.recv()
            except EOFError:
                break
            if command == "count":
                with fake.lock:
                    conn.send(len(fake.accepted))
            elif command == "take":
                conn.send(fake.take())
            elif command == "stop":
                conn.send("stopped")
                break
    finally:
        fake.stop()


class GraphFakeProcess:
    """The FakeGraphAPI in a separate process (it does not share the load generator's GIL)."""

    def __init__(self, access_token: str = GRAPH_TOKEN, phone_number_id: str = PHONE_NUMBER_ID) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_graph_fake_main, args=(child_conn, access_token, phone_number_id,
                                                                  os.getpid()), daemon=True, name="fake-graph")
        self.process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the fake Graph API did not start")
        self.url: str = self._conn.recv()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def _ask(self, command: str, timeout: float = 60) -> Any:
        self._conn.send(command)
        if not self._conn.poll(timeout):
            raise RuntimeError(f"the fake Graph API did not answer {command!r}")
        return self._conn.recv()

    def count(self) -> int:
        return int(self._ask("count"))

    def take(self) -> tuple[list[tuple[str | None, str, float]], int, int]:
        """(accepted messages since the last take as (reference, body digest, arrival), requests, read receipts)."""
        result: tuple[list[tuple[str | None, str, float]], int, int] = self._ask("take")
        return result

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                self._ask("stop", timeout=10)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
