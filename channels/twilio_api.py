"""Sending WhatsApp messages through Twilio's Programmable Messaging API.

Uses the official `twilio` library (`client.messages.create`). This module owns
the credentials, the API base URL (configurable so tests and the sandbox can
point it at a local fake), the timeout and the mapping of our messages to
Twilio's parameters:

- Text → `body`, split into parts of at most 1600 characters (Twilio's limit).
- Buttons / ChoiceList → a numbered plain-text menu ("1. Rastrear paquete").
  Twilio only sends WhatsApp quick-reply buttons and list pickers from a
  Content template created beforehand (`twilio/quick-reply`,
  `twilio/list-picker`, CONTRACT §3.4); our menus are built at run time, so the
  customer answers with the number or the words, which the router understands.
- Location → `persistent_action=["geo:<lat>,<lng>|<label>"]` with the name and
  address as the body.
- Media (an agent's image or PDF) → `media_url` = our public signed link to the file (Twilio fetches it),
  the caption as `body`.
- Template → `content_sid` + `content_variables` ({"1": first body param, ...}).
  Quick-reply payloads are defined in the Content template itself, so
  `button_payloads` are not sent. A template without `content_sid` cannot be
  sent through Twilio: PermanentSendError.

Every failure (TwilioRestException, timeouts, connection errors) comes out as
a `channels.errors.SendError` chosen by `classify_twilio_error`; Twilio's 63016
(outside the 24-hour window) is a WindowClosedError.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from channels import limits, media_download
from channels.accounts import ChannelAccount
from channels.errors import (
    BAD_REQUEST,
    RECIPIENT,
    TEMPLATE,
    UNAVAILABLE,
    PermanentSendError,
    SendError,
    TransientSendError,
    classify_twilio_error,
)
from channels.events import DeliveryStatus, e164
from channels.media_download import Fetched, MediaFetchError
from channels.outbound import (
    Buttons,
    Choice,
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

TWILIO_API_URL = "https://api.twilio.com"
BODY_MAX = 1600

_STATUSES = {"delivered": DeliveryStatus.DELIVERED, "sent": DeliveryStatus.SENT, "read": DeliveryStatus.READ}


def status_callback_url(base: str, reference: str) -> str:
    """Where Twilio posts this message's receipts: our webhook, with our idempotency key as `ref`."""
    return f"{base}?{urlencode({'ref': reference})}" if reference else base


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type information
    """Twilio's own HTTP client, sending requests for api.twilio.com to another base URL instead."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self.base_url != TWILIO_API_URL and url.startswith(TWILIO_API_URL + "/"):
            url = self.base_url + url[len(TWILIO_API_URL) :]
        return super().request(method, url, *args, **kwargs)


def _options(choices: tuple[Choice, ...]) -> str:
    lines = []
    for number, choice in enumerate(choices, start=1):
        line = f"{number}. {choice.title}"
        if choice.description:
            line += f" ({choice.description})"
        lines.append(line)
    return "\n".join(lines)


def message_params(message: OutboundMessage) -> list[dict[str, Any]]:
    """The `messages.create` keyword arguments (besides to/from) for each Twilio message to send."""
    if isinstance(message, Text):
        return [{"body": part} for part in limits.split_text(message.body, BODY_MAX)]
    if isinstance(message, Buttons | ChoiceList):
        choices = message.buttons if isinstance(message, Buttons) else message.rows
        sections = [message.header, message.body, _options(choices), message.footer]
        text = "\n\n".join(s.strip() for s in sections if s and s.strip())
        return [{"body": part} for part in limits.split_text(text, BODY_MAX)]
    if isinstance(message, Location):
        label = message.name or message.address or ""
        body = "\n".join(p for p in (message.name, message.address) if p) or "📍"
        geo = f"geo:{message.latitude},{message.longitude}" + (f"|{label}" if label else "")
        return [{"body": body, "persistent_action": [geo]}]
    if isinstance(message, Media):
        if not message.link:
            raise PermanentSendError("media_no_link", "the file has no public link for Twilio to fetch",
                                     provider="twilio", category=BAD_REQUEST)
        return [{"media_url": [message.link], **({"body": message.caption[:BODY_MAX]} if message.caption else {})}]
    return [_template_params(message)]


def _template_params(message: Template) -> dict[str, Any]:
    if not message.content_sid:
        raise PermanentSendError(
            "no_content_sid",
            f"template {message.name!r} has no Twilio content_sid",
            provider="twilio",
            category=TEMPLATE,
        )
    params: dict[str, Any] = {"content_sid": message.content_sid}
    if message.body_params:
        variables = {str(i): value for i, value in enumerate(message.body_params, start=1)}
        params["content_variables"] = json.dumps(variables, ensure_ascii=False)
    if message.button_payloads:
        log.debug("template %s: quick-reply payloads come from the Content template on Twilio", message.name)
    return params


class TwilioTransport:
    """The `Transport` for one Twilio WhatsApp sender.

    Without `account` it sends as the deployment (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
    TWILIO_WHATSAPP_NUMBER). With one, from the account's number (or through its Messaging Service),
    as its (sub)account: with the account's own auth token, or else with the deployment's credentials
    acting on that subaccount (Twilio lets a parent account act for its subaccounts).
    """

    channel = "twilio"

    def __init__(self, settings: Settings, http_client: Any | None = None,
                 account: ChannelAccount | None = None) -> None:
        self._http = http_client or RebasedHttpClient(settings.twilio_api_base_url, settings.send_timeout_s)
        if account is None:
            self._client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=self._http)
            sender, self._service = settings.twilio_whatsapp_number, None
        elif account.secret:
            self._client = Client(account.account_sid or settings.twilio_account_sid, account.secret,
                                  http_client=self._http)
            sender, self._service = account.number, account.messaging_service_sid
        else:
            self._client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                                  account_sid=account.account_sid or settings.twilio_account_sid,
                                  http_client=self._http)
            sender, self._service = account.number, account.messaging_service_sid
        self._from = f"whatsapp:{e164(sender) or ''}"
        self._api_base = (settings.twilio_api_base_url or TWILIO_API_URL).rstrip("/")  # media downloads (issue 17)
        base = settings.public_base_url.rstrip("/")
        self._status_callback = f"{base}/webhooks/twilio" if base else None

    def send(self, to: Recipient, message: OutboundMessage, *, reference: str) -> list[SendResult]:
        """Send `message` as one or more Twilio messages; one result per message, in order.

        Twilio accepts no idempotency key: `reference` travels in the status callback URL (`?ref=`), so
        the receipts find the reply even when its send response was lost. Raises a
        `SendError` for the first part that fails, with the earlier results on its
        `partial_results`.
        """
        phone = e164(to.phone)
        if not phone:
            raise PermanentSendError(
                "no_recipient",
                "Twilio needs the customer's phone number",
                provider="twilio",
                category=RECIPIENT if to.bsuid else BAD_REQUEST,
            )
        parts = message_params(message)
        results: list[SendResult] = []
        for index, params in enumerate(parts):
            if self._status_callback:
                params["status_callback"] = status_callback_url(self._status_callback, reference)
            try:
                sender = {"messaging_service_sid": self._service} if self._service else {"from_": self._from}
                created = self._create(to=f"whatsapp:{phone}", **sender, **params)
            except SendError as exc:
                exc.partial_results = list(results)
                log.warning(
                    "twilio send failed: reference=%s part=%s/%s kind=%s code=%s retryable=%s",
                    reference, index + 1, len(parts), message.kind, exc.code, exc.retryable,
                )
                raise
            sid = str(created.sid)
            status = _STATUSES.get(str(created.status or ""), DeliveryStatus.ACCEPTED)
            log.info("twilio send accepted: reference=%s part=%s/%s kind=%s sid=%s",
                     reference, index + 1, len(parts), message.kind, sid)
            results.append(SendResult(provider_message_id=sid, status=status))
        return results

    def download(self, url: str, max_bytes: int) -> Fetched:
        """A customer's file (a MediaUrlN of the inbound webhook, issue 17), fetched with the account's basic auth.

        Only Twilio's API host gets the credentials: the redirect to Twilio's CDN is followed without them. A
        MediaUrl on another host is refused (`gone`), never fetched with our credentials. Raises `MediaFetchError`.
        """
        if url.startswith(TWILIO_API_URL + "/") and self._api_base != TWILIO_API_URL:
            url = self._api_base + url[len(TWILIO_API_URL):]
        api_host = urlsplit(self._api_base).hostname
        if urlsplit(url).hostname != api_host or not url.startswith(self._api_base + "/"):
            raise MediaFetchError(media_download.GONE, "not_a_twilio_url")
        credentials = (str(self._client.username), str(self._client.password))

        def auth_for(host: str) -> dict[str, Any]:
            return {"auth": credentials} if host == api_host else {}

        return media_download.fetch(url, auth_for=auth_for, max_bytes=max_bytes)

    def mark_read(self, message_id: str) -> None:
        """Nothing to do: Twilio's Messages API has no read receipt or typing indicator call."""
        log.debug("twilio has no read receipts; not marking %s", message_id)

    def _create(self, **params: Any) -> Any:
        try:
            return self._client.messages.create(**params)
        except TwilioRestException as exc:
            raise classify_twilio_error(int(exc.status), exc.code, str(exc.msg)) from None
        except TwilioServiceException as exc:
            raise classify_twilio_error(int(exc.status), exc.code, str(exc.title)) from None
        except requests.exceptions.ConnectTimeout:
            raise TransientSendError("timeout", "could not connect to Twilio in time",
                                     provider="twilio", category=UNAVAILABLE) from None
        except requests.exceptions.Timeout:
            raise TransientSendError("timeout", "no answer from Twilio", provider="twilio",
                                     category=UNAVAILABLE, maybe_sent=True) from None
        except requests.exceptions.ConnectionError as exc:
            # Refused or unresolvable: nothing reached Twilio. Reset mid-request: it may have.
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            maybe_sent = not isinstance(reason, urllib3.exceptions.NewConnectionError)
            raise TransientSendError("connection", "connection to Twilio failed", provider="twilio",
                                     category=UNAVAILABLE, maybe_sent=maybe_sent) from None
        except requests.exceptions.RequestException as exc:
            raise TransientSendError("connection", f"request to Twilio failed ({type(exc).__name__})",
                                     provider="twilio", category=UNAVAILABLE, maybe_sent=True) from None
        except (TwilioException, ValueError) as exc:
            raise TransientSendError("invalid_response", f"unexpected Twilio answer ({type(exc).__name__})",
                                     provider="twilio", category=UNAVAILABLE, maybe_sent=True) from None
