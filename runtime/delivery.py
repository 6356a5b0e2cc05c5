"""Sending one stored reply through its conversation's channel, exactly once.

A reply row is claimed (`pending` -> `sending`) right before the provider is
called, so two jobs never send the same row. Everything that may wait or fail
on its own (the recipient's lookup, the send throttle's wait) happens before
the claim, so a row is `sending` only while the provider call is in flight.
If a worker dies while a row is `sending`, nobody knows whether the provider
got it: the row is marked failed ("interrupted") and not resent, because a
customer must never get the same reply twice; the provider's receipt, which
carries the row's idempotency key, reconciles it later (worker/statuses.py).

Failure policy: transient provider errors (429, 5xx, timeouts, 130429,
131056) put the row back to `pending` and return RETRY_LATER; the caller
schedules a retry job. Permanent errors (131047 outside the 24-hour window,
131026 not on WhatsApp, template and auth errors) mark it failed with the
provider's code. Database errors raise so that the job is retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from channels import limits
from channels.errors import SendError, TransientSendError
from channels.outbound import Recipient, SendResult
from config import Settings
from runtime import outbound_media, throttle
from runtime.enqueue import enqueue_delivery
from runtime.resources import Runtime
from runtime.senders import Sender
from storage import contacts, messages

log = logging.getLogger(__name__)

SENT = "sent"
FAILED = "failed"
RETRY_LATER = "retry_later"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    kind: str  # SENT | FAILED | RETRY_LATER | SKIPPED
    retry_after_s: float = 0.0
# Wait in-process for the throughput bucket up to this long; beyond it, retry later.
MAX_THROTTLE_WAIT_S = 2.0


def deliver(runtime: Runtime, message_id: int, recipient: Recipient | None = None,
            sender: Sender | None = None) -> Outcome:
    """Send one stored reply from its conversation's channel (`runtime.senders`: the number the customer
    last wrote to, with that channel's credentials). `recipient` and `sender`, when the caller knows them
    already (the worker answering a message), save reading and decrypting them again."""
    if recipient is None or sender is None:
        with runtime.pool.connection() as conn:
            route = messages.route_of_pending(conn, message_id)
            if route is not None:
                phone, bsuid = contacts.recipient_of(conn, runtime.vault, route.contact_id)
                recipient = Recipient(phone=phone, bsuid=bsuid)
        if route is None:  # not pending: sent, failed, or left in flight by a worker that died
            return _not_pending(runtime, message_id)
        sender = runtime.senders.sender(route.tenant_id, route.provider, route.number)
    assert recipient is not None

    wait = _throttle(runtime, sender.number, recipient.phone or recipient.bsuid or "")
    if wait > 0:
        with runtime.pool.connection() as conn:
            messages.release_for_retry(conn, message_id, "throttled", f"sending rate limit; retry in {wait:.1f}s")
        return Outcome(RETRY_LATER, wait)

    with runtime.pool.connection() as conn:
        row = messages.claim_for_sending(conn, message_id)
    if row is None:
        return _not_pending(runtime, message_id)
    try:
        message = outbound_media.ready(runtime, sender.transport, row)  # an agent's file: uploaded or linked
        results = sender.transport.send(recipient, message, reference=row.idempotency_key)
    except SendError as exc:
        return _record_failure(runtime, row, exc, sender.channel)
    _record_sent(runtime, row, results, sender.channel)
    log.info("reply sent", extra={"message_id": message_id, "parts": len(results)})
    return Outcome(SENT)


def _not_pending(runtime: Runtime, message_id: int) -> Outcome:
    """A reply this job cannot claim: left `sending` by a worker that died mid-send, or already done."""
    with runtime.pool.connection() as conn:
        if messages.status_of(conn, message_id) != "sending":
            return Outcome(SKIPPED)
        messages.mark_failed(conn, message_id, "interrupted",
                             "the worker stopped while sending; not resent to avoid a duplicate")
    log.warning("reply was in flight when a worker stopped; marked failed", extra={"message_id": message_id})
    return Outcome(FAILED)


def _record_sent(runtime: Runtime, row: messages.OutboundRow, results: list[SendResult], channel: str) -> None:
    """Store the provider id (and which transport sent it: receipts are matched by both); a reply split to
    fit WhatsApp's limits gets one extra row per further part."""
    first = results[0]
    changed = channel if channel != row.channel else None
    if len(results) == 1:  # the usual case: one statement, no transaction around it
        with runtime.pool.connection() as conn:
            messages.mark_sent(conn, row.id, first.provider_message_id, first.status, changed)
        return
    parts = limits.fit(row.message)
    with runtime.pool.connection() as conn, conn.transaction():
        messages.mark_sent(conn, row.id, first.provider_message_id, first.status, changed)
        for part, result in enumerate(results[1:], start=1):
            message = parts[part] if len(parts) == len(results) else row.message
            messages.add_extra_part(conn, row, part, result.provider_message_id, message, result.status, channel)


def _record_failure(runtime: Runtime, row: messages.OutboundRow, exc: SendError, channel: str) -> Outcome:
    """Decide between retry and failure without ever risking a second copy for the customer."""
    log.warning("send failed", extra={"message_id": row.id, "code": exc.code, "retryable": exc.retryable})
    if exc.partial_results:
        # Part of a split reply went out: keep what was sent, do not resend the rest (it would repeat it).
        _record_sent(runtime, row, exc.partial_results, channel)
        return Outcome(SENT)
    with runtime.pool.connection() as conn:
        if exc.maybe_sent:
            messages.mark_failed(conn, row.id, exc.code,
                                 "no answer from the provider; it may have been delivered, so it is not resent")
            return Outcome(FAILED)
        if isinstance(exc, TransientSendError):
            messages.release_for_retry(conn, row.id, exc.code, exc.title)
            return Outcome(RETRY_LATER, exc.retry_delay_s(row.attempts - 1))
        messages.mark_failed(conn, row.id, exc.code, exc.title)
    return Outcome(FAILED)


def schedule_retry(runtime: Runtime, message_id: int, correlation_id: str | None, delay_s: float) -> None:
    enqueue_delivery(runtime.queue, runtime.settings, message_id, correlation_id, delay_s)


def deliver_or_raise(runtime: Runtime, message_id: int) -> str:
    """For the retry job: a transient failure raises so that RQ's back-off schedules the next try."""
    outcome = deliver(runtime, message_id)
    if outcome.kind == RETRY_LATER:
        raise TransientSendError("retry", "transient failure; retried with back-off")
    return outcome.kind


def send_buckets(settings: Settings, number: str, recipient: str, *, throughput_burst: int) -> list[throttle.Bucket]:
    """The (business number, this customer) pair bucket and that number's throughput bucket, in that order.

    `number` is the sending channel's (`Sender.number`): Meta's limits are per business phone number, so
    two companies' numbers never slow each other down.
    """
    return [
        throttle.Bucket(throttle.pair_key(number, recipient), throttle.PAIR_RATE_PER_S, throttle.PAIR_BURST),
        throttle.Bucket(throttle.throughput_key(number), settings.meta_throughput_mps, throughput_burst),
    ]


def _throttle(runtime: Runtime, number: str, recipient: str) -> float:
    """Take a token from the recipient's pair bucket and the sending number's throughput bucket (both or neither).

    Short waits are slept here; a longer one is returned (nothing sent, retry later).
    """
    settings = runtime.settings
    buckets = send_buckets(settings, number, recipient, throughput_burst=settings.meta_throughput_mps)
    return throttle.take(runtime.redis, buckets, MAX_THROTTLE_WAIT_S)
