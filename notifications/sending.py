"""Sending one notification: template or free-form, within the rate limits, at most once.

`send(rt, log_id)` is what the jobs call. In order:
1. claim the waiting `notification_log` row (one sender only);
2. the customer opted out -> skipped; inside quiet hours -> deferred to their end;
3. inside the 24-hour window -> an interactive message (the template's text with
   its quick replies as buttons); outside -> the approved template, if WhatsApp's
   messaging limit has room for its customer (`notifications.limits`), else held;
4. the message is written to `messages` (idempotency key `notification:<id>:<mode>`)
   before the provider is called, then claimed, throttled and sent from the tenant's
   channel (the number the customer last wrote to, else the tenant's first), with that
   channel's credentials; the throttle's buckets are that number's;
5. Meta 131047 / Twilio 63016 on the free-form message -> the template, at once;
6. rate limits (130429, 131056) and other transient errors -> deferred and
   retried later; permanent errors -> failed with the provider's code;
7. sent -> the dialog remembers the package, and the core is told.

Failure policy: provider errors never raise (they are recorded); database and
Redis errors raise so that RQ retries the job. A message that may have reached
the provider (timeout, worker died mid-send) is never sent again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Connection

from channels.errors import SendError, TransientSendError, WindowClosedError
from channels.outbound import Buttons, Choice, OutboundMessage, Recipient, SendResult, Template, Text, preview_text
from notifications import ledger, limits, recipients, reporting, template_states
from notifications.quiet_hours import quiet_hours_of, release_time
from notifications.templates import MissingTemplateValue, TemplateSpec, build_message
from notifications.tenant_templates import template_for
from runtime import delivery, throttle
from runtime.resources import Runtime
from runtime.senders import Sender
from storage import contacts, conversations, messages

log = logging.getLogger(__name__)

FREE_FORM = "free_form"
TEMPLATE = "template"
# Wait in-process for a rate-limit token up to this long; beyond it, defer and retry later.
MAX_THROTTLE_WAIT_S = 2.0
# Transient failures (rate limits, provider errors) tolerated before a notification is marked failed.
MAX_ATTEMPTS = 10
# One notification per customer per 6 s (Meta's pair rate), kept apart from replies' burst allowance.
NOTIFY_PAIR_KEY = "throttle:notify:{number}:{recipient_hash}"


@dataclass(frozen=True)
class SendOutcome:
    result: str  # sent | skipped | deferred | failed | not_waiting | held
    retry_at: datetime | None = None


def send(rt: Runtime, log_id: int, *, now: datetime | None = None) -> SendOutcome:
    """Send the notification `log_id` if it is waiting and due (see the module docstring)."""
    now = now or datetime.now(UTC)
    with rt.pool.connection() as conn:
        claimed = ledger.claim(conn, log_id, now)
        if claimed is None:
            return SendOutcome("not_waiting")
        note = claimed.note
        if claimed.opted_out:
            ledger.mark_skipped(conn, log_id, "the customer opted out of notifications")
            log.info("notification skipped: opted out", extra={"notification_id": log_id})
            return SendOutcome("skipped")
        quiet_until = release_time(now, claimed.timezone, *quiet_hours_of(rt, note.tenant_id))
        if quiet_until is not None:
            ledger.defer(conn, log_id, quiet_until, "quiet hours")
            return SendOutcome("deferred", quiet_until)
        window_open = contacts.service_window_open(conn, note.contact_id, now)
        conversation = conversations.open_for(conn, tenant_id=note.tenant_id, contact_id=note.contact_id)
        wrote_via, wrote_to = messages.conversation_channel(conn, conversation.id)
    # The tenant's number the customer last wrote to (else its first one), with that channel's credentials.
    sender = rt.senders.sender(note.tenant_id, wrote_via, wrote_to)
    phone = rt.vault.decrypt(claimed.phone_encrypted) if claimed.phone_encrypted else None
    bsuid = claimed.bsuid
    tenant_slug = claimed.tenant_slug
    values = json.loads(rt.vault.decrypt(note.values_encrypted or ""))
    spec = template_for(rt, note.tenant_id, tenant_slug, note.kind)  # the company's own, as its admin left it
    if spec is None:
        with rt.pool.connection() as conn:
            ledger.mark_failed(conn, log_id, "no_template", f"tenant {tenant_slug!r} has no {note.kind} template")
        log.error("no template configured", extra={"notification_id": log_id, "kind": note.kind})
        return SendOutcome("failed")
    mode = note.mode or (FREE_FORM if window_open else TEMPLATE)
    recipient = Recipient(phone=phone, bsuid=bsuid)
    # An earlier attempt (refused for the window, or deferred after waiting its turn) already spaced it.
    retry = note.mode is not None
    while True:
        if mode == TEMPLATE:  # issue 17: a template Meta paused gives way to the next allowed one, or waits
            with rt.pool.connection() as conn:
                allowed = template_states.choose(conn, note.tenant_id, tenant_slug, spec)
                if allowed is None:
                    # released as a template: a free-form try may already have been refused for the window
                    ledger.hold(conn, log_id, ledger.HOLD_TEMPLATE_PAUSED, mode=TEMPLATE)
            if allowed is None:
                log.info("notification held: its templates are paused", extra={"notification_id": log_id})
                return SendOutcome("held")
            spec = allowed
        try:
            message = build_message(spec, values) if mode == TEMPLATE else free_form(spec, values)
        except MissingTemplateValue as exc:
            with rt.pool.connection() as conn:
                ledger.mark_failed(conn, log_id, "template_values", str(exc))
            return SendOutcome("failed")
        if mode == TEMPLATE and (over := _over_limit(rt, note, sender, now, retry)) is not None:
            return over
        outcome = _send_as(rt, sender, note, conversation.id, recipient, mode, message, spec.render(values),
                           refused_before=retry)
        if outcome == "template_refused":  # Meta paused it before its webhook told us: the next one, or held
            retry = True
            continue
        if outcome != "window_closed":
            break
        mode, retry = TEMPLATE, True  # 131047: the window closed after all; the approved template may always go
        log.info("window closed for a free-form notification; sending the template",
                 extra={"notification_id": log_id})
    if isinstance(outcome, SendOutcome):
        return outcome
    if outcome == "sent":
        options = [(b.payload.format_map(values), b.title) for b in spec.buttons]
        recipients.seed_dialog(rt, sender.provider, sender.number, phone=phone or bsuid or "",
                               conversation_id=conversation.id, tracking_code=note.tracking_code,
                               pin_point=_pin_point(options), options=options)
        reporting.report(rt, log_id)
        return SendOutcome("sent")
    return SendOutcome("failed")


def _over_limit(rt: Runtime, note: ledger.Notification, sender: Sender, now: datetime,
                template_only: bool) -> SendOutcome | None:
    """None when WhatsApp's messaging limit lets this template go (its customer's slot taken); else the
    notification is held (or deferred: the count was unreachable) and that is the outcome."""
    with rt.pool.connection() as conn:
        admission = limits.admit(rt, conn, note, provider=sender.provider, number=sender.number, now=now,
                                 template_only=template_only)
    if admission.ok:
        return None
    if admission.retry_at is not None:
        return SendOutcome("deferred", admission.retry_at)
    return SendOutcome("held")


def free_form(spec: TemplateSpec, values: dict[str, str]) -> OutboundMessage:
    """The in-window version: the template's text, its quick replies as reply buttons."""
    body = spec.render(values)
    if not spec.buttons:
        return Text(body)
    choices = tuple(Choice(b.payload.format_map(values), b.title) for b in spec.buttons)
    return Buttons(body=body, buttons=choices)


