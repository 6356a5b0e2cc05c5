"""Request body limits, enforced before any view reads a byte: declared lengths and chunked bodies alike.

Two gaps this closes. A chunked body (`Transfer-Encoding: chunked`) has no
Content-Length, so a view's own smaller limit (`/internal/events`: 64 KiB)
could only be checked after reading it up to the app-wide MAX_CONTENT_LENGTH.
And refusing a body without reading it lets the server close the connection
on a client that is still sending: TCP then resets the connection and the
client never sees the 413.

`BodyLimit` wraps the WSGI application:
- a declared Content-Length over the path's limit: the body is read and
  discarded (up to DRAIN_LIMIT_BYTES), then 413;
- a chunked body: read up to the limit; past it, the rest is discarded (up to
  DRAIN_LIMIT_BYTES), then 413; within it, the view gets it as an ordinary
  body with a Content-Length, so nothing is ever parsed past the limit;
- a malformed chunked body: 400.
Past DRAIN_LIMIT_BYTES the answer is still 413; the server closes the
connection, as it must with unread bytes left.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
_READ_BYTES = 64 * 1024
# WSGI request variables (PEP 3333), not process settings.
_PATH, _CONTENT_LENGTH, _TRANSFER_ENCODING = "PATH_INFO", "CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"


class BodyLimit:
    """WSGI middleware: `default_limit` bytes per request body, `limits[path]` for the paths that want less."""

    def __init__(self, app: WSGIApplication, default_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits: dict[str, int] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        limit = self.limits.get(environ.get(_PATH, ""), self.default_limit)
        stream: IO[bytes] = environ["wsgi.input"]
        try:
            if "chunked" in environ.get(_TRANSFER_ENCODING, "").lower():
                body = _read(stream, limit + 1)
                if len(body) > limit:
                    _read(stream, DRAIN_LIMIT_BYTES, keep=False)
                    return _answer(start_response, 413, "too_large", f"the body must be at most {limit} bytes")
                environ["wsgi.input"] = io.BytesIO(body)
                environ[_CONTENT_LENGTH] = str(len(body))
                del environ[_TRANSFER_ENCODING]
            else:
                declared = environ.get(_CONTENT_LENGTH, "")
                length = int(declared) if declared.isascii() and declared.isdigit() else 0
                if length > limit:
                    _read(stream, min(length, DRAIN_LIMIT_BYTES), keep=False)
                    return _answer(start_response, 413, "too_large", f"the body must be at most {limit} bytes")
        except (OSError, ValueError):  # a malformed chunk header or size
            return _answer(start_response, 400, "bad_request", "the chunked body is malformed")
        return self.app(environ, start_response)


def init_app(app: Flask, default_limit: int) -> None:
    """Wrap the app; blueprints then lower the limit of their own paths with `limit_path`."""
    middleware = BodyLimit(app.wsgi_app, default_limit)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    app.extensions["body_limit"] = middleware


def limit_path(app: Flask, path: str, limit: int) -> None:
    middleware: BodyLimit = app.extensions["body_limit"]
    middleware.limits[path] = limit


def _read(stream: IO[bytes], size: int, *, keep: bool = True) -> bytes:
    """Up to `size` bytes of the stream (fewer at its end); with keep=False they are discarded as they come."""
    kept: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, _READ_BYTES))
        if not chunk:
            break
        left -= len(chunk)
        if keep:
            kept.append(chunk)
    return b"".join(kept)


def _answer(start_response: StartResponse, status: int, error: str, message: str) -> list[bytes]:
    body = json.dumps({"error": error, "message": message}).encode()
    reason = {400: "BAD REQUEST", 413: "REQUEST ENTITY TOO LARGE"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
