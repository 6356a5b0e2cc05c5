"""`POST /internal/events`: the logistics core tells us a package changed (issue 7, docs/openapi.yaml).

Five steps and stop: verify the signature (HMAC-SHA256 of "<timestamp>." + raw
body, `X-Encargo-Timestamp` / `X-Encargo-Signature`, replays older than
INTERNAL_EVENTS_MAX_AGE_S refused) with the secret of the tenant the sender
names (`X-Encargo-Key-Id: <tenant slug>`, absent: the configured tenant;
issue 12), validate against the event schema, store durably (`core_events`,
unique on tenant + event id), queue the job, answer.

Answers (JSON `{"error", "message", "field"?}` on errors):
- 202 `{"event_id", "status": "accepted" | "duplicate"}` once the event is stored
  (a repeated event id is acknowledged again and not processed twice);
- 400 the body is not a valid event (nesting past 32 levels included), or the
  timestamp header is not unix seconds in ASCII digits; 401 bad or missing
  signature, a stale timestamp, an unknown key id; 403 the event names another
  tenant than the key that signed it, or that tenant is suspended (`tenant_suspended`:
  a suspended company sends no notifications, so its events are refused, not kept for
  later); 413 body over 64 KiB (chunked too, web.body_limit); 415 a Content-Type other than JSON;
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
from storage import tenants
from storage.crypto import DecryptionError
from web import body_limit

log = logging.getLogger(__name__)

bp = Blueprint("internal_events", __name__)
MAX_EVENT_BYTES = 64 * 1024


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    body_limit.limit_path(app, "/internal/events", MAX_EVENT_BYTES)


def _error(status: int, error: str, message: str, field: str | None = None) -> tuple[Response, int]:
    body: dict[str, str] = {"error": error, "message": message}
    if field:
        body["field"] = field
    return jsonify(body), status


@bp.post("/internal/events")
def receive_event() -> tuple[Response, int]:
    settings: Settings = current_app.extensions["settings"]
    if request.mimetype != "application/json":
        return _error(415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)")
    raw = request.get_data(cache=True)  # at most MAX_EVENT_BYTES: web.body_limit refused anything longer
    pool = current_app.extensions["db_pool"]
    key_id = request.headers.get(events.KEY_ID_HEADER) or settings.tenant_slug
    try:
        key = tenants.events_key(pool, current_app.extensions["ingestor"].vault, key_id) if len(key_id) <= 64 else None
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        log.error("internal event not verified: database unavailable (%s)", type(exc).__name__)
        return _error(503, "unavailable", "the event could not be verified; retry later")
    except DecryptionError:
        log.error("the events secret of a tenant cannot be decrypted with PHONE_ENCRYPTION_KEY")
        return _error(401, "unauthorized", "events are not configured for this key id")
    if key is None:
        log.warning("internal event refused: unknown key id")
        return _error(401, "unauthorized", f"{events.KEY_ID_HEADER}: unknown key id")
    if not key.secret:
        log.warning("internal event refused: no events secret for tenant %s", key.slug)
        return _error(401, "unauthorized", f"internal events are not configured for {key.slug!r} "
                                           "(no secret: the configured tenant's is INTERNAL_EVENTS_SECRET)")
    try:
        events.verify(key.secret, request.headers.get(events.TIMESTAMP_HEADER),
                      request.headers.get(events.SIGNATURE_HEADER), raw, now=time.time(),
                      max_age_s=settings.internal_events_max_age_s)
    except events.MalformedHeader as exc:
        return _error(400, "invalid_header", str(exc), events.TIMESTAMP_HEADER)
    except events.BadSignature as exc:
        log.warning("internal event refused: %s", exc)
        return _error(401, "unauthorized", str(exc))
    if key.status != tenants.ACTIVE:
        log.warning("internal event refused: tenant %s is suspended", key.slug)
        return _error(403, "tenant_suspended", f"{key.slug!r} is suspended: its events are not accepted "
                                               "(nothing is stored; do not retry)")
    try:
        event = events.parse(raw)
    except events.InvalidEvent as exc:
        return _error(400, "invalid_event", str(exc), exc.field)
    if event.tenant is not None and event.tenant != key.slug:
        log.warning("internal event refused: it names another tenant than its key's (%s)", key.slug)
        return _error(403, "forbidden", f"tenant: the event names {event.tenant!r} but is signed with the key "
                                        f"of {key.slug!r}", "tenant")
    with correlation(new_correlation_id()) as cid:
        try:
            pk, created = store.record(pool, key.tenant_id, event)
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
