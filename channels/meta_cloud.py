"""Sending through Meta's WhatsApp Cloud API (Graph API `/<phone_number_id>/messages`).

This module owns the base URL, the bearer token, timeouts and the wire format
(CONTRACT §2.1–2.2): every message is first fitted to WhatsApp's limits
(`channels.limits.fit`), then each part is POSTed as its own request. Every
failure, including timeouts and connection errors, comes out as a
`channels.errors.SendError` chosen by Meta's error code. It does not retry
and does not throttle: the worker decides when to try again and takes a token
from `runtime.throttle` before calling `send`.

Nothing here logs a message body, a phone number or the token.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from channels import limits, media_download
from channels.accounts import ChannelAccount
from channels.errors import (
    BAD_REQUEST,
    UNAVAILABLE,
    PermanentSendError,
    SendError,
    TransientSendError,
    classify_meta_error,
)
from channels.events import e164
from channels.keepalive import ConnectFailed, KeepAliveClient, RequestFailed, Response
from channels.media_download import MediaFetchError, MediaInfo
from channels.outbound import (
    Buttons,
    ChoiceList,
    Location,
    Media,
    OutboundMessage,
    Recipient,
    SendResult,
    Template,
    Text,
)
from config import Settings

log = logging.getLogger(__name__)

# Issue 17: where Meta serves media from (the bearer token goes to these and the Graph host only)
_META_MEDIA_HOSTS = (".fbsbx.com", ".facebook.com", ".fbcdn.net", ".whatsapp.net")
_MEDIA_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

OPAQUE_DATA_MAX = 512  # Meta's limit for biz_opaque_callback_data
CAPTION_MAX = 1024  # Meta's limit for a media caption
UPLOAD_TIMEOUT_S = 120.0  # a 100 MB document takes a while on a slow uplink


def _header(text: str | None) -> dict[str, Any]:
    return {"header": {"type": "text", "text": text}} if text else {}


def _footer(text: str | None) -> dict[str, Any]:
    return {"footer": {"text": text}} if text else {}


def message_payload(message: OutboundMessage) -> dict[str, Any]:
    """The `type` and type-specific object of the request body for one (already fitted) message."""
    if isinstance(message, Text):
        return {"type": "text", "text": {"body": message.body, "preview_url": False}}
    if isinstance(message, Buttons):
        buttons = [{"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in message.buttons]
        interactive = {
            "type": "button",
            **_header(message.header),
            "body": {"text": message.body},
            **_footer(message.footer),
            "action": {"buttons": buttons},
        }
        return {"type": "interactive", "interactive": interactive}
    if isinstance(message, ChoiceList):
        rows = []
        for row in message.rows:
            item = {"id": row.id, "title": row.title}
            if row.description:
                item["description"] = row.description
            rows.append(item)
        section: dict[str, Any] = {"rows": rows}
        if message.section_title:
            section["title"] = message.section_title
        interactive = {
            "type": "list",
            **_header(message.header),
            "body": {"text": message.body},
            **_footer(message.footer),
            "action": {"button": message.button_label, "sections": [section]},
        }
        return {"type": "interactive", "interactive": interactive}
    if isinstance(message, Location):
        location: dict[str, Any] = {"latitude": message.latitude, "longitude": message.longitude}
        if message.name:
            location["name"] = message.name
        if message.address:
            location["address"] = message.address
        return {"type": "location", "location": location}
    if isinstance(message, Media):
        return {"type": message.media_type, message.media_type: _media(message)}
    return {"type": "template", "template": _template(message)}


def _media(message: Media) -> dict[str, Any]:
    """`{id}` of a file uploaded to Meta (or `{link}`), the caption, and a document's file name."""
    if message.provider_media_id:
        media: dict[str, Any] = {"id": message.provider_media_id}
    elif message.link:
        media = {"link": message.link}
    else:
        raise PermanentSendError("media_not_uploaded", "the file was not uploaded before sending",
                                 provider="meta", category=BAD_REQUEST)
    if message.caption:
        media["caption"] = message.caption[:CAPTION_MAX]
    if message.media_type == "document" and message.filename:
        media["filename"] = message.filename
    return media


