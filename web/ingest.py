"""Storing and queueing verified webhook events: the part of a webhook request after the signature.

For each event: write it durably (PostgreSQL `webhook_events`, unique on
provider + event id, payload encrypted), then put it in its inbox with one
Redis call (runtime.inbox): a customer message in its customer's, a delivery
receipt in a status lane. Only when a drain slot is free is a drain job queued
as well (a few more round trips, rare under load: drain jobs linger).

- A duplicate (same provider + event id) is acknowledged and not queued again.
- Redis down: the event stays in PostgreSQL as `received`; the scheduler's
  recovery loop queues it once Redis is back.
- PostgreSQL down: the sealed event goes on the queue with a Redis
  de-duplication key; the job stores it when the database is back.
- Both down: the event was stored nowhere, and the webhook must answer 503 so
  the provider delivers it again.
- An event that cannot be stored as it is (a lone UTF-16 surrogate, which
  neither UTF-8 nor PostgreSQL can hold; a NUL or an absurdly long id), and a
  part the parser rejected (an id or sender of the wrong type), is quarantined:
  kept in `webhook_events` as `quarantined` with the reason, sealed as ASCII
  JSON, never queued. It costs only itself: the other events of the delivery
  are stored and queued, and the webhook answers 200 once all of it is durable.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg_pool
import redis
from psycopg_pool import ConnectionPool
from rq import Queue

from channels.events import InboundEvent, RejectedItem, event_kind
from config import Settings
from observability import correlation, new_correlation_id
from runtime import inbox
from runtime.enqueue import enqueue_event
from storage import webhook_events
from storage.crypto import Vault

log = logging.getLogger(__name__)

# Redis de-duplication keys for events that could not be written to PostgreSQL: Meta re-delivers for 7 days.
SEEN_KEY = "seen:{provider}:{event_id}"
SEEN_TTL_S = 8 * 24 * 3600

_DB_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout)
# Provider ids are short (a wamid is ~60 characters); a longer one cannot be a key of ours (btree rows are bounded).
MAX_ID_CHARS = 256


@dataclass
class IngestResult:
    queued: int = 0
    duplicates: int = 0
    stored_only: int = 0  # in PostgreSQL, waiting for Redis
    lost: int = 0  # stored nowhere: the provider must retry
    quarantined: int = 0  # kept with the reason, not processed
    event_pks: list[int] = field(default_factory=list)


@dataclass
class Ingestor:
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    queue: Queue
    vault: Vault

    def accept(self, events: list[InboundEvent], rejected: Sequence[RejectedItem] = ()) -> IngestResult:
        """Store and queue each event, quarantine each rejected part; one's failure never stops the others."""
        result = IngestResult()
        for event in events:
            with correlation(new_correlation_id()) as cid:
                self._accept_one(event, cid, result)
        for item in rejected:
            with correlation(new_correlation_id()) as cid:
                self._quarantine(item.provider, item.kind, item.item_id, item.raw, item.reason, cid, result)
        return result

    def _accept_one(self, event: InboundEvent, cid: str, result: IngestResult) -> None:
        kind = event_kind(event)
        problem = _id_problem(event.event_id) or _id_problem(getattr(event, "user_bsuid", None) or "", "user id")
        try:
            sealed = webhook_events.seal(self.vault, event)
            owner = inbox.owner_of(self.vault, event)
        except UnicodeEncodeError:
            problem = problem or _surrogate_problem(event.to_dict())
        if problem:
            self._quarantine(event.provider, kind, event.event_id, event.to_dict(), problem, cid, result)
            return
        try:
            event_pk = webhook_events.record(
                self.pool, provider=event.provider, event_id=event.event_id, kind=kind,
                payload_encrypted=sealed, correlation_id=cid,
            )
        except psycopg.DataError as exc:  # the database refuses this value: not an outage
            self._quarantine(event.provider, kind, event.event_id, event.to_dict(),
                             f"not storable: {type(exc).__name__}", cid, result)
            return
        except _DB_ERRORS as exc:
            log.error("postgresql unavailable at ingest; queueing the sealed event",
                      extra={"error": type(exc).__name__})
            self._queue_without_database(event, kind, sealed, owner if kind == "message" else None, cid, result)
            return
        if event_pk is None:
            log.info("duplicate event acknowledged", extra={"provider": event.provider, "kind": kind})
            result.duplicates += 1
            return
        result.event_pks.append(event_pk)
        try:
            inbox.deliver(self.redis, self.queue, self.settings, owner, event_pk, cid)
        except redis.RedisError as exc:
            log.error("redis unavailable at ingest; event kept for recovery",
                      extra={"event_pk": event_pk, "error": type(exc).__name__})
            result.stored_only += 1
            return
        result.queued += 1
        log.info("event queued", extra={"event_pk": event_pk, "kind": kind})

    def _queue_without_database(self, event: InboundEvent, kind: str, sealed: str, conversation_hash: str | None,
                                cid: str, result: IngestResult) -> None:
        seen_key = SEEN_KEY.format(provider=event.provider, event_id=self.vault.lookup_hash(event.event_id)[:32])
        try:
            first_time = self.redis.set(seen_key, 1, nx=True, ex=SEEN_TTL_S)
            if not first_time:
                result.duplicates += 1
                return
            enqueue_event(self.queue, self.settings, kind=kind, event_pk=None, sealed=sealed,
                          conversation_hash=conversation_hash, correlation_id=cid)
        except redis.RedisError as exc:
            log.error("redis and postgresql both unavailable: event not stored", extra={"error": type(exc).__name__})
            try:
                self.redis.delete(seen_key)  # so the provider's re-delivery is not taken for a duplicate
            except redis.RedisError:
                pass
            result.lost += 1
            return
        result.queued += 1

    def _quarantine(self, provider: str, kind: str, item_id: str | None, content: Any, reason: str, cid: str,
                    result: IngestResult) -> None:
        """Keep a part that cannot be processed, with the reason. Database down: counted as lost (503, retried)."""
        kept = json.dumps({"kind": kind, "event": content}, ensure_ascii=True, sort_keys=True, default=str)
        if item_id is None or _id_problem(item_id):
            item_id = "quarantine:" + hashlib.sha256(kept.encode()).hexdigest()[:40]
        try:
            stored = webhook_events.quarantine(
                self.pool, provider=provider, event_id=item_id, kind=kind,
                payload_encrypted=self.vault.encrypt(kept), correlation_id=cid, reason=reason[:500],
            )
        except _DB_ERRORS as exc:
            log.error("postgresql unavailable at ingest; a part to quarantine is not stored",
                      extra={"error": type(exc).__name__})
            result.lost += 1
            return
        if stored is None:
            result.duplicates += 1
            return
        result.quarantined += 1
        log.warning("webhook part quarantined",
                    extra={"event_pk": stored, "provider": provider, "reason": reason[:200]})


def _id_problem(value: str, what: str = "id") -> str | None:
    """Why `value` cannot be a key in PostgreSQL (NUL, lone surrogate, too long), or None."""
    if "\x00" in value:
        return f"not storable: the {what} holds a NUL character"
    if len(value) > MAX_ID_CHARS:
        return f"not storable: the {what} is longer than {MAX_ID_CHARS} characters"
    if _has_surrogate(value):
        return f"not storable: the {what} holds a lone UTF-16 surrogate"
    return None


def _surrogate_problem(event: dict[str, Any]) -> str:
    """The reason for an event that UTF-8 cannot encode, naming the first field that holds a lone surrogate."""
    for name, value in event.items():
        if isinstance(value, str) and _has_surrogate(value):
            return f"not storable: {name} holds a lone UTF-16 surrogate"
    return "not storable: the payload holds a lone UTF-16 surrogate"


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
