"""The transport used when no WhatsApp credentials are configured: nothing leaves the machine.

Development and the simulator run with `WHATSAPP_PROVIDER=local`. Messages are
fitted to WhatsApp's limits exactly as the real transports do (so the
simulator shows what a customer would see), "delivered" at once, and each
part is announced on the Redis pub/sub channel `LOCAL_OUTBOX_CHANNEL` so a
simulator page can refresh. The message itself is stored by the caller
(the outbound messages table), not here.

One instance per company number: a notice says which number the reply left
from (`number`: the channel's phone_number_id or sender) and to whom (`to`: a
hash of the customer's phone or BSUID, never the number itself), so two
companies' replies to one customer stay apart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid

import redis

from channels import limits
from channels.events import DeliveryStatus
from channels.outbound import OutboundMessage, Recipient, SendResult

log = logging.getLogger(__name__)

LOCAL_OUTBOX_CHANNEL = "encargo:local-outbox"


class LocalTransport:
    """A `Transport` that accepts everything and only publishes a notice per part."""

    channel = "local"

    def __init__(self, redis_conn: redis.Redis, number: str = "local") -> None:
        self._redis = redis_conn
        self.number = number

    def send(self, to: Recipient, message: OutboundMessage, *, reference: str) -> list[SendResult]:
        """One DELIVERED result per fitted part. Never raises: a failed notice is only logged."""
        results: list[SendResult] = []
        for part in limits.fit(message):
            result = SendResult("local." + uuid.uuid4().hex, status=DeliveryStatus.DELIVERED)
            notice = {"provider_message_id": result.provider_message_id, "reference": reference,
                      "kind": part.kind, "number": self.number, "to": recipient_hash(to)}
            try:
                self._redis.publish(LOCAL_OUTBOX_CHANNEL, json.dumps(notice))
            except redis.RedisError as exc:
                log.warning("local outbox notice not published: reference=%s error=%s", reference, exc)
            results.append(result)
        return results

    def mark_read(self, message_id: str) -> None:
        """Nothing to record: the simulator has no read receipts."""


def recipient_hash(to: Recipient) -> str:
    """What a notice says of the customer: the first 20 hex digits of SHA-256 of their phone (or BSUID)."""
    return hashlib.sha256((to.phone or to.bsuid or "").encode()).hexdigest()[:20]
