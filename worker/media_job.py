"""Downloading a customer's file from the provider into the media store (issue 17).

`download_media` is queued by worker/inbound.py after the message's transaction (the customer is answered
without waiting for it), and again by itself with back-off, and by the scheduler's recovery loop for a row
whose job was lost. One attempt:
1. claims the row (`storage.media.claim`: still `pending`, its time come; attempts + 1, leased);
2. fetches the file with the receiving number's own credentials: Meta, GET /<ver>/<media_id> then the URL
   with the bearer token; Twilio, the MediaUrl with the account's basic auth; the simulator's files
   (WHATSAPP_PROVIDER=local) the same two steps as Meta's, from the simulator (channels.local_transport);
3. checks it against its type's size limit and its content against its MIME type (channels.media_types):
   too large or not what it claims -> `rejected` (kept visible, never stored);
4. puts it in the media store under the tenant (storage.media_files) and marks the row `stored`.
A provider that is busy or unreachable, or an expired URL, is tried again after BACKOFF_S (Meta's URL lives
5 minutes, its media id 30 days) up to MEDIA_DOWNLOAD_ATTEMPTS; then the row is `failed`. A provider that no
longer has the file ends it `gone`. Every outcome is announced to the console's live stream, and
worker.media_followup is told (a voice note is transcribed, a photo read; a lost voice note answered).

Failure policy: database errors raise (RQ records the job failed; the row stays `pending` and the recovery
loop queues it again); provider and store failures are handled as above, never raised. Logs carry ids and
reasons, never a URL, a token or the file.
"""

from __future__ import annotations

import hashlib
import logging

from channels import media_types
from channels.local_transport import NO_PROVIDER, LocalTransport
from channels.media_download import GONE, REJECTED, MediaFetchError
from channels.meta_cloud import MetaCloudTransport
from channels.twilio_api import TwilioTransport
from handoff import live
from runtime.enqueue import enqueue_media_download
from runtime.resources import Runtime
from storage import media
from storage.media import Media
from storage.media_files import MediaStoreError, new_key
from worker import media_followup

log = logging.getLogger(__name__)

# Seconds before the 2nd, 3rd, ... attempt; the last value repeats until MEDIA_DOWNLOAD_ATTEMPTS.
BACKOFF_S = (10, 30, 120, 300)
LEASE_S = 300  # one attempt's hold on its row (longer than a job may run)


def download_media(rt: Runtime, media_id: int, correlation_id: str | None) -> str:
    """One download attempt of a media row; returns what happened (stored, retry, failed, gone, rejected...)."""
    with rt.pool.connection() as conn:
        row = media.claim(conn, media_id, LEASE_S)
    if row is None:
        return "nothing to do"
    try:
        data = _fetch(rt, row)
    except MediaFetchError as exc:
        if exc.outcome == GONE:
            return _end(rt, row, media.GONE, exc.reason)
        if exc.outcome == REJECTED:
            return _end(rt, row, media.REJECTED, exc.reason)
        return _retry_or_fail(rt, row, exc.reason, correlation_id)
    verdict = media_types.check(row.media_type, row.declared_mime, data)
    if verdict.reason is not None:
        return _end(rt, row, media.REJECTED, verdict.reason, mime=verdict.mime, size_bytes=len(data))
    mime = verdict.mime or "application/octet-stream"
    key = new_key(row.media_type)
    try:
        rt.media_store.put(row.tenant_id, key, data, mime)
    except MediaStoreError as exc:
        log.warning("media store refused a file: %s", exc, extra={"media_id": row.id})
        return _retry_or_fail(rt, row, "store_error", correlation_id)
    with rt.pool.connection() as conn:
        media.mark_stored(conn, row.id, mime=mime, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                          storage_key=key)
        stored = media.get(conn, row.id, row.tenant_id)
    log.info("media stored", extra={"media_id": row.id, "media_type": row.media_type, "bytes": len(data),
                                    "attempts": row.attempts})
    _announce(rt, row, media.STORED)
    if stored is not None:
        media_followup.after_stored(rt, stored)
    return media.STORED


