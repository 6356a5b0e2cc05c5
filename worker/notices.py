"""Applying an account notice of the provider (issue 17): store it for its company and act on it.

The company is found by the WhatsApp Business Account id (`tenant_channels.waba_id`); Meta's account webhooks
carry no phone_number_id. An account no company has is stored `unroutable` (webhook_events, reason "no tenant
for the account", like a message to an unknown number) and as a notice without a company.

For each company of the account, in one transaction with the event's `processed` mark:
- the notice is stored (`storage.account_notices`; once per event and company);
- a template status (PAUSED, DISABLED, APPROVED...) sets the template's state
  (`notifications.template_states`); when it becomes usable again, the notifications held for
  'template_paused' are released and queued to send (the sender picks the template again, so one whose
  templates are all still paused is held again);
- a messaging limit (phone_number_quality_update's max_daily_conversations_per_business or current_limit,
  business_capability_update) is the account's tier (`storage.messaging_limits.set_tier`, source 'webhook');
  a tier that is not one of the limits we count by (TIER_50, TIER_NOT_SET) is only stored.

Failure policy: database errors raise (the job is retried with back-off); Redis errors while queueing released
notifications are logged: the scheduler's notification pass sends whatever is due.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from psycopg import Connection

from channels.events import AccountNotice
from notifications import ledger, template_states
from notifications.jobs import enqueue_send
from runtime.resources import Runtime
from storage import account_notices, messaging_limits, webhook_events
from worker import attempts

log = logging.getLogger(__name__)

UNKNOWN_ACCOUNT = "no tenant for the account"


def process_notice(rt: Runtime, event_pk: int) -> str:
    stored, event = attempts.begin(rt, event_pk)
    if event is None:
        return f"already {stored.status}"
    assert isinstance(event, AccountNotice)
    occurred = _moment(event.timestamp)
    released: list[int] = []
    with rt.pool.connection() as conn, conn.transaction():
        tenants = messaging_limits.tenants_of_account(conn, event.account_id) if event.account_id else []
        if not tenants:
            _record(conn, None, event_pk, event, occurred)
            webhook_events.finish(conn, event_pk, "unroutable", error=UNKNOWN_ACCOUNT,
                                  channel_number=event.account_id[:64])
            log.warning("account notice for an unknown account", extra={"event_pk": event_pk, "topic": event.topic})
            return "unroutable"
        for tenant_id in tenants:
            if _record(conn, tenant_id, event_pk, event, occurred) is None:
                continue  # stored by an earlier attempt, with its effects
            released += _apply(conn, tenant_id, event, occurred)
        webhook_events.finish(conn, event_pk, "processed", tenant_id=tenants[0])
    _queue(rt, released)
    log.info("account notice applied", extra={"event_pk": event_pk, "topic": event.topic, "event": event.event,
                                              "released": len(released)})
    return "processed"


def _moment(timestamp: int) -> datetime:
    """Meta's entry.time; now when absent or absurd (12 digits parse, but not every such number is a date)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC) if timestamp else datetime.now(UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.now(UTC)


def _record(conn: Connection[Any], tenant_id: int | None, event_pk: int, event: AccountNotice,
            occurred: datetime) -> int | None:
    language = template_states.language_code(event.template_language) if event.template_language else None
    return account_notices.record(
        conn, tenant_id=tenant_id, webhook_event_id=event_pk, field=event.topic,
        waba_id=event.account_id, phone=event.phone, template_name=event.template_name,
        template_language=language, event=event.event, tier=event.tier, quality=event.quality,
        reason=event.reason, occurred_at=occurred,
    )


def _apply(conn: Connection[Any], tenant_id: int, event: AccountNotice, occurred: datetime) -> list[int]:
    """The notice's effects for one company; the ids of notifications released to send."""
    if event.topic == "template_status" and event.template_name and event.template_language:
        usable = template_states.usability(event.event, event.reason)
        if usable is None:
            return []
        changed = account_notices.set_template_state(
            conn, tenant_id=tenant_id, name=event.template_name,
            language=template_states.language_code(event.template_language), status=event.event.upper(),
            usable=usable, reason=event.reason, since=occurred)
        if changed and usable:
            return ledger.release_held(conn, tenant_id, ledger.HOLD_TEMPLATE_PAUSED)
        return []
    if event.topic in ("number_quality", "capability") and event.tier:
        try:
            tier = messaging_limits.parse_tier(event.tier)
        except ValueError:  # TIER_50, TIER_NOT_SET...: not one of the limits we count by
            log.info("messaging limit not applied", extra={"tier": event.tier[:40]})
            return []
        messaging_limits.set_tier(conn, tenant_id=tenant_id, account_id=event.account_id,
                                  tier=tier, source="webhook")
    return []


def _queue(rt: Runtime, released: list[int]) -> None:
    for log_id in released:
        try:
            enqueue_send(rt.queue, rt.settings, log_id)
        except redis.RedisError as exc:
            log.warning("released notification not queued: the scheduler's pass sends it",
                        extra={"notification_id": log_id, "error": type(exc).__name__})
            return
