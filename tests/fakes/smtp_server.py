"""A mail server on loopback speaking enough SMTP (RFC 5321) for a submission client such as smtplib.

Greeting, EHLO/HELO, AUTH PLAIN and AUTH LOGIN (any credentials, or only
`users` when given; 535 otherwise), MAIL FROM, RCPT TO, DATA up to the lone
".", RSET, NOOP, QUIT. With `tls` (an ssl.SSLContext for the server side) it
also offers STARTTLS. Every accepted message is recorded as a `Received` with
the envelope, the login used and the parsed message; `wait_for(n)` blocks
until n messages arrived.

Imports nothing from the project: it is a mail server, not us. (The standard
library's smtpd is deprecated and gone in 3.12, hence this.)
"""

from __future__ import annotations

import base64
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self, cast

from tests.fakes.loopback import serve_in_thread, stop_serving

HOSTNAME = "fake-smtp.test"
MAX_LINE = 1000  # RFC 5321 4.5.3.1.6, CRLF included


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_to: tuple[str, ...]
    user: str | None
    tls: bool
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None, "no text/plain part"
        return str(cast(EmailMessage, body).get_content())


class _Session(socketserver.StreamRequestHandler):
    fake: FakeSMTPServer
    timeout = 10

    def handle(self) -> None:
        self.tls = False
        self.user: str | None = None
        self._reset()
        self._say("220 " + HOSTNAME + " ESMTP ready")
        while True:
            line = self._line()
            if line is None:
                return
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                self._say("221 2.0.0 bye")
                return
            handler = getattr(self, "_cmd_" + verb.lower(), None)
            if handler is None:
                self._say("502 5.5.1 command not implemented")
            elif handler(arg) is False:
                return

    def finish(self) -> None:
        super().finish()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.close()

    # -- the wire -------------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def _line(self) -> str | None:
        raw = self.rfile.readline(MAX_LINE + 1)
        if not raw:
            return None
        return raw.rstrip(b"\r\n").decode("utf-8", "replace")

    def _reset(self) -> None:
        self.mail_from: str | None = None
        self.rcpt_to: list[str] = []

    # -- commands -------------------------------------------------------------------------------------

    def _cmd_ehlo(self, arg: str) -> None:
        if not arg:
            self._say("501 5.5.4 EHLO needs a domain")
            return
        self._reset()
        lines = [HOSTNAME, "8BITMIME", "SMTPUTF8", "SIZE 10485760", "AUTH PLAIN LOGIN"]
        if self.fake.tls is not None and not self.tls:
            lines.append("STARTTLS")
        for line in lines[:-1]:
            self._say("250-" + line)
        self._say("250 " + lines[-1])

    def _cmd_helo(self, arg: str) -> None:
        self._reset()
        self._say("250 " + HOSTNAME if arg else "501 5.5.4 HELO needs a domain")

    def _cmd_noop(self, arg: str) -> None:
        self._say("250 2.0.0 ok")

    def _cmd_rset(self, arg: str) -> None:
        self._reset()
        self._say("250 2.0.0 ok")

    def _cmd_starttls(self, arg: str) -> bool:
        if self.fake.tls is None or self.tls:
            self._say("502 5.5.1 STARTTLS not offered")
            return True
        self._say("220 2.0.0 ready to start TLS")
        try:
            wrapped = self.fake.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return False  # the client refused our certificate: nothing more is said on this connection
        self.rfile.close()
        self.wfile.close()
        self.connection = self.request = wrapped
        self.rfile, self.wfile = wrapped.makefile("rb"), wrapped.makefile("wb")
        self.tls = True
        self.user = None
        self._reset()
        return True

    def _cmd_auth(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() == "PLAIN":
            answer = initial or self._ask("")
            try:
                _, user, password = base64.b64decode(answer).decode().split("\0")
            except ValueError:
                self._say("501 5.5.2 malformed AUTH PLAIN")
                return
        elif mechanism.upper() == "LOGIN":
            try:
                user = base64.b64decode(initial or self._ask("VXNlcm5hbWU6")).decode()
                password = base64.b64decode(self._ask("UGFzc3dvcmQ6")).decode()
            except ValueError:
                self._say("501 5.5.2 malformed AUTH LOGIN")
                return
        else:
            self._say("504 5.5.4 unrecognized authentication type")
            return
        self.fake.logins.append((user, password))
        if self.fake.users is not None and self.fake.users.get(user) != password:
            self._say("535 5.7.8 authentication credentials invalid")
            return
        self.user = user
        self._say("235 2.7.0 authentication successful")

    def _ask(self, challenge: str) -> str:
        self._say("334 " + challenge)
        return self._line() or ""

    def _cmd_mail(self, arg: str) -> None:
        if not arg.upper().startswith("FROM:"):
            self._say("501 5.5.4 syntax: MAIL FROM:<address>")
        elif self.fake.users is not None and self.user is None:
            self._say("530 5.7.0 authentication required")
        else:
            self._reset()
            self.mail_from = _address(arg[5:])
            self._say("250 2.1.0 ok")

    def _cmd_rcpt(self, arg: str) -> None:
        if self.mail_from is None:
            self._say("503 5.5.1 MAIL first")
        elif not arg.upper().startswith("TO:") or "@" not in arg:
            self._say("501 5.5.4 syntax: RCPT TO:<address>")
        else:
            self.rcpt_to.append(_address(arg[3:]))
            self._say("250 2.1.5 ok")

    def _cmd_data(self, arg: str) -> bool:
        if self.mail_from is None or not self.rcpt_to:
            self._say("503 5.5.1 MAIL and RCPT first")
            return True
        self._say("354 end data with <CR><LF>.<CR><LF>")
        lines: list[bytes] = []
        while True:
            raw = self.rfile.readline(MAX_LINE + 1)
            if not raw:
                return False
            if raw in (b".\r\n", b".\n"):
                break
            lines.append(raw[1:] if raw.startswith(b"..") else raw)  # dot-unstuffing
        self.fake.record(Received(self.mail_from, tuple(self.rcpt_to), self.user, self.tls, b"".join(lines)))
        self._reset()
        self._say("250 2.0.0 queued")
        return True


def _address(arg: str) -> str:
    """'<a@b> SIZE=12' -> 'a@b'"""
    return arg.strip().split(" ")[0].strip("<>")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-conversation is not a test failure."""


class FakeSMTPServer:
    """`received` lists accepted messages in arrival order; `logins` every (user, password) tried."""

    def __init__(self, *, users: dict[str, str] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.users = users
        self.tls = tls
        self.received: list[Received] = []
        self.logins: list[tuple[str, str]] = []
        self._arrived = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    def record(self, message: Received) -> None:
        with self._arrived:
            self.received.append(message)
            self._arrived.notify_all()

    def wait_for(self, count: int = 1, timeout_s: float = 10.0) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout_s):
                raise AssertionError(f"{len(self.received)} message(s) arrived, expected {count}")
            return list(self.received)

    def start(self) -> Self:
        handler = type("Session", (_Session,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = serve_in_thread(self._server, "FakeSMTPServer")
        return self

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
