"""Handling one customer message: store it, compose the replies, send them.

The steps are ordered so that a job killed at any point can simply run again:
1. the message, its customer and conversation are stored (idempotent);
2. replies are composed by the conversation engine (`chatbot.engine.respond`,
   outside any transaction: it reads Redis and the logistics core) only if
   this event was not answered before: no reply rows and no routing decision
   stored for it (a silent answer, e.g. while a person has the chat, stores
   its routing too). In ONE transaction the replies are stored as `pending`
   rows with idempotency keys "<event>:<n>", together with the routing
   decision, the escalation (and the conversation's `escalated` status), the
   opt-out change and the analytics events; then the dialog state is saved
   to Redis;
3. each pending row is sent by `runtime.delivery` (a row in flight when a worker
   died is never sent twice);
4. the event is marked processed.
No database transaction is held while talking to the provider or the core.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields, replace
from typing import Any

from psycopg import Connection

from channels.events import InboundMessage
from channels.outbound import Recipient
from chatbot import customer_side, engine, guard
from llm import costs as llm_costs
from llm.tenant_models import TenantModel, TenantModels
from runtime import bot_sessions, delivery
from runtime.enqueue import conversation_hash, enqueue_media_download
from runtime.plan_terms import Terms
from runtime.resources import Runtime
from storage import analytics, contacts, conversations, dialogs, escalations, media, messages, webhook_events
from storage.tenants import Tenant
from worker import attempts

log = logging.getLogger(__name__)

# Why a message is stored `unroutable` (webhook_events.error; the operator counts them by it)
NO_TENANT = "no tenant for the receiving number"
SUSPENDED = "tenant suspended"
# Events whose data names the customer message of their turn (its webhook event id, never its text)
LINKED_EVENTS = ("not_understood", "escalation")


def process_message(runtime: Runtime, event_pk: int) -> str:
    """Handle a stored inbound message event; returns what happened (for logs and tests).

    Raises on database errors so that RQ retries the job.
    """
    stored, event = attempts.begin(runtime, event_pk)
    if event is None:
        return f"already {stored.status}"
    assert isinstance(event, InboundMessage)
    event = _storable(event)

    tenant = runtime.tenant_for(event.provider, event.channel_number)
    if tenant is None or not tenant.active:
        # Acknowledged long ago (the provider stops retrying), never answered, never stored under another tenant.
        reason = NO_TENANT if tenant is None else SUSPENDED
        log.warning("unroutable message: %s", reason,
                    extra={"event_pk": event_pk, "provider": event.provider, "reason": reason,
                           "tenant_id": tenant.id if tenant else None})
        with runtime.pool.connection() as conn:
            webhook_events.finish(conn, event_pk, "unroutable", error=reason, tenant_id=tenant.id if tenant else None,
                                  channel_number=event.channel_number)
        return "unroutable"
    runtime.proofs.routed(event.provider, event.channel_number)  # a signed event reached it: the channel works

    # Pipeline mode around the transaction: BEGIN and COMMIT travel with the statements instead of alone.
    with runtime.pool.connection() as conn, conn.pipeline(), conn.transaction():
        contact = contacts.upsert_inbound(
            conn, runtime.vault, tenant_id=tenant.id, phone=event.user_phone, bsuid=event.user_bsuid,
            profile_name=event.profile_name,
        )
        conversation = conversations.open_for(conn, tenant_id=tenant.id, contact_id=contact.id)
        message_pk = messages.insert_inbound(
            conn, tenant_id=tenant.id, conversation_id=conversation.id, channel=event.provider,
            provider_message_id=event.message_id, webhook_event_id=event_pk, kind=event.kind.value,
            body=event.text, payload=_inbound_payload(event), correlation_id=stored.correlation_id,
        )
        first_attempt = message_pk is not None
        # Issue 17: its files as `pending` rows with the message; downloaded by a job queued below (not waited for)
        media_ids = media.record_inbound(conn, tenant_id=tenant.id, conversation_id=conversation.id,
                                         message_id=message_pk, event=event) if message_pk is not None else []
        # Stored just now: nothing can have answered it yet (replies are stored after, in another transaction).
        already_composed = not first_attempt and messages.event_answered(conn, event_pk)
        case = escalations.open_case(conn, conversation.id) if conversation.status != "bot" else None
    for media_id in media_ids:  # a job lost here is queued again by the scheduler's recovery loop
        enqueue_media_download(runtime.queue, runtime.settings, media_id, stored.correlation_id)

    # The number the customer wrote to answers, with its own credentials (the read receipt too).
    sender = runtime.senders.sender(tenant.id, event.provider, event.channel_number)
    if not already_composed:
        sender.transport.mark_read(event.message_id)
        key = conversation_hash(runtime.vault, event)
        assert key is not None
        terms = runtime.plans.terms(tenant.id)  # the plan: chatbot or the company's people, model or rules
        model = _plan_model(runtime, tenant, contact.id, terms)
        console_reply = customer_side.answer(  # issue 6: a rating or a waiting-notice button is the console's
            runtime.pool, runtime.redis, event, tenant_id=tenant.id, contact_id=contact.id,
            conversation_id=conversation.id, conversation_status=conversation.status, conversation_hash=key)
        outcome = console_reply or engine.respond(
            runtime.settings, runtime.redis, event, tenant=tenant, core=runtime.cores.client(tenant.id),
            faq=runtime.faqs.get(tenant.id),  # the company's current FAQ, from memory
            customer=engine.Customer(phone=contact.phone, first_name=guard.first_name(contact.profile_name),
                                     is_new=contact.is_new, opted_out=contact.opted_out),
            situation=engine.Situation(conversation.id, conversation.status, case.case_number if case else None),
            conversation_hash=key,
            model=model, chatbot=terms.chatbot,
            schedule=runtime.rules.schedule(tenant.id),
            phrases=runtime.phrases.get(tenant.id).phrases,  # the company's own router phrases, from memory
        )
        with runtime.pool.connection() as conn, conn.pipeline(), conn.transaction():
            pending = _store_outcome(conn, sender.channel, tenant, contact.id, conversation.id, event_pk,
                                     stored.correlation_id, outcome)
        dialogs.save(runtime.redis, key, outcome.state)
        if conversation.status != "bot" or outcome.escalation is not None:  # issue 6: live console
            with runtime.pool.connection() as conn:
                customer_side.announce_message(conn, runtime.redis, tenant_id=tenant.id,
                                               conversation_id=conversation.id,
                                               new_case=outcome.escalation is not None)
    else:
        with runtime.pool.connection() as conn:
            pending = messages.pending_outbound_ids(conn, event_pk)
    recipient = Recipient(phone=contact.phone, bsuid=contact.bsuid)
    sent = [delivery.deliver(runtime, message_id, recipient, sender) for message_id in pending]
    for message_id, result in zip(pending, sent, strict=True):
        if result.kind == delivery.RETRY_LATER:
            delivery.schedule_retry(runtime, message_id, stored.correlation_id, result.retry_after_s)

    with runtime.pool.connection() as conn:
        webhook_events.finish(conn, event_pk, "processed", tenant_id=tenant.id)
    log.info("message handled", extra={"event_pk": event_pk, "kind": event.kind.value, "replies": len(pending)})
    return "processed"


def _plan_model(runtime: Runtime, tenant: Tenant, contact_id: int, terms: Terms) -> TenantModel | None:
    """The tenant's model when its plan allows it now (runtime/plan_terms.py), else None (rules only).

    Counts the message toward the month's bot conversations (runtime/bot_sessions.py): over the plan's
    limit, the `rules_only` rule answers with the rules, the `flag` rule keeps the model (the operator
    sees the overage in the usage)."""
    counted = bot_sessions.count_message(runtime.redis, runtime.pool, tenant, contact_id)
    conversations = counted[1] if counted is not None else None
    if counted is not None and counted[0] and terms.over_conversations(conversations) \
            and conversations == int(terms.conversations_limit or 0) + 1:  # the session that went over: once
        log.warning("bot conversations over the plan's limit", extra={
            "tenant_id": tenant.id, "plan": terms.plan, "rule": terms.overage, "limit": terms.conversations_limit})
    if not terms.model_allowed(conversations):
        return None
    return TenantModels(runtime.settings, runtime.model_access).model(tenant.id)


def _store_outcome(conn: Connection[Any], channel: str, tenant: Tenant, contact_id: int, conversation_id: int,
                   event_pk: int, correlation_id: str, outcome: engine.Outcome) -> list[int]:
    """Everything one answer changes, in the caller's transaction: replies, routing, escalation, opt-out, events.

    Returns the ids of the reply rows to send. The statements go in psycopg's pipeline mode: the
    ones whose answer is not read travel together with the first reply's INSERT (one round trip
    instead of one each).
    """
    with conn.pipeline():
        analytics.record_route(conn, tenant_id=tenant.id, conversation_id=conversation_id,
                               webhook_event_id=event_pk, routing=outcome.routing)
        decision = outcome.escalation
        if decision is not None:
            escalations.open_escalation(
                conn, tenant_id=tenant.id, conversation_id=conversation_id, case_number=decision.case_number,
                priority=decision.priority, reason=decision.reason, callback=decision.callback,
            )
        if outcome.opt_out is not None:
            contacts.set_opted_out(conn, contact_id, outcome.opt_out)
        for kind, data in outcome.events:
            if kind in LINKED_EVENTS:  # the improvement loop finds the message (storage/unanswered.py): an id
                data = {**data, "message_event": event_pk}
            analytics.record(conn, tenant_id=tenant.id, conversation_id=conversation_id, kind=kind, data=data)
        llm_costs.store(conn, tenant_id=tenant.id, conversation_id=conversation_id, calls=outcome.llm_calls)
        reply_ids = []
        for index, reply in enumerate(outcome.replies):
            reply_id = messages.create_outbound(
                conn, tenant_id=tenant.id, conversation_id=conversation_id, channel=channel,
                idempotency_key=f"{event_pk}:{index}", message=reply, webhook_event_id=event_pk,
                correlation_id=correlation_id,
            )
            if reply_id is not None:
                reply_ids.append(reply_id)
    return reply_ids


def _storable(event: InboundMessage) -> InboundMessage:
    """The message without NUL characters, which PostgreSQL text and jsonb cannot hold (a customer may send one),
    and with any lone UTF-16 surrogate (which UTF-8 cannot encode) replaced by U+FFFD."""
    changes: dict[str, Any] = {f.name: _SURROGATE.sub("\ufffd", value.replace("\x00", "")) for f in fields(event)
                               if isinstance(value := getattr(event, f.name), str)
                               and ("\x00" in value or _SURROGATE.search(value))}
    return replace(event, **changes) if changes else event


_SURROGATE = re.compile("[\ud800-\udfff]")


def _inbound_payload(event: InboundMessage) -> dict[str, object]:
    """What is kept of the message besides its text: ids and references, never the phone.

    `channel_number` is the business number it came in on: the conversation's later messages (an agent's,
    a retried reply, a notification) leave from it (runtime.senders)."""
    keep = ("channel_number", "reply_id", "reply_title", "latitude", "longitude", "location_name", "location_address",
            "media_type", "media_ref", "media_mime", "media_voice", "media_filename", "media_sha256", "media_more",
            "reaction_to", "reaction_emoji", "context_message_id", "error_code")
    return {k: getattr(event, k) for k in keep if getattr(event, k) is not None}
