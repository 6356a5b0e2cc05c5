"""`POST /internal/events`: the logistics core tells us a package changed (issue 7, docs/openapi.yaml).

Five steps and stop: verify the signature (HMAC-SHA256 of "<timestamp>." + raw
body, `X-Encargo-Timestamp` / `X-Encargo-Signature`, replays older than
INTERNAL_EVENTS_MAX_AGE_S refused), validate against the event schema, store
durably (`core_events`, unique on tenant + event id), queue the job, answer.

Answers (JSON `{"error", "message", "field"?}` on errors):
- 202 `{"event_id", "status": "accepted" | "duplicate"}` once the event is stored
  (a repeated event id is acknowledged again and not processed twice);
- 400 the body is not a valid event, saying what is wrong; 401 bad or missing
  signature, or a stale timestamp; 413 body too large;
- 503 the database is unavailable (nothing stored: the core must retry).
Redis down after the store: still 202; the scheduler's recovery queues it.
"""

from __future__ import annotations

import logging
import time

import psycopg
import psycopg_pool
import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from rq import Queue

from config import Settings
from notifications import events, store
from notifications.queueing import announce
from observability import correlation, new_correlation_id

log = logging.getLogger(__name__)

bp = Blueprint("internal_events", __name__)
MAX_EVENT_BYTES = 64 * 1024


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _error(status: int, error: str, message: str, field: str | None = None) -> tuple[Response, int]:
    body: dict[str, str] = {"error": error, "message": message}
    if field:
        body["field"] = field
    return jsonify(body), status


@bp.post("/internal/events")
def receive_event() -> tuple[Response, int]:
    settings: Settings = current_app.extensions["settings"]
    if (request.content_length or 0) > MAX_EVENT_BYTES:
        return _error(413, "too_large", f"an event must be at most {MAX_EVENT_BYTES} bytes")
    raw = request.get_data(cache=True)
    try:
        events.verify(settings.internal_events_secret, request.headers.get(events.TIMESTAMP_HEADER),
                      request.headers.get(events.SIGNATURE_HEADER), raw, now=time.time(),
                      max_age_s=settings.internal_events_max_age_s)
    except events.BadSignature as exc:
        log.warning("internal event refused: %s", exc)
        return _error(401, "unauthorized", str(exc))
    try:
        event = events.parse(raw)
    except events.InvalidEvent as exc:
        return _error(400, "invalid_event", str(exc), exc.field)
    pool = current_app.extensions["db_pool"]
    slug = event.tenant or settings.tenant_slug
    with correlation(new_correlation_id()) as cid:
        try:
            tenant_id = store.tenant_id_for(pool, slug)
            if tenant_id is None:
                return _error(400, "invalid_event", f"tenant: unknown tenant {slug!r}", "tenant")
            pk, created = store.record(pool, tenant_id, event)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.error("internal event not stored: database unavailable (%s)", type(exc).__name__)
            return _error(503, "unavailable", "the event could not be stored; retry later")
        if created:
            queue: Queue = current_app.extensions["ingestor"].queue
            try:
                announce(current_app.extensions["redis"], queue, settings, [pk], cid)
            except redis.RedisError as exc:
                log.warning("internal event stored, not queued (%s); recovery will queue it", type(exc).__name__)
            else:
                store.mark_queued(pool, [pk])
        log.info("internal event %s", "accepted" if created else "duplicate",
                 extra={"core_event_pk": pk, "type": event.type})
    return jsonify(event_id=event.event_id, status="accepted" if created else "duplicate"), 202
