"""A stand-in for Twilio's Programmable Messaging API (`POST …/Messages.json`), on loopback.

Speaks Twilio's wire format: form-encoded requests with HTTP Basic auth
(account SID + auth token; 401 with code 20003 otherwise) and the JSON
message resource (sid "SM…", status "queued") in a 201 answer. It checks what
Twilio would refuse (missing To/From/Body, a body over 1600 characters,
ContentVariables that are not JSON) and records every accepted request.
`fail_next` scripts Twilio errors such as 63016 (outside the 24-hour window),
20429 / HTTP 429 or 500.

Imports nothing from the project: it is Twilio, not us.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from tests.fakes import media_files
from tests.fakes.loopback import JSONHandler, Script, ScriptedServer, header

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "test-twilio-auth-token"
_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")
_ADDRESS = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error envelope for the REST API."""
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class _TwilioHandler(JSONHandler):
    fake: FakeTwilioAPI

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming. Issue 17: MediaUrls, tests/fakes/media_files.py
        with self.fake.lock:
            accounts = {**self.fake.accounts}
        media_files.twilio_get(self, self.fake.media, accounts)


class FakeTwilioAPI(ScriptedServer):
    """Twilio's Messages endpoint. `sent` lists the accepted requests as {param: value or [values]}."""

    handler_class = _TwilioHandler

    def __init__(
        self, *, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.received: list[dict[str, Any]] = []
        self.accepted: list[tuple[str, dict[str, Any]]] = []
        self.accounts: dict[str, str] = {account_sid: auth_token}  # account SID -> auth token (add_account)
        self.sent_by: list[str] = []  # the account SID of each accepted message
        self.media = media_files.MediaShelf()  # customers' files behind MediaUrls (issue 17)

    @property
    def sent(self) -> list[dict[str, Any]]:
        with self.lock:
            return [params for _, params in self.accepted]

    @property
    def sent_ids(self) -> list[str]:
        with self.lock:
            return [sid for sid, _ in self.accepted]

    def messages_to(self, phone: str) -> list[dict[str, Any]]:
        """Accepted requests whose To is `whatsapp:<phone>`."""
        return [p for p in self.sent if p.get("To") == f"whatsapp:{phone}"]

    def add_account(self, account_sid: str, auth_token: str) -> None:
        """Another (sub)account with its own token; the parent's credentials may act on it too."""
        with self.lock:
            self.accounts[account_sid] = auth_token

    def sends_to(self, phone: str) -> list[tuple[str, dict[str, Any]]]:
        """(account SID, params) of the accepted requests whose To is `whatsapp:<phone>`."""
        with self.lock:
            return [(account, params) for account, (_, params) in zip(self.sent_by, self.accepted, strict=True)
                    if params.get("To") == f"whatsapp:{phone}"]

    def fail_next(self, n: int = 1, status: int = 400, code: int = 63016,
                  message: str = "scripted failure") -> None:
        """Answer the next `n` requests with this Twilio error."""
        self._enqueue(*(Script(status=status, code=code, message=message) for _ in range(n)))

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        form = parse_qs(raw.decode(), keep_blank_values=True)
        params: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
        with self.lock:
            self.received.append({"path": path, "headers": headers, "params": params})
            script = self._pop_script()
        match = _PATH.match(path.split("?")[0])
        if not match:
            return 404, error_body(404, 20404, "The requested resource was not found")
        if not self._authorised(headers, match.group(1)):
            return 401, error_body(401, 20003, "Authenticate")
        if script is not None and script.status is not None:
            return script.status, error_body(script.status, script.code or 0, script.message or "error")
        problem = _validate(params)
        if problem is not None:
            return 400, error_body(400, *problem)
        sid = "SM" + uuid.uuid4().hex
        with self.lock:
            self.accepted.append((sid, params))
            self.sent_by.append(match.group(1))
        if script is not None and script.delay_s:
            time.sleep(script.delay_s)
        return 201, self._resource(sid, params, match.group(1))

    def _authorised(self, headers: dict[str, str], account_sid: str) -> bool:
        """The account's own credentials, or the parent account's (it may act for its subaccounts)."""
        with self.lock:
            own = self.accounts.get(account_sid)
        if own is None:
            return False
        allowed = {(account_sid, own), (self.account_sid, self.auth_token)}
        given = header(headers, "authorization")
        return any(given == "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode() for sid, token in allowed)

    def _resource(self, sid: str, params: dict[str, Any], account_sid: str) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"
        return {
            "account_sid": account_sid, "api_version": "2010-04-01", "body": params.get("Body", ""),
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"), "num_media": "0", "num_segments": "1",
            "price": None,
            "price_unit": "USD", "sid": sid, "status": "queued", "to": params.get("To"), "uri": uri,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        }


def _validate(params: dict[str, Any]) -> tuple[int, str] | None:
    """(Twilio error code, message) for a request Twilio would refuse, else None."""
    to, from_ = params.get("To"), params.get("From")
    if not isinstance(to, str) or not _ADDRESS.match(to):
        return 21211, "Invalid 'To' Phone Number"
    service = params.get("MessagingServiceSid")
    if service is not None and not (isinstance(service, str) and _SERVICE.match(service)):
        return 21701, "The Messaging Service Sid is invalid."
    if service is None and (not isinstance(from_, str) or not _ADDRESS.match(from_)):
        return 21212, "Invalid 'From' Phone Number"
    body = params.get("Body")
    if not body and not params.get("ContentSid") and not params.get("MediaUrl"):
        return 21602, "Message body is required."
    if isinstance(body, str) and len(body) > 1600:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    if "ContentVariables" in params:
        try:
            variables = json.loads(params["ContentVariables"])
        except (TypeError, ValueError):
            return 21656, "The ContentVariables Parameter is invalid."
        if not isinstance(variables, dict):
            return 21656, "The ContentVariables Parameter is invalid."
    return None
