"""Signed `package.status_changed` events the sandbox core pushes to the bot.

The real core is expected to tell the bot when a package changes status; the
sandbox does the same when its demo control endpoint changes one. Each event
is a JSON body signed with HMAC-SHA256 over "<unix timestamp>." + raw body,
keyed by a secret shared with the receiver, sent in
`X-Encargo-Signature: sha256=<hex>` next to `X-Encargo-Timestamp`. With a
`key_id`, `X-Encargo-Key-Id` names the company (tenant slug) whose secret
signed it; without, the receiver checks it with its configured tenant's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass

import httpx

logger = logging.getLogger(__name__)

EVENT_STATUS_CHANGED = "package.status_changed"
TIMESTAMP_HEADER = "X-Encargo-Timestamp"
SIGNATURE_HEADER = "X-Encargo-Signature"
KEY_ID_HEADER = "X-Encargo-Key-Id"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds as text)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True)
class EventSink:
    """Where status events go: the receiver's URL, the shared signing secret and whose secret it is."""

    url: str
    secret: str
    timeout_s: float = 5.0
    key_id: str = ""  # the receiver's tenant slug; empty: its configured tenant

    def deliver_status_changed(self, tracking_code: str, status: str, occurred_at: str) -> bool:
        """POST one signed status event; True when the receiver answered 2xx.

        Failure policy: connection errors, timeouts and non-2xx answers are
        logged and reported as False, never raised; there is no retry (the demo
        operator can change the status again).
        """
        event = {
            "event_id": str(uuid.uuid4()),
            "type": EVENT_STATUS_CHANGED,
            "tracking_code": tracking_code,
            "status": status,
            "occurred_at": occurred_at,
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        if self.key_id:
            headers[KEY_ID_HEADER] = self.key_id
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            logger.warning("status event for %s not delivered: %s", tracking_code, type(exc).__name__)
            return False
        if not response.is_success:
            logger.warning("status event for %s refused with HTTP %s", tracking_code, response.status_code)
            return False
        logger.info("status event %s for %s delivered", event["event_id"], tracking_code)
        return True
