"""A loopback load generator and the signed Meta webhooks it sends.

- `LoadGenerator` is a single-threaded `selectors` HTTP/1.1 client over
  persistent loopback connections, sending pre-built request bytes: a Python
  client light enough to share 2 cores with the server. Closed loop
  (`closed_loop`: N connections, max throughput) and open loop (`open_loop`:
  requests scheduled by the wall clock at a fixed rate, latency counted from
  the *scheduled* time so a stalled server cannot hide its stalls).
  `LoadResult` holds what one run saw (statuses, latencies, ids, client CPU).
- `WebhookFactory` builds signed Meta text webhooks, each with a unique message id,
  spread over many customers and over one or more receiving numbers (tenants).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import selectors
import socket
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import APP_SECRET, PHONE_NUMBER_ID, latency_summary_ms

# --- requests ----------------------------------------------------------------------------------


class WebhookFactory:
    """Signed Meta text webhooks, each with a unique message id, round-robin over `customers` numbers.

    `next()` returns (request bytes, message id). Message n goes to customer n % customers and carries
    texts[(n // customers) % len(texts)], so one customer never sends the same text twice in a row.
    Customer c writes to the business number `phone_number_ids[c % len(phone_number_ids)]` (its
    `metadata.phone_number_id`): with several numbers (tenants) each customer belongs to one of them and
    the customers are spread evenly. The no-op path gets the same body and headers, so both endpoints
    read exactly the same bytes.
    """

    def __init__(self, port: int, path: str, *, customers: int = 500, phone_prefix: str = "5037",
                 id_prefix: str = "wamid.BENCH", secret: str = APP_SECRET,
                 texts: tuple[str, ...] = ("Hola", "Buenos días", "Buenas tardes", "Hola, buenas"),
                 phone_number_ids: Sequence[str] = (PHONE_NUMBER_ID,)) -> None:
        from tests.harness import text_payload

        if not phone_number_ids:
            raise ValueError("at least one receiving number")
        self.path = path
        self.port = port
        self.secret = secret.encode()
        self.id_prefix = id_prefix
        self.phones = [f"{phone_prefix}{n:07d}" for n in range(1, customers + 1)]
        self.numbers = list(phone_number_ids)
        # templates[number index][text index]
        self._templates = [[json.dumps(text_payload("{{PHONE}}", text, "{{MSGID}}", phone_number_id=number,
                                                    name="Cliente Bench"), separators=(",", ":"), ensure_ascii=False)
                            for text in texts] for number in self.numbers]
        self.count = 0

    def number_of(self, message_id: str) -> str:
        """The business number (phone_number_id) a message id made by `next()` was sent to."""
        n = int(message_id.removeprefix(self.id_prefix))
        return self.numbers[(n % len(self.phones)) % len(self.numbers)]

    def next(self) -> tuple[bytes, str]:
        n = self.count
        self.count += 1
        message_id = f"{self.id_prefix}{n:09d}"
        customers = len(self.phones)
        customer = n % customers
        texts = self._templates[customer % len(self.numbers)]
        template = texts[(n // customers) % len(texts)]
        body = template.replace("{{PHONE}}", self.phones[customer]).replace("{{MSGID}}", message_id).encode()
        signature = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        head = (f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-Hub-Signature-256: {signature}\r\n\r\n").encode()
        return head + body, message_id


# --- the load generator ------------------------------------------------------------------------


class _Conn:
    """One persistent HTTP/1.1 connection; a request is sent whole, the response parsed incrementally."""

    __slots__ = ("sock", "buf", "t_ref", "t_sent", "tag", "keep_alive")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.t_ref = 0.0
        self.t_sent = 0.0
        self.tag = ""
        self.keep_alive = True

    def send(self, raw: bytes, t_ref: float, tag: str) -> None:
        self.buf = bytearray()
        self.t_ref, self.tag = t_ref, tag
        self.t_sent = time.monotonic()
        self.sock.sendall(raw)

    def read(self) -> int | None:
        """Consume what arrived; the status once the response is complete, else None. EOF raises."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("connection closed by the server")
        self.buf += chunk
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).lower()
        if b"\r\ntransfer-encoding: chunked" in head:
            if not self.buf.endswith(b"0\r\n\r\n"):
                return None
        else:
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17: line_end if line_end > 0 else len(head)].strip())
            if len(self.buf) < end + 4 + length:
                return None
        self.keep_alive = b"\r\nconnection: close" not in head and head.startswith(b"http/1.1")
        return int(self.buf[9:12])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class LoadResult:
    mode: str
    target: str
    offered_rate: float | None
    duration_s: float
    started: float = 0.0  # monotonic
    finished: float = 0.0
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, responses with status 200
    errors: Counter[str] = field(default_factory=Counter)
    ok_ids: list[str] = field(default_factory=list)
    scheduled: dict[str, float] = field(default_factory=dict)  # message id -> scheduled (open) / sent (closed)
    max_send_lag_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def wall_s(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.ok / self.wall_s

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "target": self.target, "offered_rate": self.offered_rate,
            "duration_s": self.duration_s, "wall_s": round(self.wall_s, 3), "sent": self.sent, "ok": self.ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors), "rate": round(self.rate, 1),
            "latency_ms": latency_summary_ms(self.latencies),
            "max_send_lag_ms": round(self.max_send_lag_s * 1000, 2),
            "client_cpu_pct": round(100 * self.client_cpu_s / self.wall_s, 1),
        }