def _pin_point(options: list[tuple[str, str]]) -> str | None:
    pins = [option_id.partition(":")[2] for option_id, _ in options if option_id.startswith("pin:")]
    return pins[0] if pins else None


def _send_as(rt: Runtime, sender: Sender, note: ledger.Notification, conversation_id: int, recipient: Recipient,
             mode: str, message: OutboundMessage, shown: str, *, refused_before: bool) -> str | SendOutcome:
    """Write, claim, throttle and send one message; 'sent', 'failed', 'window_closed', 'template_refused' (Meta
    paused or disabled the template: `notifications.template_states.refused`) or a deferral.

    `refused_before`: the template after a refused free-form message, which reached
    nobody, so the customer's notification spacing is not taken twice.
    """
    key = f"notification:{note.id}:{mode}"
    with rt.pool.connection() as conn:  # no transaction: a retry finds the message by its key
        message_id = messages.create_outbound(
            conn, tenant_id=note.tenant_id, conversation_id=conversation_id, channel=sender.channel,
            idempotency_key=key, message=message, webhook_event_id=None, correlation_id=f"notification-{note.id}",
        )
        if message_id is None:
            message_id = _message_by_key(conn, key)
        else:
            body = shown if mode == TEMPLATE else preview_text(message)
            conn.execute("UPDATE messages SET body = %s WHERE id = %s", (body, message_id))
        ledger.set_message(conn, note.id, message_id, mode, message.name if isinstance(message, Template) else None)
        row_claimed = messages.claim_for_sending(conn, message_id)
        if row_claimed is None:
            status = messages.status_of(conn, message_id)
            reason = "an earlier attempt may have reached the provider; not resent to avoid a duplicate"
            messages.mark_failed(conn, message_id, "interrupted", reason)
            ledger.mark_failed(conn, note.id, "interrupted", f"message was {status}: {reason}")
            return "failed"
    who = recipient.phone or recipient.bsuid or ""
    wait = _throttle(rt, sender.number, who, spaced=not refused_before)
    if wait > 0:
        return _defer(rt, note, message_id, "throttled", f"sending rate limit; retry in {wait:.1f}s", wait)
    try:
        results = sender.transport.send(recipient, message, reference=key)
    except WindowClosedError as exc:
        with rt.pool.connection() as conn:
            messages.mark_failed(conn, message_id, exc.code, exc.title)
        if mode == FREE_FORM:
            return "window_closed"
        with rt.pool.connection() as conn:
            ledger.mark_failed(conn, note.id, exc.code, exc.title)
        return "failed"
    except TransientSendError as exc:
        if exc.maybe_sent:
            return _fail(rt, note, message_id, exc, "no answer from the provider; it may have been delivered")
        if note.attempts >= MAX_ATTEMPTS:
            return _fail(rt, note, message_id, exc, f"gave up after {note.attempts} attempts: {exc.title}")
        delay = exc.retry_delay_s(note.attempts - 1)
        return _defer(rt, note, message_id, exc.code, exc.title, delay)
    except SendError as exc:
        if isinstance(message, Template) and exc.code in template_states.REFUSED_CODES:  # paused/disabled by Meta
            with rt.pool.connection() as conn, conn.transaction():
                template_states.refused(conn, note.tenant_id, message_id, message, exc.code, exc.title)
            log.info("template refused as paused; choosing again", extra={"notification_id": note.id})
            return "template_refused"
        return _fail(rt, note, message_id, exc, exc.title)
    _record_sent(rt, sender.channel, note, message_id, results)
    log.info("notification sent", extra={"notification_id": note.id, "mode": mode, "kind": note.kind})
    return "sent"


