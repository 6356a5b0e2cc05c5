"""Why a message could not be sent, in the project's own terms.

The transports (`channels.meta_cloud`, `channels.twilio_api`) never let an
`httpx`/`requests`/twilio exception escape: every failure becomes one of the
three classes below, chosen by the provider's error *code* (Meta asks callers
to build logic on `code`, not on titles or HTTP status; CONTRACT §2.6):

- `TransientSendError`: the provider is busy or briefly unavailable (throughput
  or pair rate limit, 5xx, timeouts). Retry the same message later, after at
  least `retry_delay_s(attempt)` seconds.
- `WindowClosedError`: the 24-hour customer service window is closed (Meta
  131047 / legacy 470, Twilio 63016). Do not retry the free-form message; send
  the approved template instead and record the window as closed.
- `PermanentSendError`: anything else. Retrying would fail the same way; the
  `category` says who must act (ops for `auth`/`template`/`account`, a
  developer for `bad_request`, nobody for `recipient`).
"""

from __future__ import annotations

import random
from typing import Any

from channels.outbound import SendResult

# What kind of failure it is; lets the worker alert the right people without knowing codes.
RATE_LIMIT = "rate_limit"  # throughput, pair or app rate limit: slow down
UNAVAILABLE = "unavailable"  # provider error, timeout, connection failure
WINDOW = "window"  # 24-hour window closed: send a template instead
RECIPIENT = "recipient"  # not on WhatsApp, opted out, marketing limit, unsupported for this user
TEMPLATE = "template"  # template missing, unapproved, wrong parameters: a configuration bug
AUTH = "auth"  # token, permissions, credentials: rotate the token
ACCOUNT = "account"  # account locked, payment, policy or country restriction: page on-call
BAD_REQUEST = "bad_request"  # our request was malformed: a bug in our code
UNKNOWN = "unknown"

_MAX_BACKOFF_S = 300.0


