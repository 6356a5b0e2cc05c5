"""Fetching a customer's file from the provider: the shared HTTP part and its outcomes (issue 17).

`channels.meta_cloud.MetaCloudTransport.media_info/download` and `channels.twilio_api.TwilioTransport.download`
use `fetch`: a streamed GET that stops as soon as the file passes its type's size limit, follows redirects
itself and sends the provider's credentials only to the hosts that may have them (Twilio redirects to its
CDN: the credentials stay behind). Every failure becomes a `MediaFetchError` whose `outcome` tells the
download job what to do:

- `retry`: the provider is busy or unreachable, or the short-lived URL expired: try again later (bounded);
- `gone`: the provider no longer has the file (404, Meta's "does not exist", 131052): stop, show it;
- `rejected`: the file is larger than its type allows: stop, show it, never store it.

Nothing here logs a URL (a Twilio MediaUrl names the account), a token or the file's content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

RETRY, GONE, REJECTED = "retry", "gone", "rejected"
MAX_REDIRECTS = 5
DOWNLOAD_TIMEOUT_S = 60.0


class MediaFetchError(Exception):
    """A file could not be fetched; `reason` is a short machine word stored on the media row."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(f"{outcome}: {reason}")
        self.outcome = outcome
        self.reason = reason


@dataclass(frozen=True)
class MediaInfo:
    """What Meta says about a media id (GET /<ver>/<media_id>): its short-lived URL and declared facts."""

    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None


def fetch(url: str, *, auth_for: Callable[[str], Any], max_bytes: int,
          timeout_s: float = DOWNLOAD_TIMEOUT_S, status_error: Callable[[int, bytes], MediaFetchError] | None = None,
          ) -> Fetched:
    """GET `url` (following up to MAX_REDIRECTS redirects); `auth_for(host)` gives the headers/auth to send to a
    host ({} for none). Raises MediaFetchError; `status_error(status, body)` may classify an error answer."""
    current = url
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            host = urlsplit(current).hostname or ""
            credentials = auth_for(host)
            try:
                with client.stream("GET", current, headers=credentials.get("headers"),
                                   auth=credentials.get("auth")) as response:
                    if response.is_redirect and response.headers.get("location"):
                        current = urljoin(current, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        body = response.read()[:4096]
                        raise (status_error or default_status_error)(response.status_code, body)
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise MediaFetchError(REJECTED, "too_large")
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise MediaFetchError(REJECTED, "too_large")
                        chunks.append(chunk)
                    return Fetched(b"".join(chunks), response.headers.get("content-type"))
            except httpx.TimeoutException:
                raise MediaFetchError(RETRY, "timeout") from None
            except httpx.HTTPError:
                raise MediaFetchError(RETRY, "connection") from None
    raise MediaFetchError(RETRY, "too_many_redirects")


def default_status_error(status: int, body: bytes) -> MediaFetchError:
    """404/410: gone. 5xx, 429, 408: retry. 401/403: retry (a credential being fixed, or an expired URL)."""
    if status in (404, 410):
        return MediaFetchError(GONE, f"provider_{status}")
    if status >= 500:
        return MediaFetchError(RETRY, "provider_5xx")
    return MediaFetchError(RETRY, f"provider_{status}")
