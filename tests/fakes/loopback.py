"""The HTTP plumbing the loopback fakes share (Graph API, Twilio, OpenAI, Gemini).

`LoopbackServer`: a ThreadingHTTPServer on 127.0.0.1 (a free port) in a
daemon thread, with `url`, start/stop and use as a context manager, a `lock`
for what the fake records and a `released` event for held answers.
`JSONHandler`: quiet, reads the body, hands each POST to the fake's
`handle(path, headers, body)` and sends its `(status, payload)` as JSON.
`ScriptedServer` adds a queue of `Script`s (an error and/or a delay) for the
next requests, for fakes whose tests script failures that way.

Only plumbing lives here; each fake keeps its provider's wire format.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def header(headers: dict[str, str], name: str) -> str:
    """The value of header `name` (any case), or ""."""
    return {k.lower(): v for k, v in headers.items()}.get(name.lower(), "")


class JSONHandler(BaseHTTPRequestHandler):
    """Answers POSTs with `fake.handle(path, headers, body) -> (status, payload)`; logs nothing."""

    fake: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        return

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        status, payload = self.fake.handle(self.path, dict(self.headers.items()), self.read_body())
        self.reply(status, payload)

    def reply(self, status: int, payload: dict[str, Any] | bytes) -> None:
        """Send `payload` (an object, or body bytes as they are) as application/json."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout test): nothing to answer


def serve_in_thread(server: socketserver.BaseServer, name: str) -> threading.Thread:
    """Serve on a daemon thread (polling for shutdown every 20 ms); the thread is returned started."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=name, daemon=True)
    thread.start()
    return thread


def stop_serving(server: socketserver.BaseServer | None, thread: threading.Thread | None) -> None:
    """Stop a server started with `serve_in_thread` and free its port; either may be None (never started)."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread; subclasses set `handler_class`."""

    handler_class: type[BaseHTTPRequestHandler] = JSONHandler

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.released = threading.Event()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (self.handler_class,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self._thread = serve_in_thread(server, type(self).__name__)
        return self

    def stop(self) -> None:
        self.released.set()
        stop_serving(self._server, self._thread)
        self._server, self._thread = None, None

    def release(self) -> None:
        """Let every held (hung) response go."""
        self.released.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Script:
    """One scripted behaviour for the next request: an error and/or a delay."""

    status: int | None = None
    code: int | None = None
    details: str = ""
    message: str | None = None
    delay_s: float = 0.0
    hang: bool = False


class ScriptedServer(LoopbackServer):
    """A LoopbackServer whose next requests follow a queue of `Script`s; the fake decides what each means."""

    def __init__(self) -> None:
        super().__init__()
        self._scripts: deque[Script] = deque()

    def _enqueue(self, *scripts: Script) -> None:
        with self.lock:
            self._scripts.extend(scripts)

    def delay_next(self, seconds: float, n: int = 1) -> None:
        """Record and accept the next `n` requests, but answer only after `seconds`."""
        self._enqueue(*(Script(delay_s=seconds) for _ in range(n)))

    def _pop_script(self) -> Script | None:
        """The script for the request being handled, if any. Call with `self.lock` held."""
        return self._scripts.popleft() if self._scripts else None
