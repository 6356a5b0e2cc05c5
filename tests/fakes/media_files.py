"""Customers' files as Meta and Twilio serve them for download, for the loopback fakes (issue 17).

`MediaShelf` holds the files a test puts up (`add`), each able to fail its next N requests with a 5xx or
to be gone. `graph_get` answers Meta's two steps on the fake Graph API: GET /<version>/<media_id> (bearer
token) -> {url, mime_type, sha256, file_size, id, messaging_product}, then GET <url> (the same bearer) ->
the bytes; a gone id gets Meta's error 100 ("does not exist"). `twilio_get` answers a MediaUrl
(/2010-04-01/Accounts/<AC>/Messages/<MM>/Media/<ME>, basic auth) with a 307 to Twilio's CDN, here the same
server under the host name `localhost` instead of `127.0.0.1`, which serves the bytes without credentials
and records any Authorization header it is sent (there must be none).

Imports nothing from the project: it is Meta and Twilio, not us.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

_GRAPH_INFO = re.compile(r"^/(v\d+\.\d+)/([A-Za-z0-9_.-]+)$")
_GRAPH_BYTES = re.compile(r"^/whatsapp_business/attachments/([A-Za-z0-9_.-]+)$")
_TWILIO_MEDIA = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages/(MM[0-9a-fA-F]{32})/Media/"
                           r"(ME[0-9a-fA-F]{32})$")
_TWILIO_CDN = re.compile(r"^/cdn/(ME[0-9a-fA-F]{32})$")


@dataclass
class FakeFile:
    data: bytes
    mime: str
    failures: int = 0  # the next N requests for it get a 5xx
    gone: bool = False
    declared_size: int | None = None  # what Meta's media info says (default: the real size)
    url_expiries: int = 0  # the next N downloads of its URL find it expired (Meta: 404 after 5 minutes)


@dataclass
class MediaShelf:
    files: dict[str, FakeFile] = field(default_factory=dict)
    # every GET: (path, Authorization header or "") in arrival order
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, media_id: str, data: bytes, mime: str, *, failures: int = 0, gone: bool = False,
            declared_size: int | None = None, url_expiries: int = 0) -> str:
        with self.lock:
            self.files[media_id] = FakeFile(data, mime, failures, gone, declared_size, url_expiries)
        return media_id

    def _expired(self, media_id: str) -> bool:
        with self.lock:
            found = self.files.get(media_id)
            if found is None or found.url_expiries <= 0:
                return False
            found.url_expiries -= 1
            return True

    def _take(self, media_id: str) -> tuple[str, FakeFile | None]:
        """'ok', 'fail' (a scripted 5xx, counted) or 'gone' for a request of this file."""
        with self.lock:
            found = self.files.get(media_id)
            if found is None or found.gone:
                return "gone", None
            if found.failures > 0:
                found.failures -= 1
                return "fail", found
            return "ok", found

    def _record(self, path: str, authorization: str) -> None:
        with self.lock:
            self.requests.append((path, authorization))

    def gets(self, prefix: str = "") -> list[tuple[str, str]]:
        with self.lock:
            return [r for r in self.requests if r[0].startswith(prefix)]


def twilio_media_url(base_url: str, account_sid: str, media_sid: str | None = None) -> tuple[str, str]:
    """(a MediaUrl as Twilio posts it, on the fake's base URL; its media sid)."""
    sid = media_sid or "ME" + uuid.uuid4().hex
    return f"{base_url}/2010-04-01/Accounts/{account_sid}/Messages/MM{uuid.uuid4().hex}/Media/{sid}", sid


def send_raw(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str,
             headers: dict[str, str] | None = None) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
    except OSError:
        pass


def _json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    import json

    send_raw(handler, status, json.dumps(payload).encode(), "application/json")


def _meta_error(code: int, message: str, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException" if code == 190 else "GraphMethodException",
                             "code": code, "fbtrace_id": "A" + uuid.uuid4().hex[:22]}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def graph_get(handler: BaseHTTPRequestHandler, shelf: MediaShelf, base_url: str, tokens: set[str]) -> None:
    """Meta's media endpoints: the info of a media id, and the bytes behind its URL (both need the bearer)."""
    path = urlsplit(handler.path).path
    authorization = handler.headers.get("Authorization") or ""
    shelf._record(path, authorization)
    if authorization.removeprefix("Bearer ") not in tokens:
        _json(handler, 401, _meta_error(190, "Invalid OAuth access token - Cannot parse access token"))
        return
    if match := _GRAPH_BYTES.match(path):
        outcome, found = shelf._take(match.group(1))
        if outcome == "gone" or found is None or shelf._expired(match.group(1)):
            send_raw(handler, 404, b"", "text/plain")
        elif outcome == "fail":
            send_raw(handler, 503, b"", "text/plain")
        else:
            send_raw(handler, 200, found.data, found.mime)
        return
    if match := _GRAPH_INFO.match(path):
        media_id = match.group(2)
        outcome, found = shelf._take(media_id)
        if outcome == "gone" or found is None:
            _json(handler, 400, _meta_error(
                100, f"Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due "
                     "to missing permissions, or does not support this operation.", 33))
        elif outcome == "fail":
            _json(handler, 500, _meta_error(131000, "(#131000) Something went wrong"))
        else:
            size = found.declared_size if found.declared_size is not None else len(found.data)
            _json(handler, 200, {
                "messaging_product": "whatsapp", "url": f"{base_url}/whatsapp_business/attachments/{media_id}",
                "mime_type": found.mime, "sha256": hashlib.sha256(found.data).hexdigest(),
                "file_size": size, "id": media_id})
        return
    _json(handler, 400, _meta_error(100, "Unsupported get request."))


def twilio_get(handler: BaseHTTPRequestHandler, shelf: MediaShelf, accounts: dict[str, str]) -> None:
    """A MediaUrl (basic auth of the account, or of its parent) -> 307 to the CDN; the CDN serves the bytes."""
    path = urlsplit(handler.path).path
    authorization = handler.headers.get("Authorization") or ""
    shelf._record(path, authorization)
    if match := _TWILIO_CDN.match(path):
        outcome, found = shelf._take(match.group(1))
        if found is None or outcome != "ok":
            send_raw(handler, 404 if outcome == "gone" else 503, b"", "text/plain")
        else:
            send_raw(handler, 200, found.data, found.mime)
        return
    match = _TWILIO_MEDIA.match(path)
    if match is None:
        _json(handler, 404, {"code": 20404, "message": "The requested resource was not found", "status": 404})
        return
    allowed = {"Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode() for sid, token in accounts.items()}
    if authorization not in allowed:
        _json(handler, 401, {"code": 20003, "message": "Authenticate", "status": 401})
        return
    with shelf.lock:
        exists = match.group(3) in shelf.files and not shelf.files[match.group(3)].gone
    if not exists:
        _json(handler, 404, {"code": 20404, "message": "The requested resource was not found", "status": 404})
        return
    port = handler.server.server_address[1]
    send_raw(handler, 307, b"", "text/plain", {"Location": f"http://localhost:{port}/cdn/{match.group(3)}"})
