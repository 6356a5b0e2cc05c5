"""The fake Graph API (tests/fakes/graph_api.py) in its own process, so it does not share the load generator's GIL.

`GraphFakeProcess` spawns `_graph_fake_main`: FakeGraphAPI with HTTP/1.1 keep-alive and TCP_NODELAY (as Meta
keeps connections alive), optionally enforcing Meta's limits (throughput in msg/s: 130429; pair limit, at most
`max` messages to one recipient per `window` seconds: 131056), answering commands over a Pipe; it stops when its
parent is gone. Commands: count, take (pipeline bench), stats, reset (notifications bench), stop.

It accepts the access token it is given from any of the business numbers (phone_number_ids) it is given,
so one fake serves every tenant of a multi-tenant benchmark; `take` says which number each message left from.

With both limits off the fake's rate-limit scan is skipped (it looks at every accepted message on each send: O(n)).
With a limit on, accepted messages older than 10 s move to an archive once there are more than 2,000 (the limits
look back 6 s at most), so the scan stays short; every command answers over archive + recent alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.common import GRAPH_TOKEN, PHONE_NUMBER_ID

ARCHIVE_ABOVE = 2000  # accepted messages kept before older ones move to the archive (limits on only)
ARCHIVE_AGE_S = 10.0  # ... older than this; the fake's limits look back 6 s at most

# (reference, body digest, arrival on CLOCK_MONOTONIC, the phone_number_id it was sent from)
TakeRecord = tuple[str | None, str, float, str]


def _graph_fake_main(conn: Any, access_token: str, phone_number_ids: tuple[str, ...], parent_pid: int,
                     throughput_mps: int | None, pair_limit: tuple[int, float] | None) -> None:
    """Child process: FakeGraphAPI (keep-alive, optional limits) serving commands over a Pipe."""
    from tests.fakes.graph_api import _PATH, Accepted, FakeGraphAPI, _GraphHandler, error_body

    limited = throughput_mps is not None or pair_limit is not None

    class KeepAliveHandler(_GraphHandler):
        # Meta keeps connections alive; http.server's default HTTP/1.0 would close each one. With keep-alive
        # the handler's two writes (headers, body) must not wait for a delayed ACK (40 ms): no Nagle.
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

    class BenchGraphAPI(FakeGraphAPI):
        handler_class = KeepAliveHandler

        def __init__(self) -> None:
            # the base class knows one number; this one checks the whole set in handle()
            super().__init__(access_token=access_token, phone_number_id=None)
            self.numbers = frozenset(phone_number_ids)
            self.refusals: Counter[str] = Counter()  # error code -> answers other than 200
            self.archive: list[Accepted] = []  # accepted messages moved out of the limit scan

        def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
            match = _PATH.match(path)
            if match and match.group(2) not in self.numbers:
                with self.lock:
                    self.received.append({"path": path, "headers": headers, "body": None})
                    self.refusals["100"] += 1
                return 400, error_body(100, f"Unsupported post request. Object with ID '{match.group(2)}' "
                                            "does not exist", "unknown phone number id")
            status, body = super().handle(path, headers, raw)
            if status != 200 or limited:
                with self.lock:
                    if status != 200:
                        self.refusals[str(body.get("error", {}).get("code"))] += 1
                    if limited and len(self.accepted) > ARCHIVE_ABOVE:
                        cutoff = time.monotonic() - ARCHIVE_AGE_S
                        self.archive.extend(a for a in self.accepted if a.received_at < cutoff)
                        self.accepted = [a for a in self.accepted if a.received_at >= cutoff]
            return status, body

        def _check_rate_limits(self, number: str, body: dict[str, Any]) -> None:
            if not limited:
                return
            super()._check_rate_limits(number, body)

        def all_accepted(self) -> list[Accepted]:
            """Archive + recent, in arrival order (call with the lock held)."""
            return [*self.archive, *self.accepted]

        def count(self) -> int:
            with self.lock:
                return len(self.archive) + len(self.accepted)

        def take(self) -> tuple[list[TakeRecord], int, int]:
            with self.lock:
                accepted, self.archive, self.accepted = self.all_accepted(), [], []
                received, self.received = len(self.received), []
                receipts, self.read_receipts = len(self.read_receipts), []
            records = [(a.body.get("biz_opaque_callback_data"),
                        hashlib.sha1(json.dumps(a.body, sort_keys=True).encode(), usedforsecurity=False).hexdigest(),
                        a.received_at, a.path.split("/")[2]) for a in accepted]
            return records, received, receipts

        def stats(self) -> dict[str, Any]:
            with self.lock:
                accepted = [(a.body.get("biz_opaque_callback_data"), a.body.get("to"),
                             json.dumps(a.body.get("template", {}).get("components", [])), a.received_at)
                            for a in self.all_accepted()]
                return {"accepted": accepted, "received": len(self.received), "refusals": dict(self.refusals)}

        def reset(self) -> None:
            with self.lock:
                self.archive.clear()
                self.accepted.clear()
                self.refusals.clear()
                self.received.clear()
                self.read_receipts.clear()

    fake = BenchGraphAPI()
    fake.enforce_throughput(throughput_mps)
    if pair_limit is not None:
        fake.enforce_pair_limit(*pair_limit)
    fake.start()
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
                conn.send(fake.count())
            elif command == "take":
                conn.send(fake.take())
            elif command == "stats":
                conn.send(fake.stats())
            elif command == "reset":
                fake.reset()
                conn.send("reset")
            elif command == "stop":
                conn.send("stopped")
                break
    finally:
        fake.stop()


class GraphFakeProcess:
    """The FakeGraphAPI in a separate process (it does not share the load generator's GIL).

    `throughput_mps` / `pair_limit` (max messages, window in seconds) switch on Meta's limits (None: off).
    """

    def __init__(self, access_token: str = GRAPH_TOKEN, phone_number_ids: Sequence[str] = (PHONE_NUMBER_ID,), *,
                 throughput_mps: int | None = None, pair_limit: tuple[int, float] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._lock = threading.Lock()
        self.process = ctx.Process(target=_graph_fake_main,
                                   args=(child_conn, access_token, tuple(phone_number_ids), os.getpid(), throughput_mps,
                                         pair_limit),
                                   daemon=True, name="fake-graph")
        self.process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the fake Graph API did not start")
        self.url: str = self._conn.recv()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def _ask(self, command: str, timeout: float = 120) -> Any:
        with self._lock:
            self._conn.send(command)
            if not self._conn.poll(timeout):
                raise RuntimeError(f"the fake Graph API did not answer {command!r}")
            return self._conn.recv()

    def count(self) -> int:
        """Messages accepted since the start, the last take or the last reset."""
        return int(self._ask("count"))

    def take(self) -> tuple[list[TakeRecord], int, int]:
        """(accepted messages since the last take as (reference, body digest, arrival, sending number), requests,
        read receipts); forgets them."""
        result: tuple[list[TakeRecord], int, int] = self._ask("take")
        return result

    def stats(self) -> dict[str, Any]:
        """{"accepted": [(reference, to, template components as JSON, arrival)], "received": requests,
        "refusals": {error code: answers}} since the start or the last reset; forgets nothing."""
        result: dict[str, Any] = self._ask("stats")
        return result

    def reset(self) -> None:
        """Forget accepted messages, requests, read receipts and refusals."""
        self._ask("reset")

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                self._ask("stop", timeout=10)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
