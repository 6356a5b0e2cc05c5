"""A stand-in for Meta's Graph API `/<version>/<phone_number_id>/messages`, on loopback.

A real HTTP server in a background thread that speaks Meta's wire format, so
the code under test goes through its real HTTP client. It checks the bearer
token (401, code 190) and the body against the shapes and limits of
CONTRACT §2.2–2.3 (400, code 100, with a `details` string saying what is
wrong) — stricter than Meta in places (markdown in button titles, `to` without
'+'), so a test that passes proves Meta would not reject the message.

Scripting: `fail_next` answers the next message sends with an error,
`delay_next` / `hang_next` hold the answer back (the request is recorded
first: the message counts as sent, as it would at Meta); read receipts are
never scripted, so a test's failure lands on the send it targets.
`enforce_throughput` and `enforce_pair_limit` turn on Meta's rate limits
(130429, 131056).

Media upload (`POST /<version>/<phone_number_id>/media`, multipart: file, type,
messaging_product=whatsapp -> {id}) records each file in `uploads`; an image or
document message must then name an uploaded id (or a link), with a caption of at
most 1024 characters; `upload_failures` answers the next uploads with a 500.

This module imports nothing from the project: it is Meta, not us.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

from tests.fakes import media_files
from tests.fakes.loopback import JSONHandler, Script, ScriptedServer, header

DEFAULT_TOKEN = "test-meta-access-token"
_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)/messages$")
_MEDIA_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)/media$")
# Meta's upload limits and types for what a business sends (Cloud API, "Supported media types")
_UPLOAD_TYPES = {"image/jpeg": 5 * 2**20, "image/png": 5 * 2**20, "application/pdf": 100 * 2**20}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]+$")
_TOP_KEYS = {
    "messaging_product", "recipient_type", "to", "recipient", "type", "context",
    "biz_opaque_callback_data", "text", "interactive", "location", "template", "image", "document",
}
_MARKDOWN = re.compile(r"[*_~`]")


class Rejected(Exception):
    """The request breaks a rule; becomes a Graph API error response."""

    def __init__(self, details: str, *, status: int = 400, code: int = 100, message: str | None = None):
        super().__init__(details)
        self.status, self.code, self.details = status, code, details
        self.message = message or f"(#{code}) Invalid parameter"


def error_body(code: int, message: str, details: str | None = None) -> dict[str, Any]:
    """Meta's error envelope (fixture meta_error_response_130429.json)."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": "A" + uuid.uuid4().hex[:22]}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


@dataclass
class Upload:
    """A file uploaded for a later message: what arrived in the multipart body."""

    id: str
    phone_number_id: str
    mime: str
    filename: str
    data: bytes
    token: str


def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body as {field: (file name or None, bytes)}."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


@dataclass
class Accepted:
    id: str
    path: str
    body: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)
    token: str = ""  # the bearer token it was sent with

    @property
    def phone_number_id(self) -> str:
        """The business number it was sent from (the path's `/<phone_number_id>/messages`)."""
        return self.path.split("/")[2]


def _check_len(value: Any, limit: int, what: str, *, minimum: int = 1) -> None:
    if not isinstance(value, str):
        raise Rejected(f"{what} must be a string")
    if not minimum <= len(value) <= limit:
        raise Rejected(f"{what} must be {minimum}-{limit} characters, got {len(value)}")


def _check_header_footer(interactive: dict[str, Any]) -> None:
    if "header" in interactive:
        header = interactive["header"]
        if not isinstance(header, dict) or header.get("type") != "text":
            raise Rejected("interactive.header must be {type: text, text}")
        _check_len(header.get("text"), 60, "interactive.header.text")
    if "footer" in interactive:
        footer = interactive["footer"]
        _check_len(footer.get("text") if isinstance(footer, dict) else None, 60, "interactive.footer.text")


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise Rejected("action.buttons must have 1-3 buttons")
    titles, ids = set(), set()
    for button in buttons:
        reply = button.get("reply") if isinstance(button, dict) else None
        if button.get("type") != "reply" or not isinstance(reply, dict):
            raise Rejected("each button must be {type: reply, reply: {id, title}}")
        _check_len(reply.get("id"), 256, "button reply.id")
        _check_len(reply.get("title"), 20, "button reply.title")
        if _MARKDOWN.search(reply["title"]):
            raise Rejected("button reply.title must not contain markdown")
        if reply["title"] in titles or reply["id"] in ids:
            raise Rejected("button titles and ids must be unique")
        titles.add(reply["title"])
        ids.add(reply["id"])


