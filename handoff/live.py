"""Live console updates: Redis pub/sub per tenant, streamed to browsers as server-sent events.

Any process (a web process handling an agent's action, a worker storing a
customer message or a delivery status, the scheduler) publishes a small JSON
event on `console:events:{tenant_id}`; every web process subscribed for an open
console page forwards it, so several web processes stay in sync. Events carry
ids, statuses and the agent's name, never message text or phone numbers: the
page fetches what it shows through the authenticated API.

Event types: escalation (new), message (customer or agent message stored), media (a file's download ended),
status (a delivery status changed), handoff (claimed, taken over, handed back,
resolved, callback due), typing (an agent is typing in a conversation).

Failure policy: publishing never raises (Redis errors are logged); a page
that misses an event catches up on its next fetch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator
from typing import Any

import redis

log = logging.getLogger(__name__)

CHANNEL = "console:events:{tenant_id}"
HEARTBEAT_S = 15.0
TYPES = frozenset({"escalation", "message", "status", "handoff", "typing",
                   "media"})  # media: a file's download ended (stored, failed, gone, rejected; issue 17)


def channel(tenant_id: int) -> str:
    return CHANNEL.format(tenant_id=tenant_id)


def publish(conn: redis.Redis, tenant_id: int, kind: str, **data: Any) -> None:
    """Tell every open console of the tenant; errors are logged, never raised."""
    if kind not in TYPES:
        raise ValueError(f"unknown live event type {kind!r}")
    body = json.dumps({"type": kind, **data}, default=str, separators=(",", ":"))
    try:
        conn.publish(channel(tenant_id), body)
    except redis.RedisError as exc:
        log.warning("live console event not published: %s", type(exc).__name__)


def stream(conn: redis.Redis, tenant_id: int, *, heartbeat_s: float = HEARTBEAT_S,
           max_s: float | None = None) -> Generator[str, None, None]:
    """Server-sent events for one browser: each published event as `event: <type>` + `data:`; a comment
    line every `heartbeat_s` keeps proxies from closing the connection. Ends after `max_s` (the browser
    reconnects by itself) or when Redis goes away."""
    pubsub = conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8 on
    started = time.monotonic()
    try:
        pubsub.subscribe(channel(tenant_id))
        yield "retry: 2000\n: connected\n\n"
        last_beat = time.monotonic()
        while max_s is None or time.monotonic() - started < max_s:
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                raw = message["data"]
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                try:
                    kind = str(json.loads(text).get("type", "message"))
                except ValueError:
                    continue
                yield f"event: {kind}\ndata: {text}\n\n"
            if time.monotonic() - last_beat >= heartbeat_s:
                last_beat = time.monotonic()
                yield ": keep-alive\n\n"
    except redis.RedisError as exc:
        log.warning("live console stream ended: %s", type(exc).__name__)
    finally:
        try:
            pubsub.close()
        except redis.RedisError:
            pass
