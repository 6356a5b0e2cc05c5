"""The send path's keep-alive HTTP client against a loopback server: reuse, stale connections, failures."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from channels.keepalive import ConnectFailed, KeepAliveClient, RequestFailed, Response


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[Any] = []
        self.connections = 0
        self.close_after_answer = False
        self.delay_s = 0.0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append({"path": self.path, "body": body, "auth": self.headers["Authorization"],
                                   "type": self.headers["Content-Type"]})
        time.sleep(self.server.delay_s)
        answer = json.dumps({"ok": len(self.server.bodies)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if self.server.close_after_answer:
            # Answer with keep-alive, then drop the idle connection as servers do after their idle timeout.
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(srv: _Server, timeout_s: float = 2.0) -> KeepAliveClient:
    return KeepAliveClient(f"http://127.0.0.1:{srv.server_address[1]}/base/", timeout_s)


def test_posts_json_and_reuses_one_connection(server: _Server) -> None:
    client = _client(server)
    answers = [client.post_json("/v1/messages", {"n": n, "text": "¿ya llegó?"}, {"Authorization": "Bearer t"})
               for n in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.json() for a in answers] == [{"ok": 1}, {"ok": 2}, {"ok": 3}]
    assert server.bodies[0] == {"path": "/base/v1/messages", "body": {"n": 0, "text": "¿ya llegó?"},
                                "auth": "Bearer t", "type": "application/json"}
    assert server.connections == 1
    client.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_and_nothing_is_sent_twice(server: _Server) -> None:
    client = _client(server)
    server.close_after_answer = True
    client.post_json("/m", {"n": 1}, {"Authorization": "Bearer t"})
    time.sleep(0.1)  # the server has closed the idle connection
    answer = client.post_json("/m", {"n": 2}, {"Authorization": "Bearer t"})
    assert answer.json() == {"ok": 2}
    assert [b["body"] for b in server.bodies] == [{"n": 1}, {"n": 2}]
    assert server.connections == 2


def test_refused_connection_means_nothing_was_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectFailed):
        KeepAliveClient(f"http://127.0.0.1:{port}", 1.0).post_json("/m", {}, {})


def test_slow_answer_is_a_timeout_after_sending(server: _Server) -> None:
    server.delay_s = 1.0
    with pytest.raises(RequestFailed) as caught:
        _client(server, timeout_s=0.2).post_json("/m", {"n": 1}, {})
    assert caught.value.timeout
    assert len(server.bodies) == 1  # the server got it: the caller must not resend blindly


def test_non_json_body_reads_as_none_and_only_http_urls_are_accepted() -> None:
    assert Response(status=502, headers=http.client.HTTPMessage(), body=b"<html>Bad gateway</html>").json() is None
    with pytest.raises(ValueError):
        KeepAliveClient("ftp://example.com", 1.0)