def _check_list(action: dict[str, Any]) -> None:
    _check_len(action.get("button"), 20, "action.button")
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise Rejected("action.sections must have 1-10 sections")
    ids: set[str] = set()
    total = 0
    for section in sections:
        if len(sections) > 1 or "title" in section:
            _check_len(section.get("title"), 24, "section.title")
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise Rejected("each section needs rows")
        total += len(rows)
        for row in rows:
            _check_len(row.get("id"), 200, "row.id")
            _check_len(row.get("title"), 24, "row.title")
            if "description" in row:
                _check_len(row["description"], 72, "row.description")
            if row["id"] in ids:
                raise Rejected("row ids must be unique")
            ids.add(row["id"])
    if total > 10:
        raise Rejected(f"a list has at most 10 rows in all sections, got {total}")


def _check_template(template: Any) -> None:
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        raise Rejected("template.name is required")
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        raise Rejected("template.language.code is required")
    for component in template.get("components", []):
        if component.get("type") not in ("header", "body", "button"):
            raise Rejected("template component type must be header, body or button")
        for param in component.get("parameters", []):
            ptype = param.get("type")
            if ptype is None or ptype not in param:
                raise Rejected("each template parameter needs its type and a value under that key")
        if component["type"] == "button" and not (
            component.get("sub_type") and isinstance(component.get("index"), str)
        ):
            raise Rejected("template button components need sub_type and a string index")


def validate_message(body: Any) -> None:
    """Raise Rejected when `body` is not a message Meta would accept (or breaks our stricter rules)."""
    if not isinstance(body, dict):
        raise Rejected("body must be a JSON object")
    unknown = set(body) - _TOP_KEYS
    if unknown:
        raise Rejected(f"unknown parameters: {sorted(unknown)}")
    if body.get("messaging_product") != "whatsapp":
        raise Rejected("messaging_product must be whatsapp")
    if body.get("recipient_type", "individual") != "individual":
        raise Rejected("recipient_type must be individual")
    if "to" in body:
        if not isinstance(body["to"], str) or not _E164.match(body["to"]):
            raise Rejected("to must be an E.164 phone number with '+'")
    elif not isinstance(body.get("recipient"), str) or not _BSUID.match(body["recipient"]):
        raise Rejected("to (phone) or recipient (BSUID) is required")
    if "biz_opaque_callback_data" in body:
        _check_len(body["biz_opaque_callback_data"], 512, "biz_opaque_callback_data")
    mtype = body.get("type")
    if mtype not in ("text", "interactive", "location", "template", "image", "document") \
            or not isinstance(body.get(mtype), dict):
        raise Rejected(f"unsupported or missing type {mtype!r}")
    content = body[mtype]
    if mtype == "text":
        _check_len(content.get("body"), 4096, "text.body")
        if not isinstance(content.get("preview_url", False), bool):
            raise Rejected("text.preview_url must be a boolean")
    elif mtype == "interactive":
        body_obj = content.get("body")
        text = body_obj.get("text") if isinstance(body_obj, dict) else None
        _check_len(text, 1024, "interactive.body.text")
        _check_header_footer(content)
        action = content.get("action")
        if not isinstance(action, dict):
            raise Rejected("interactive.action is required")
        if content.get("type") == "button":
            _check_buttons(action)
        elif content.get("type") == "list":
            _check_list(action)
        else:
            raise Rejected("interactive.type must be button or list")
    elif mtype in ("image", "document"):
        if not isinstance(content.get("id"), str) and not isinstance(content.get("link"), str):
            raise Rejected(f"{mtype} needs an uploaded media id or a link")
        if "caption" in content:
            _check_len(content["caption"], 1024, f"{mtype}.caption")
        if "filename" in content and (mtype != "document" or not isinstance(content["filename"], str)):
            raise Rejected("only a document has a filename, as a string")
    elif mtype == "location":
        lat, lng = content.get("latitude"), content.get("longitude")
        if not isinstance(lat, int | float) or not isinstance(lng, int | float):
            raise Rejected("location latitude and longitude must be numbers")
    else:
        _check_template(content)