class SendError(Exception):
    """A message was not accepted by the provider.

    `code` is the provider's error code as a string ("131047", "63016") or our
    own ("timeout", "connection", "http_502", "invalid_response"). `maybe_sent`
    is True when the request may have reached the provider before the failure
    (a read timeout): a retry could then deliver the message twice.
    `partial_results` holds the results of the parts of a split message that
    were accepted before this part failed.
    """

    retryable: bool = False

    def __init__(
        self,
        code: str,
        title: str,
        *,
        provider: str = "",
        category: str = UNKNOWN,
        http_status: int | None = None,
        details: str = "",
        retry_after_s: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(f"{provider or 'send'} error {code}: {title}")
        self.code = code
        self.title = title
        self.provider = provider
        self.category = category
        self.http_status = http_status
        self.details = details
        self.retry_after_s = retry_after_s
        self.maybe_sent = maybe_sent
        self.partial_results: list[SendResult] = []

    def retry_delay_s(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first retry).

        Exponential backoff (×2; ×4 for Meta's pair rate limit 131056, whose rule is
        "retry after 4^X seconds"), capped at five minutes, never shorter than the
        provider's own hint. Errors that are not retryable return 0.
        """
        if not self.retryable:
            return 0.0
        factor = 4.0 if self.code == "131056" else 2.0
        backoff = min(_MAX_BACKOFF_S, factor ** max(0, attempt))
        return max(self.retry_after_s or 0.0, backoff)


class TransientSendError(SendError):
    """Busy or briefly unavailable: retry later (bounded)."""

    retryable = True


class WindowClosedError(SendError):
    """The customer has not written in the last 24 hours: only a template can be sent now."""

    retryable = False


class PermanentSendError(SendError):
    """Retrying will not help; `category` says whether ops, a developer or nobody must act."""

    retryable = False


# --- Meta Cloud API (CONTRACT §2.6) -------------------------------------------------------

_META_TRANSIENT = {
    130429: RATE_LIMIT,  # throughput reached
    131056: RATE_LIMIT,  # pair rate limit: same recipient too often
    4: RATE_LIMIT,  # Graph app-level rate limit
    80007: RATE_LIMIT,  # WABA rate limit
    131000: UNAVAILABLE,
    131016: UNAVAILABLE,
    133004: UNAVAILABLE,
    1: UNAVAILABLE,
    2: UNAVAILABLE,
    131057: UNAVAILABLE,  # account in maintenance (throughput upgrade)
}
_META_WINDOW = {131047, 470}
_META_PERMANENT = {
    131026: RECIPIENT,  # not on WhatsApp / old app / terms not accepted
    131049: RECIPIENT,  # marketing per-user limit: not before 24 h
    131050: RECIPIENT,  # user stopped marketing messages
    131051: RECIPIENT,  # unsupported message type
    131052: RECIPIENT,
    131053: RECIPIENT,
    131062: RECIPIENT,  # BSUID recipients not supported for this message
    131048: ACCOUNT,  # spam rate limit: pause proactive sends
    131042: ACCOUNT,
    131031: ACCOUNT,
    368: ACCOUNT,
    130497: ACCOUNT,
    0: AUTH,
    190: AUTH,
    10: AUTH,
    100: BAD_REQUEST,
    131008: BAD_REQUEST,
    131009: BAD_REQUEST,
    131021: BAD_REQUEST,
}


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None  # an HTTP date: rare for these APIs, the backoff applies instead


def _meta_category(code: int) -> str:
    if code in _META_PERMANENT:
        return _META_PERMANENT[code]
    if 200 <= code <= 299:
        return AUTH
    if 132000 <= code <= 132999:
        return TEMPLATE
    return UNKNOWN


def classify_meta_error(
    http_status: int, body_json: Any, *, retry_after_header: str | None = None
) -> SendError:
    """Turn a Graph API error response (status + parsed JSON body, or None) into a SendError.

    The body's `error.code` decides; the HTTP status only matters for codes we do
    not know (429 and 5xx are then transient, other statuses permanent).
    """
    error = body_json.get("error") if isinstance(body_json, dict) else None
    error = error if isinstance(error, dict) else {}
    raw_code = error.get("code")
    error_data = error.get("error_data")
    details = str(error_data.get("details", "")) if isinstance(error_data, dict) else ""
    title = str(error.get("message") or error.get("error_user_title") or f"HTTP {http_status}")
    header_delay = _retry_after(retry_after_header)
    kw: dict[str, Any] = {"provider": "meta", "http_status": http_status, "details": details}

    if not isinstance(raw_code, int):
        code_text = f"http_{http_status}"
        if http_status == 429 or http_status >= 500:
            category = RATE_LIMIT if http_status == 429 else UNAVAILABLE
            return TransientSendError(
                code_text, title, category=category, retry_after_s=header_delay, **kw
            )
        return PermanentSendError(code_text, title, category=BAD_REQUEST, **kw)

    code = raw_code
    if code in _META_WINDOW:
        return WindowClosedError(str(code), title, category=WINDOW, **kw)
    if code in _META_TRANSIENT:
        hint = header_delay
        if hint is None and code == 130429:
            hint = random.uniform(1.0, 2.0)  # noqa: S311 - jitter, not a secret
        elif hint is None and code == 131056:
            hint = 6.0  # one message per 6 s per recipient
        category = _META_TRANSIENT[code]
        return TransientSendError(str(code), title, category=category, retry_after_s=hint, **kw)
    category = _meta_category(code)
    if category == UNKNOWN and (http_status == 429 or http_status >= 500):
        return TransientSendError(str(code), title, category=UNAVAILABLE, retry_after_s=header_delay, **kw)
    return PermanentSendError(str(code), title, category=category, **kw)


# --- Twilio ---------------------------------------------------------------------------------

_TWILIO_TRANSIENT = {
    63018: RATE_LIMIT,  # WhatsApp rate limit exceeded for the sender
    20429: RATE_LIMIT,  # too many concurrent requests
    20500: UNAVAILABLE,  # internal server error
    20503: UNAVAILABLE,  # service unavailable
}
_TWILIO_PERMANENT = {
    20003: AUTH,  # authentication failed
    20404: BAD_REQUEST,  # resource not found (wrong account sid)
    21211: RECIPIENT,  # invalid To number
    21610: RECIPIENT,  # recipient replied STOP
    63003: RECIPIENT,  # channel could not find the To address
    63024: RECIPIENT,  # invalid message recipient
    63032: RECIPIENT,  # not delivered because of a WhatsApp limitation
    63049: RECIPIENT,  # Meta chose not to deliver this marketing message
    63007: AUTH,  # no channel (sender) found for the From address
    63028: TEMPLATE,  # number of parameters does not match
    21655: TEMPLATE,  # ContentSid is invalid
    63038: ACCOUNT,  # daily messages limit reached
}


def classify_twilio_error(
    http_status: int, code: int | str | None, message: str, *, retry_after_header: str | None = None
) -> SendError:
    """Turn a Twilio REST error (HTTP status, Twilio error code, message) into a SendError."""
    try:
        number = int(code) if code is not None else None
    except ValueError:
        number = None
    code_text = str(number) if number is not None else f"http_{http_status}"
    title = message or f"HTTP {http_status}"
    kw: dict[str, Any] = {"provider": "twilio", "http_status": http_status}
    if number == 63016:
        return WindowClosedError(code_text, title, category=WINDOW, **kw)
    if number in _TWILIO_TRANSIENT:
        category = _TWILIO_TRANSIENT[number]
        hint = _retry_after(retry_after_header) or (2.0 if category == RATE_LIMIT else None)
        return TransientSendError(code_text, title, category=category, retry_after_s=hint, **kw)
    if number is not None and number in _TWILIO_PERMANENT:
        return PermanentSendError(code_text, title, category=_TWILIO_PERMANENT[number], **kw)
    if http_status == 429 or http_status >= 500:
        category = RATE_LIMIT if http_status == 429 else UNAVAILABLE
        return TransientSendError(
            code_text, title, category=category, retry_after_s=_retry_after(retry_after_header), **kw
        )
    category = AUTH if http_status in (401, 403) else BAD_REQUEST if http_status == 400 else UNKNOWN
    return PermanentSendError(code_text, title, category=category, **kw)
