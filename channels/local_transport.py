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

A customer's file sent from the simulator (issue 17) is fetched the way Meta's are: `media_info` asks the
simulator's media host (`GET <PUBLIC_BASE_URL>/simulator/media/<id>`, web/simulator_files.py) for the file's
URL and facts in Meta's shape, `download` fetches the bytes, both with a bearer token derived from
META_APP_SECRET (`simulator_token`), sent to that host only. Without PUBLIC_BASE_URL there is no host to ask:
the file ends `gone` (`no_provider`), as before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import redis

from channels import limits, media_download
from channels.events import DeliveryStatus
from channels.media_download import MediaFetchError, MediaInfo
from channels.outbound import OutboundMessage, Recipient, SendResult
from config import Settings

log = logging.getLogger(__name__)

LOCAL_OUTBOX_CHANNEL = "encargo:local-outbox"
SIMULATOR_MEDIA_PATH = "/simulator/media"  # the simulator's pretend media host (web/simulator_files.py)
NO_PROVIDER = "no_provider"  # a file's outcome when there is no simulator to ask (console/media_items.py)
_MEDIA_ID = re.compile(r"^[0-9]{1,32}$")


class LocalTransport:
    """A `Transport` that accepts everything and only publishes a notice per part."""

    channel = "local"

    def __init__(self, redis_conn: redis.Redis, number: str = "local", *, media_base_url: str = "",
                 media_token: str = "") -> None:
        self._redis = redis_conn
        self.number = number
        self._media_base = media_base_url.rstrip("/")
        self._media_headers = {"Authorization": f"Bearer {media_token}"}

    @classmethod
    def from_settings(cls, settings: Settings, redis_conn: redis.Redis, number: str) -> LocalTransport:
        """The transport of `number`, fetching customers' files from the simulator at PUBLIC_BASE_URL."""
        return cls(redis_conn, number, media_base_url=settings.public_base_url or "",
                   media_token=simulator_token(settings.meta_app_secret))

    def media_info(self, media_id: str) -> MediaInfo:
        """What the simulator says about a media id, in Meta's shape (GET /simulator/media/<id>). Raises
        `MediaFetchError`: gone when the simulator no longer has the file (or there is no simulator to ask)."""
        if not self._media_base:
            raise MediaFetchError(media_download.GONE, NO_PROVIDER)
        if not _MEDIA_ID.match(media_id):
            raise MediaFetchError(media_download.GONE, "bad_media_id")
        fetched = media_download.fetch(f"{self._media_base}{SIMULATOR_MEDIA_PATH}/{media_id}",
                                       auth_for=self._media_auth, max_bytes=64 * 1024)
        try:
            answer = json.loads(fetched.data)
            url, size = answer["url"], answer.get("file_size")
        except (ValueError, TypeError, KeyError):
            raise MediaFetchError(media_download.RETRY, "invalid_response") from None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MediaFetchError(media_download.RETRY, "invalid_response")
        mime, sha256 = answer.get("mime_type"), answer.get("sha256")
        return MediaInfo(url=url, mime_type=mime if isinstance(mime, str) else None,
                         sha256=sha256 if isinstance(sha256, str) else None,
                         file_size=size if isinstance(size, int) else None)

    def download(self, url: str, max_bytes: int) -> bytes:
        """The file behind a `media_info` URL (the token only to the simulator's own host). Raises
        `MediaFetchError` (404: gone; larger than `max_bytes`: rejected)."""
        return media_download.fetch(url, auth_for=self._media_auth, max_bytes=max_bytes).data

    def _media_auth(self, host: str) -> dict[str, Any]:
        return {"headers": self._media_headers} if host == urlsplit(self._media_base).hostname else {}

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


def simulator_token(app_secret: str) -> str:
    """The bearer token the simulator's media host wants, the same in web and worker without another setting:
    an HMAC of META_APP_SECRET (which signs the simulator's webhooks too) under its own label."""
    return hmac.new(app_secret.encode(), b"encargo-simulator-media", hashlib.sha256).hexdigest()