def _message_by_key(conn: Connection[Any], key: str) -> int:
    row = conn.execute("SELECT id FROM messages WHERE idempotency_key = %s", (key,)).fetchone()
    assert row is not None
    return int(row["id"])


def _record_sent(rt: Runtime, channel: str, note: ledger.Notification, message_id: int,
                 results: list[SendResult]) -> None:
    first = results[0]
    with rt.pool.connection() as conn, conn.transaction():
        messages.mark_sent(conn, message_id, first.provider_message_id, first.status, channel)
        ledger.mark_sent(conn, note.id, channel=channel, provider_message_id=first.provider_message_id,
                         status=first.status)


def _fail(rt: Runtime, note: ledger.Notification, message_id: int, exc: SendError, why: str) -> str:
    log.warning("notification failed", extra={"notification_id": note.id, "code": exc.code})
    with rt.pool.connection() as conn, conn.transaction():
        messages.mark_failed(conn, message_id, exc.code, why)
        ledger.mark_failed(conn, note.id, exc.code, why)
    return "failed"


def _defer(rt: Runtime, note: ledger.Notification, message_id: int, code: str, why: str,
           delay_s: float) -> SendOutcome:
    retry_at = datetime.now(UTC) + timedelta(seconds=max(0.5, delay_s))
    with rt.pool.connection() as conn, conn.transaction():
        messages.release_for_retry(conn, message_id, code, why)
        ledger.defer(conn, note.id, retry_at, f"{code}: {why}")
    return SendOutcome("deferred", retry_at)


def _throttle(rt: Runtime, number: str, recipient: str, *, spaced: bool = True) -> float:
    """Take tokens: this customer's notification spacing, their pair bucket, the number's throughput.

    All or none in one round trip (`runtime.throttle.acquire_all`). Short waits are slept
    here; a longer one is returned (nothing sent, retry later). The throughput bucket is the
    one replies use, with a burst of one so that no second holds more than the configured
    messages per second.
    """
    buckets = delivery.send_buckets(rt.settings, number, recipient, throughput_burst=1)
    if spaced:
        notify_key = NOTIFY_PAIR_KEY.format(number=number,
                                            recipient_hash=throttle.recipient_hash(recipient))
        buckets.insert(0, throttle.Bucket(notify_key, throttle.PAIR_RATE_PER_S, 1))
    return throttle.take(rt.redis, buckets, MAX_THROTTLE_WAIT_S)