class _GraphHandler(JSONHandler):
    """HTTP/1.0, one connection per request; bench/ subclasses it for keep-alive (with TCP_NODELAY)."""

    fake: FakeGraphAPI

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming. Issue 17: customers' media, tests/fakes/media_files.py
        with self.fake.lock:
            tokens = {self.fake.access_token, *self.fake._tokens.values()}
        media_files.graph_get(self, self.fake.media, self.fake.url, tokens)


class FakeGraphAPI(ScriptedServer):
    """Meta's messages endpoint. `sent` lists the accepted message bodies, in arrival order."""

    handler_class = _GraphHandler

    def __init__(self, *, access_token: str = DEFAULT_TOKEN, phone_number_id: str | None = None) -> None:
        super().__init__()
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.received: list[dict[str, Any]] = []  # every POST: path, headers, body (parsed or None)
        self.accepted: list[Accepted] = []
        self.read_receipts: list[dict[str, Any]] = []
        self.read_receipt_numbers: list[str] = []  # the business number of each read receipt
        self.uploads: list[Upload] = []  # files uploaded for messages (POST /<ver>/<number>/media)
        self.upload_failures = 0  # the next N uploads get a 500 (code 131000), like a busy Graph API
        self.media = media_files.MediaShelf()  # customers' files to download (GET /<ver>/<media_id>; issue 17)
        self._tokens: dict[str, str] = {}  # phone_number_id -> its own token (add_number)
        self._throughput_mps: int | None = None
        self._pair_limit: tuple[int, float] | None = None

    # --- what arrived -------------------------------------------------------------------

    @property
    def sent(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a.body for a in self.accepted]

    @property
    def sent_ids(self) -> list[str]:
        with self.lock:
            return [a.id for a in self.accepted]

    def messages_to(self, recipient: str) -> list[dict[str, Any]]:
        """Accepted bodies addressed to a phone ('+503…') or a BSUID."""
        return [b for b in self.sent if recipient in (b.get("to"), b.get("recipient"))]

    def sends_to(self, recipient: str) -> list[Accepted]:
        """Accepted messages addressed to a phone or BSUID, with the number and token each was sent with."""
        with self.lock:
            return [a for a in self.accepted if recipient in (a.body.get("to"), a.body.get("recipient"))]

    def add_number(self, phone_number_id: str, access_token: str) -> None:
        """Another business's number, which only its own token may send from (Meta: one token per business)."""
        with self.lock:
            self._tokens[phone_number_id] = access_token

    # --- scripting ----------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, code: int = 131000, details: str = "scripted failure",
                  *, message: str | None = None) -> None:
        """Answer the next `n` message sends (not read receipts) with this error."""
        self._enqueue(*(Script(status=status, code=code, details=details, message=message) for _ in range(n)))

    def hang_next(self, n: int = 1) -> None:
        """Record the next `n` requests and hold the answers until `release()` or `stop()`."""
        self.released.clear()
        self._enqueue(*(Script(hang=True) for _ in range(n)))

    def enforce_throughput(self, mps: int | None) -> None:
        """Refuse with 130429 above `mps` messages in any 1-second window per number (None: off)."""
        self._throughput_mps = mps

    def enforce_pair_limit(self, max_messages: int | None, per_seconds: float = 6.0) -> None:
        """Refuse with 131056 above `max_messages` to one recipient within `per_seconds` (None: off)."""
        self._pair_limit = None if max_messages is None else (max_messages, per_seconds)

    # --- the endpoint -------------------------------------------------------------------

    def upload(self, media_id: str) -> Upload | None:
        with self.lock:
            return next((u for u in self.uploads if u.id == media_id), None)

    def _upload(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """POST /<ver>/<number>/media: multipart file + type + messaging_product -> {id}."""
        number = path.split("/")[2]
        with self.lock:
            token = self._tokens.get(number)
        sent_with = header(headers, "authorization").removeprefix("Bearer ")
        if sent_with != (token or self.access_token):
            return 401, error_body(190, "Invalid OAuth access token - Cannot parse access token")
        with self.lock:
            failing, self.upload_failures = self.upload_failures > 0, max(0, self.upload_failures - 1)
        if failing:
            return 500, error_body(131000, "(#131000) Something went wrong", "scripted upload failure")
        fields = parse_multipart(header(headers, "content-type"), raw)
        if fields.get("messaging_product", (None, b""))[1] != b"whatsapp":
            return 400, error_body(100, "(#100) Invalid parameter", "messaging_product must be whatsapp")
        mime = fields.get("type", (None, b""))[1].decode()
        filename, data = fields.get("file", (None, b""))
        if "file" not in fields or filename is None:
            return 400, error_body(100, "(#100) Invalid parameter", "file is required")
        if mime not in _UPLOAD_TYPES:
            return 400, error_body(131053, "(#131053) Media upload error", f"unsupported type {mime!r}")
        if not data or len(data) > _UPLOAD_TYPES[mime]:
            return 400, error_body(131053, "(#131053) Media upload error", "file empty or over the limit")
        media_id = str(uuid.uuid4().int)[:16]
        with self.lock:
            self.uploads.append(Upload(media_id, number, mime, filename, data, sent_with))
        return 200, {"id": media_id}

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        if _MEDIA_PATH.match(path):
            return self._upload(path, headers, raw)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        is_receipt = isinstance(body, dict) and body.get("status") == "read"
        with self.lock:
            self.received.append({"path": path, "headers": headers, "body": body})
            # scripted failures and delays apply to message sends, not to read receipts
            script = None if is_receipt else self._pop_script()
        match = _PATH.match(path)
        with self.lock:
            token = self._tokens.get(match.group(2)) if match else None
        sent_with = header(headers, "authorization").removeprefix("Bearer ")
        if sent_with != (token or self.access_token):
            return 401, error_body(190, "Invalid OAuth access token - Cannot parse access token")
        if not match:
            return 404, error_body(100, "Unsupported post request.", "unknown path")
        number = match.group(2)
        if self.phone_number_id and number != self.phone_number_id and token is None:
            return 400, error_body(100, f"Unsupported post request. Object with ID '{number}' does not exist",
                                   "unknown phone number id")
        if script is not None and script.status is not None:
            return script.status, error_body(script.code or 0, script.message or f"(#{script.code}) error",
                                             script.details)
        try:
            if isinstance(body, dict) and body.get("status") == "read":
                return self._mark_read(body, number)
            validate_message(body)
            self._check_rate_limits(number, body)
        except Rejected as exc:
            return exc.status, error_body(exc.code, exc.message, exc.details)
        wamid = "wamid." + uuid.uuid4().hex
        with self.lock:
            self.accepted.append(Accepted(id=wamid, path=path, body=body, token=sent_with))
        if script is not None and script.hang:
            self.released.wait(timeout=60)
        elif script is not None and script.delay_s:
            time.sleep(script.delay_s)
        if "to" in body:
            contact = {"input": body["to"], "wa_id": body["to"].lstrip("+")}
        else:
            contact = {"input": body["recipient"], "user_id": body["recipient"]}
        return 200, {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}

    def _mark_read(self, body: dict[str, Any], number: str) -> tuple[int, dict[str, Any]]:
        if not isinstance(body.get("message_id"), str) or body.get("messaging_product") != "whatsapp":
            raise Rejected("mark as read needs messaging_product and message_id")
        indicator = body.get("typing_indicator")
        if indicator is not None and indicator != {"type": "text"}:
            raise Rejected("typing_indicator must be {type: text}")
        with self.lock:
            self.read_receipts.append(body)
            self.read_receipt_numbers.append(number)
        return 200, {"success": True}

    def _check_rate_limits(self, number: str, body: dict[str, Any]) -> None:
        if self._throughput_mps is None and self._pair_limit is None:
            return  # limits off: no need to scan everything recorded so far
        now = time.monotonic()
        with self.lock:
            recent = [a for a in self.accepted if a.path.split("/")[2] == number]
            if self._throughput_mps is not None:
                in_window = sum(1 for a in recent if now - a.received_at < 1.0)
                if in_window >= self._throughput_mps:
                    raise Rejected("Cloud API message throughput has been reached.", code=130429,
                                   message="(#130429) Rate limit hit")
            if self._pair_limit is not None:
                limit, window = self._pair_limit
                who = body.get("to") or body.get("recipient")
                to_same = sum(1 for a in recent if (a.body.get("to") or a.body.get("recipient")) == who
                              and now - a.received_at < window)
                if to_same >= limit:
                    raise Rejected("Message failed to send because there were too many messages sent from "
                                   "this phone number to the same phone number in a short period of time.",
                                   code=131056, message="(#131056) (Business Account, Consumer Account) "
                                   "pair rate limit hit")
