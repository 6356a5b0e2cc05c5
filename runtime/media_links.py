"""Our own signed, expiring links to the files in the media store (no provider URL ever reaches a browser).

Two kinds, told apart by a purpose word inside the signature so that one can never stand in for the other:

- `view`: what the console's pages use to show a file to an agent (`/console/media/<id>?e=<expiry>&s=<sig>`).
  The signature covers the file's id, the expiry and the agent's tenant; the route also wants a logged-in
  agent of that tenant. About ten minutes: a page refreshes its links on every load.
- `out`: the public link Twilio fetches an agent's file from (its MediaUrl), no login
  (`/console/media/public/<id>/<name>?e=<expiry>&s=<sig>`). Only files an agent sent (direction 'out') are
  served through it; it is made by the worker right before the send.

The key is derived from CONSOLE_SESSION_SECRET (or, in development, from PHONE_HASH_KEY), with its own label.
Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote, urlencode

from config import Settings

VIEW = "view"
OUT = "out"
VIEW_TTL_S = 600
OUT_TTL_S = 3600  # Twilio fetches the file when it sends, within seconds; a retried send makes a new link
VIEW_PATH = "/console/media/{media_id}"
PUBLIC_PATH = "/console/media/public/{media_id}/{name}"
_SIG_HEX = 32  # 128 bits of HMAC-SHA256
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def link_key(settings: Settings) -> bytes:
    """The key that signs media links (not the session cookie's own key)."""
    base = settings.console_session_secret or settings.phone_hash_key
    return hmac.new(base.encode(), b"encargo-media-links", hashlib.sha256).digest()


def signature(key: bytes, purpose: str, media_id: int, tenant_id: int, expires: int) -> str:
    message = f"{purpose}:{media_id}:{tenant_id}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:_SIG_HEX]


def signed_query(key: bytes, purpose: str, media_id: int, tenant_id: int, now: float, ttl_s: int) -> dict[str, str]:
    """`{"e": expiry, "s": signature}` for a link valid `ttl_s` seconds from `now` (unix time)."""
    expires = int(now) + ttl_s
    return {"e": str(expires), "s": signature(key, purpose, media_id, tenant_id, expires)}


def check(key: bytes, purpose: str, media_id: int, tenant_id: int, expires: str | None, sig: str | None,
          now: float) -> str | None:
    """None when the link is good; else why not: `bad` (missing or wrong signature) or `expired`."""
    if not expires or not sig or not expires.isascii() or not expires.isdigit():
        return "bad"
    expected = signature(key, purpose, media_id, tenant_id, int(expires))
    if not hmac.compare_digest(expected, sig):
        return "bad"
    if int(expires) < now:
        return "expired"
    return None


def view_url(key: bytes, media_id: int, tenant_id: int, now: float) -> str:
    """The console's link to show a file to an agent of `tenant_id` (relative to the site)."""
    query = signed_query(key, VIEW, media_id, tenant_id, now, VIEW_TTL_S)
    return VIEW_PATH.format(media_id=media_id) + "?" + urlencode(query)


def safe_name(filename: str | None, default: str = "archivo") -> str:
    """A file name that is safe in a URL path and a Content-Disposition header: letters, digits, . _ -."""
    name = _UNSAFE.sub("_", (filename or "").strip()).strip("._")[:100]
    return name or default


def public_path(settings: Settings, media_id: int, tenant_id: int, filename: str | None, now: float) -> str:
    """The public link to an agent's file, relative to the site (the simulator shows the picture with it)."""
    query = signed_query(link_key(settings), OUT, media_id, tenant_id, now, OUT_TTL_S)
    return PUBLIC_PATH.format(media_id=media_id, name=quote(safe_name(filename))) + "?" + urlencode(query)


def public_url(settings: Settings, media_id: int, tenant_id: int, filename: str | None, now: float) -> str:
    """The absolute public link Twilio fetches an agent's file from (PUBLIC_BASE_URL + the public route)."""
    return settings.public_base_url.rstrip("/") + public_path(settings, media_id, tenant_id, filename, now)
