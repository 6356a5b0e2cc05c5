"""Storing and queueing verified webhook events: the part of a webhook request after the signature.

For each event: write it durably (PostgreSQL `webhook_events`, unique on
provider + event id, payload encrypted), then hand it to Redis with one command:
a customer message goes into its customer's inbox (worker.inbox), a status
callback is announced to the dispatcher (worker.dispatch), which builds its RQ
job off the acknowledgement path.

- A duplicate (same provider + event id) is acknowledged and not queued again.
- Redis down: the event stays in PostgreSQL as `received`; the scheduler's
  recovery loop queues it once Redis is back.
- PostgreSQL down: the sealed event goes on the queue with a Redis
  de-duplication key; the job stores it when the database is back.
- Both down: the event was stored nowhere, and the webhook must answer 503 so
  the provider delivers it again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import psycopg
import psycopg_pool
import redis
from psycopg_pool import ConnectionPool
from rq import Queue

from channels.events import InboundEvent, event_kind
from config import Settings
from observability import correlation, new_correlation_id
from storage import webhook_events
from storage.crypto import Vault
from worker import inbox
from worker.dispatch import announce
from worker.enqueue import conversation_hash as conversation_hash_of
from worker.enqueue import enqueue_event

log = logging.getLogger(__name__)

# Redis de-duplication keys for events that could not be written to PostgreSQL: Meta re-delivers for 7 days.
SEEN_KEY = "seen:{provider}:{event_id}"
SEEN_TTL_S = 8 * 24 * 3600

_DB_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout)


@dataclass
class IngestResult:
    queued: int = 0
    duplicates: int = 0
    stored_only: int = 0  # in PostgreSQL, waiting for Redis
    lost: int = 0  # stored nowhere: the provider must retry
    event_pks: list[int] = field(default_factory=list)


@dataclass
class Ingestor:
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    queue: Queue
    vault: Vault

    def accept(self, events: list[InboundEvent]) -> IngestResult:
        result = IngestResult()
        for event in events:
            with correlation(new_correlation_id()) as cid:
                self._accept_one(event, cid, result)
        return result

    def _accept_one(self, event: InboundEvent, cid: str, result: IngestResult) -> None:
        kind = event_kind(event)
        sealed = self.vault.encrypt(json.dumps({"kind": kind, "event": event.to_dict()}, ensure_ascii=False))
        conversation_hash = conversation_hash_of(self.vault, event)
        try:
            event_pk = webhook_events.record(
                self.pool, provider=event.provider, event_id=event.event_id, kind=kind,
                payload_encrypted=sealed, correlation_id=cid,
            )
        except _DB_ERRORS as exc:
            log.error("postgresql unavailable at ingest; queueing the sealed event",
                      extra={"error": type(exc).__name__})
            self._queue_without_database(event, kind, sealed, conversation_hash, cid, result)
            return
        if event_pk is None:
            log.info("duplicate event acknowledged", extra={"provider": event.provider, "kind": kind})
            result.duplicates += 1
            return
        result.event_pks.append(event_pk)
        try:
            if conversation_hash is not None:
                inbox.deliver(self.redis, self.settings, conversation_hash, event_pk, cid)
            else:
                announce(self.redis, event_pk=event_pk, kind=kind, correlation_id=cid)
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
