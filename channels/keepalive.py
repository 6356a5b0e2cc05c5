"""A small keep-alive HTTP/1.1 client for the send path: JSON POSTs to one provider host.

Every reply is one to three POSTs to Meta's Graph API (mark as read, then each
part), so the client's own cost counts: httpx spends ~1.7 ms of CPU per request
on this machine, `http.client` ~0.5 ms (docs/BENCHMARKS.md, "The send path").
This wraps `http.client` with what the transports need and nothing more:

- one persistent connection per thread, reused while the server keeps it open;
  before reuse an idle connection is checked for readability (a server that
  closed it has sent EOF), as httpcore does, and replaced when stale;
- the TLS context is created once per client (creating one loads the CA bundle:
  ~30 ms of CPU);
- failures say whether the request can have reached the server:
  `ConnectFailed` (nothing was sent: connection refused, DNS, TLS handshake,
  connect timeout) or `RequestFailed` (after connecting; `timeout` tells a
  timeout apart). The transports turn these into `SendError`s.
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any


class ConnectFailed(Exception):
    """No connection could be made: the request was not sent."""


class RequestFailed(Exception):
    """The connection broke or timed out after the request started: the server may have received it."""

    def __init__(self, message: str, *, timeout: bool) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class KeepAliveClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout_s
        self._tls = ssl.create_default_context() if self._https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def post_json(self, path: str, body: Any, headers: dict[str, str], timeout_s: float | None = None) -> Response:
        """POST `body` as JSON to base URL + `path` and read the whole answer."""
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        conn = self._connection(timeout_s)
        try:
            conn.request("POST", self._prefix + path, body=data,
                         headers={**headers, "Content-Type": "application/json", "Connection": "keep-alive"})
            answer = conn.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self._discard(conn)
            raise RequestFailed(f"{type(exc).__name__} after connecting", timeout=isinstance(exc, TimeoutError)) \
                from None
        if answer.will_close:
            self._discard(conn)
        return Response(status=answer.status, headers=answer.headers, body=payload)

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()

    def _connection(self, timeout_s: float | None) -> http.client.HTTPConnection:
        timeout = self._timeout if timeout_s is None else timeout_s
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.sock is None or _readable(conn.sock)):
            self._discard(conn)  # closed by the server while idle (EOF is readable), or never connected
            conn = None
        if conn is None:
            if self._tls is not None:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._tls)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            try:
                conn.connect()
            except OSError as exc:
                conn.close()
                raise ConnectFailed(f"{type(exc).__name__} connecting to {self._host}:{self._port}") from None
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        elif conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._open.discard(conn)


def _readable(sock: Any) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