def _template(message: Template) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    if message.body_params:
        params = [{"type": "text", "text": p} for p in message.body_params]
        components.append({"type": "body", "parameters": params})
    for index, payload in enumerate(message.button_payloads):
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": str(index),
                "parameters": [{"type": "payload", "payload": payload}],
            }
        )
    template: dict[str, Any] = {
        "name": message.name,
        "language": {"code": message.language, "policy": "deterministic"},
    }
    if components:
        template["components"] = components
    return template


def request_body(to: Recipient, message: OutboundMessage, reference: str) -> dict[str, Any]:
    """The full JSON body for one message: `to` is the E.164 phone with '+', else `recipient` = BSUID."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    phone = e164(to.phone)
    if phone:
        body["to"] = phone
    elif to.bsuid:
        body["recipient"] = to.bsuid
    else:
        raise PermanentSendError("no_recipient", "recipient has neither a phone nor a BSUID",
                                 provider="meta", category=BAD_REQUEST)
    body.update(message_payload(message))
    if reference and len(reference) <= OPAQUE_DATA_MAX:
        body["biz_opaque_callback_data"] = reference
    return body


class MetaCloudTransport:
    """The `Transport` for Meta's Cloud API, sending from one phone number id. Thread-safe: one instance
    serves a whole worker.

    Without `account` it sends from the deployment's number with its token (META_PHONE_NUMBER_ID,
    META_ACCESS_TOKEN); with one, from the account's number, with its token or else the deployment's.
    """

    channel = "meta"

    def __init__(self, settings: Settings, account: ChannelAccount | None = None) -> None:
        number = account.number if account is not None else settings.meta_phone_number_id
        token = (account.secret if account is not None else None) or settings.meta_access_token
        self._path = f"/{settings.meta_graph_api_version}/{number}/messages"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http = KeepAliveClient(settings.meta_graph_base_url, settings.send_timeout_s)
        self._media_url = f"{settings.meta_graph_base_url.rstrip('/')}/{settings.meta_graph_api_version}/{number}/media"
        self._graph = f"{settings.meta_graph_base_url.rstrip('/')}/{settings.meta_graph_api_version}"  # media_info

    def close(self) -> None:
        self._http.close()

    def send(self, to: Recipient, message: OutboundMessage, *, reference: str) -> list[SendResult]:
        """Send `message` (split into parts if needed); one result per part, in order.

        Raises a `SendError` for the first part that fails; the results of the parts
        already accepted are on the error's `partial_results`.
        """
        parts = limits.fit(message)
        results: list[SendResult] = []
        for index, part in enumerate(parts):
            body = request_body(to, part, reference)
            try:
                wamid = self._post_message(body)
            except SendError as exc:
                exc.partial_results = list(results)
                log.warning(
                    "meta send failed: reference=%s part=%s/%s kind=%s code=%s retryable=%s",
                    reference, index + 1, len(parts), part.kind, exc.code, exc.retryable,
                )
                raise
            log.info("meta send accepted: reference=%s part=%s/%s kind=%s id=%s",
                     reference, index + 1, len(parts), part.kind, wamid)
            results.append(SendResult(provider_message_id=wamid))
        return results

    def upload_media(self, data: bytes, mime: str, filename: str | None) -> str:
        """Upload a file for a message to send (POST /<ver>/<number>/media, multipart: file, type,
        messaging_product); returns Meta's id of it (valid 30 days). Raises a `SendError`; nothing has reached
        the customer yet, so none of them has `maybe_sent`."""
        try:
            response = httpx.post(self._media_url, headers=self._headers, timeout=UPLOAD_TIMEOUT_S,
                                  data={"messaging_product": "whatsapp", "type": mime},
                                  files={"file": (filename or "archivo", data, mime)})
        except httpx.TransportError as exc:
            raise TransientSendError("connection", f"upload to Meta failed ({type(exc).__name__})",
                                     provider="meta", category=UNAVAILABLE) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            error = classify_meta_error(response.status_code, answer,
                                        retry_after_header=response.headers.get("Retry-After"))
            error.maybe_sent = False
            raise error
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise TransientSendError("invalid_response", "Meta answered the upload without a media id",
                                     provider="meta", category=UNAVAILABLE)
        log.info("meta media uploaded: bytes=%s mime=%s", len(data), mime)
        return media_id

    def media_info(self, media_id: str) -> MediaInfo:
        """What Meta says about a customer's media id (GET /<ver>/<media_id>, issue 17): its URL (valid 5 minutes),
        MIME type, hash and size. Raises `MediaFetchError` (gone: Meta no longer has it)."""
        if not _MEDIA_ID.match(media_id):
            raise MediaFetchError(media_download.GONE, "bad_media_id")
        fetched = media_download.fetch(f"{self._graph}/{media_id}", auth_for=self._media_auth, max_bytes=64 * 1024,
                                       status_error=_media_status_error)
        try:
            answer = json.loads(fetched.data)
            url = answer["url"]
        except (ValueError, TypeError, KeyError):
            raise MediaFetchError(media_download.RETRY, "invalid_response") from None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MediaFetchError(media_download.RETRY, "invalid_response")
        size = answer.get("file_size")
        return MediaInfo(url=url, mime_type=_str_or_none(answer.get("mime_type")),
                         sha256=_str_or_none(answer.get("sha256")),
                         file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None)

    def download(self, url: str, max_bytes: int) -> bytes:
        """The file behind a `media_info` URL, with the bearer token (sent only to Meta's own hosts). Raises
        `MediaFetchError` (an expired URL is `retry`: the next attempt asks for a new one)."""
        return media_download.fetch(url, auth_for=self._media_auth, max_bytes=max_bytes,
                                    status_error=_download_status_error).data

    def _media_auth(self, host: str) -> dict[str, Any]:
        graph_host = urlsplit(self._graph).hostname or ""
        if host == graph_host or host.endswith(_META_MEDIA_HOSTS):
            return {"headers": self._headers}
        return {}

    def mark_read(self, message_id: str) -> None:
        """Mark an inbound message read and show the typing indicator. Errors are logged, never raised."""
        body = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
            "typing_indicator": {"type": "text"},
        }
        try:
            response = self._http.post_json(self._path, body, self._headers)
        except (ConnectFailed, RequestFailed) as exc:
            log.warning("meta mark_read failed: message=%s error=%s", message_id, exc)
            return
        if response.status >= 400:
            error = classify_meta_error(response.status, response.json())
            log.warning("meta mark_read refused: message=%s code=%s", message_id, error.code)

    def _post_message(self, body: dict[str, Any]) -> str:
        """POST one message; returns the wamid. Raises SendError for every failure."""
        try:
            response: Response = self._http.post_json(self._path, body, self._headers)
        except ConnectFailed as exc:  # nothing was sent
            raise TransientSendError("connection", f"connection to Meta failed ({exc})",
                                     provider="meta", category=UNAVAILABLE, maybe_sent=False) from None
        except RequestFailed as exc:  # the request may have arrived
            code = "timeout" if exc.timeout else "connection"
            raise TransientSendError(code, f"no complete answer from Meta ({exc})", provider="meta",
                                     category=UNAVAILABLE, maybe_sent=True) from None
        data = response.json()
        if response.status >= 400:
            raise classify_meta_error(response.status, data, retry_after_header=response.headers.get("Retry-After"))
        try:
            return str(data["messages"][0]["id"])
        except (TypeError, KeyError, IndexError):
            raise PermanentSendError(
                "invalid_response", "Meta answered without a message id",
                provider="meta", http_status=response.status, maybe_sent=True,
            ) from None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _meta_error_code(body: bytes) -> int | None:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, TypeError, KeyError):
        return None
    return code if isinstance(code, int) else None


def _media_status_error(status: int, body: bytes) -> MediaFetchError:
    """Meta's answer to GET /<media_id>: 100 ("does not exist") or 131052 or 404: gone; else as HTTP says."""
    code = _meta_error_code(body)
    if code in (100, 131052) or status in (404, 410):
        return MediaFetchError(media_download.GONE, f"meta_{code}" if code else f"provider_{status}")
    if code == 190 or status in (401, 403):
        return MediaFetchError(media_download.RETRY, "auth")
    return media_download.default_status_error(status, body)


def _download_status_error(status: int, body: bytes) -> MediaFetchError:
    """The media URL itself: after 5 minutes it stops working (401/403/404): a new one is asked next time."""
    if status in (401, 403, 404, 410):
        return MediaFetchError(media_download.RETRY, "expired")
    return media_download.default_status_error(status, body)