def recover_downloads(rt: Runtime) -> int:
    """The scheduler's recovery loop: queue again the downloads still `pending` well past their next attempt
    (a worker crashed, Redis lost the job). A row queued twice is downloaded once (`storage.media.claim`).
    Returns how many were queued; errors are logged, never raised (the next pass tries again)."""
    try:
        with rt.pool.connection() as conn:
            due = media.due_pending(conn, grace_s=int(rt.settings.recovery_min_age_s))
    except Exception as exc:  # the scheduler's other jobs go on
        log.warning("media recovery skipped: %s", type(exc).__name__)
        return 0
    queued = sum(enqueue_media_download(rt.queue, rt.settings, media_id, None, attempt=-1) for media_id in due)
    if queued:
        log.info("media downloads queued again", extra={"count": queued})
    return queued


def _fetch(rt: Runtime, row: Media) -> bytes:
    """The file's bytes from its provider, with the receiving number's credentials. Raises MediaFetchError."""
    if not row.provider_ref:
        raise MediaFetchError(GONE, "no_reference")
    limit = media_types.SIZE_LIMITS.get(row.media_type, media_types.SIZE_LIMITS["document"])
    transport = rt.senders.sender(row.tenant_id, row.provider, row.channel_number or "").transport
    if row.provider == "meta" and isinstance(transport, MetaCloudTransport | LocalTransport):  # local: the simulator
        info = transport.media_info(row.provider_ref)
        if info.file_size is not None and info.file_size > limit:
            raise MediaFetchError(REJECTED, "too_large")
        return transport.download(info.url, limit)
    if row.provider == "twilio" and isinstance(transport, TwilioTransport):
        return transport.download(row.provider_ref, limit).data
    raise MediaFetchError(GONE, NO_PROVIDER)  # no transport of the file's provider here


def _retry_or_fail(rt: Runtime, row: Media, reason: str, correlation_id: str | None) -> str:
    if row.attempts >= rt.settings.media_download_attempts:
        return _end(rt, row, media.FAILED, reason)
    delay = BACKOFF_S[min(row.attempts - 1, len(BACKOFF_S) - 1)]
    with rt.pool.connection() as conn:
        media.mark_retry(conn, row.id, error=reason, delay_s=delay)
    enqueue_media_download(rt.queue, rt.settings, row.id, correlation_id, delay_s=delay, attempt=row.attempts)
    log.info("media download to retry", extra={"media_id": row.id, "reason": reason, "attempts": row.attempts,
                                               "delay_s": delay})
    return "retry"


def _end(rt: Runtime, row: Media, status: str, reason: str, *, mime: str | None = None,
         size_bytes: int | None = None) -> str:
    """A download that ends without the file: failed, gone or rejected; shown to the agent, never dropped."""
    with rt.pool.connection() as conn:
        if status == media.GONE:
            media.mark_gone(conn, row.id, reason)
        elif status == media.REJECTED:
            media.mark_rejected(conn, row.id, reason, mime=mime, size_bytes=size_bytes)
        else:
            media.mark_failed(conn, row.id, reason)
        ended = media.get(conn, row.id, row.tenant_id)
    log.warning("media download ended without the file", extra={
        "media_id": row.id, "status": status, "reason": reason, "attempts": row.attempts})
    _announce(rt, row, status)
    if ended is not None:
        media_followup.after_failed(rt, ended)
    return status


def _announce(rt: Runtime, row: Media, status: str) -> None:
    """Tell the tenant's open consoles (ids and status only); never raises."""
    live.publish(rt.redis, row.tenant_id, "media", conversation_id=row.conversation_id, message_id=row.message_id,
                 media_id=row.id, status=status)