class LoadGenerator:
    """A single-threaded selectors loop over persistent loopback connections (see the module docstring)."""

    def __init__(self, port: int, *, keep_ids: bool = False) -> None:
        self.port = port
        self.keep_ids = keep_ids

    def _open(self, sel: selectors.BaseSelector, result: LoadResult) -> _Conn | None:
        try:
            conn = _Conn(self.port)
        except OSError as exc:
            result.errors[f"connect:{type(exc).__name__}"] += 1
            return None
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        return conn

    @staticmethod
    def _drop(sel: selectors.BaseSelector, conn: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        conn.close()

    def _send(self, sel: selectors.BaseSelector, conn: _Conn, raw: bytes, t_ref: float, tag: str,
              result: LoadResult) -> bool:
        result.sent += 1
        if self.keep_ids:
            result.scheduled[tag] = t_ref
        try:
            conn.send(raw, t_ref, tag)
        except OSError as exc:
            result.errors[f"send:{type(exc).__name__}"] += 1
            result.statuses[-1] += 1
            self._drop(sel, conn)
            return False
        result.max_send_lag_s = max(result.max_send_lag_s, conn.t_sent - t_ref)
        return True

    def _on_readable(self, sel: selectors.BaseSelector, conn: _Conn, result: LoadResult,
                     busy: set[_Conn]) -> tuple[bool, _Conn | None]:
        """(response complete?, the connection to use next: the same, a fresh one, or None)."""
        if conn not in busy:  # an idle connection became readable: the server closed it (keep-alive timeout)
            self._drop(sel, conn)
            return False, self._open(sel, result)
        try:
            status = conn.read()
        except OSError as exc:
            busy.discard(conn)
            result.errors[f"recv:{type(exc).__name__}"] += 1
            result.statuses[-1] += 1
            self._drop(sel, conn)
            return True, self._open(sel, result)
        if status is None:
            return False, conn
        now = time.monotonic()
        busy.discard(conn)
        result.statuses[status] += 1
        if status == 200:
            result.latencies.append(now - conn.t_ref)
            if self.keep_ids:
                result.ok_ids.append(conn.tag)
        result.finished = now
        if conn.keep_alive:
            return True, conn
        self._drop(sel, conn)
        return True, self._open(sel, result)

    def closed_loop(self, factory: WebhookFactory, *, concurrency: int, duration_s: float,
                    target: str = "") -> LoadResult:
        """Each of `concurrency` connections sends its next request as soon as the previous answer arrived."""
        result = LoadResult("closed", target or factory.path, None, duration_s)
        sel = selectors.DefaultSelector()
        conns = [c for c in (self._open(sel, result) for _ in range(concurrency)) if c is not None]
        busy: set[_Conn] = set()
        cpu0 = time.process_time()
        result.started = time.monotonic()
        deadline = result.started + duration_s
        hard_deadline = deadline + 15.0
        for conn in conns:
            raw, tag = factory.next()
            if self._send(sel, conn, raw, time.monotonic(), tag, result):
                busy.add(conn)
        try:
            while busy and time.monotonic() < hard_deadline:
                for key, _ in sel.select(timeout=0.5):
                    conn = key.data
                    done, nxt = self._on_readable(sel, conn, result, busy)
                    if done and nxt is not None and time.monotonic() < deadline:
                        raw, tag = factory.next()
                        if self._send(sel, nxt, raw, time.monotonic(), tag, result):
                            busy.add(nxt)
        finally:
            result.errors["unanswered"] += len(busy)
            result.statuses[-1] += len(busy)
            for key in list(sel.get_map().values()):
                self._drop(sel, key.data)
            sel.close()
        if not result.errors["unanswered"]:
            del result.errors["unanswered"]
        result.client_cpu_s = time.process_time() - cpu0
        return result

    def open_loop(self, factory: WebhookFactory, *, rate: float, duration_s: float, connections: int = 16,
                  max_connections: int = 128, target: str = "") -> LoadResult:
        """Request i is due at start + i/rate; latency is counted from that due time (no coordinated omission).

        A request finding no idle connection opens one (up to `max_connections`), else waits in a
        backlog, its clock running.
        """
        result = LoadResult("open", target or factory.path, rate, duration_s)
        sel = selectors.DefaultSelector()
        idle: deque[_Conn] = deque(c for c in (self._open(sel, result) for _ in range(connections)) if c is not None)
        busy: set[_Conn] = set()
        backlog: deque[tuple[float, bytes, str]] = deque()
        total = int(round(rate * duration_s))
        interval = 1.0 / rate
        cpu0 = time.process_time()
        result.started = time.monotonic()
        hard_deadline = result.started + duration_s + 30.0
        i = 0

        def dispatch(due: float, raw: bytes, tag: str) -> None:
            conn: _Conn | None = None
            while idle and conn is None:
                conn = idle.popleft()
            if conn is None and len(busy) + len(idle) < max_connections:
                conn = self._open(sel, result)
            if conn is None:
                backlog.append((due, raw, tag))
                return
            if self._send(sel, conn, raw, due, tag, result):
                busy.add(conn)

        try:
            while (i < total or busy or backlog) and time.monotonic() < hard_deadline:
                now = time.monotonic()
                while i < total and result.started + i * interval <= now:
                    raw, tag = factory.next()
                    dispatch(result.started + i * interval, raw, tag)
                    i += 1
                timeout = max(0.0, result.started + i * interval - time.monotonic()) if i < total else 0.5
                for key, _ in sel.select(timeout=timeout):
                    conn = key.data
                    if conn not in busy:  # idle and readable: the server closed it
                        with contextlib.suppress(ValueError):
                            idle.remove(conn)
                    done, nxt = self._on_readable(sel, conn, result, busy)
                    if nxt is None:
                        continue
                    if not done and nxt is conn:
                        continue  # partial response
                    if backlog:
                        due, raw, tag = backlog.popleft()
                        if self._send(sel, nxt, raw, due, tag, result):
                            busy.add(nxt)
                    else:
                        idle.append(nxt)
        finally:
            result.errors["unanswered"] += len(busy) + len(backlog)
            result.statuses[-1] += len(busy) + len(backlog)
            for key in list(sel.get_map().values()):
                self._drop(sel, key.data)
            sel.close()
        if not result.errors["unanswered"]:
            del result.errors["unanswered"]
        if result.finished < result.started:
            result.finished = time.monotonic()
        result.client_cpu_s = time.process_time() - cpu0
        return result
