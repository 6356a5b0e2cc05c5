"""The conversation engine: the one call the worker makes to answer a customer message.

`respond` reads the session from Redis, checks the per-number limits, cleans
the text, asks the router and runs the dialog with the services, and returns
an `Outcome`: the replies, the routing decision to record with the message,
the escalation to open, an opt-out change, analytics events, the model calls
made (`llm_calls`, priced) and the session's new state. It writes nothing to
PostgreSQL: the worker stores the outcome in one transaction and then saves
the state with `storage.dialogs.save`.

With a language model for the tenant (its own settings or the deployment's
`LLM_PROVIDER`, `llm.tenant_models`; chatbot/llm/), a message
the rules read with low confidence is read again by the model (structured
output; an unsure model means the menu, not a guess), and a question the
model reads as outside the intents is answered from tool results through the
output guard (`Turn.free_answer`, offered to the dialog's "not understood"
path). Any model failure, a refused answer or an open circuit leaves the
rules' reply. With no provider none of this runs and nothing mentions AI.

A photo, video, document, sticker or voice note is answered by
`chatbot.media_replies` (an album once; a caption the rules understand is
routed as the turn's text, once per album).

"Now" is the moment of the message (the provider's timestamp) on the
company's clock, so hours and "mañana" follow the customer's message and not
the queue; a timestamp of 0 or an absurd one falls back to the current clock.

Failure policy: never raises. Any unexpected error is logged (its type and
place, never the message text) and answered with an apology and the menu.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis

from channels.events import InboundMessage, MessageKind
from channels.outbound import Buttons, Choice, ChoiceList, OutboundMessage, Text
from chatbot import guard, media_replies, people_only, photo_reply
from chatbot.dialog import cases, machine
from chatbot.dialog.turn import Customer, Situation, State, Turn, wording
from chatbot.llm import answer, tools
from chatbot.llm.fallback import RouterFallback
from chatbot.phrases import CompanyPhrases
from chatbot.router import LLM_THRESHOLD, route
from chatbot.routing import DialogContext, Route
from config import Settings
from core_api_client import CoreClient
from llm import history
from llm.costs import LlmCall
from llm.session import LlmSession
from llm.tenant_models import TenantModel
from llm.transcription import configured as transcribes
from services import ServiceContext, escalation
from services.escalation import EscalationDecision
from storage import dialogs
from storage.dialogs import DialogState
from storage.faq_content import FaqData
from storage.tenant_hours import Schedule
from storage.tenants import Tenant

log = logging.getLogger(__name__)

__all__ = ["Customer", "Outcome", "Situation", "message_time", "respond"]

ROUTED_KINDS = frozenset({MessageKind.TEXT, MessageKind.BUTTON_REPLY, MessageKind.LIST_REPLY,
                          MessageKind.TEMPLATE_BUTTON,
                          MessageKind.TRANSCRIPT})  # a voice note's text (worker/media_followup.py): like typed
SILENT_KINDS = frozenset({MessageKind.REACTION, MessageKind.SYSTEM})
WITH_A_HUMAN = ("escalated", "agent")
# Provider timestamps outside these bounds are not believed (0, milliseconds, garbage).
EARLIEST_TS = datetime(2015, 1, 1, tzinfo=UTC).timestamp()
LATEST_TS = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
_ENTITY_KEYS = ("tracking_code", "point", "weight_lbs", "day")


@dataclass(frozen=True)
class Outcome:
    """What one message leads to. `routing` is stored with the message for analytics."""

    replies: list[OutboundMessage]
    routing: dict[str, Any]
    state: DialogState
    escalation: EscalationDecision | None = None
    opt_out: bool | None = None  # True: opted out now, False: opted in again, None: unchanged
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    llm_calls: list[LlmCall] = field(default_factory=list)  # stored by the worker with llm.costs.store


def message_time(timestamp: int | float, timezone: ZoneInfo) -> datetime:
    """When the customer wrote, on the company's clock (the current time when the timestamp is absurd)."""
    if EARLIEST_TS <= timestamp <= LATEST_TS:
        moment = datetime.fromtimestamp(timestamp, UTC)
    else:
        moment = datetime.now(UTC)
    return moment.astimezone(timezone)


def respond(settings: Settings, conn: redis.Redis, message: InboundMessage, *, tenant: Tenant, core: CoreClient,
            customer: Customer, situation: Situation, conversation_hash: str, model: TenantModel | None = None,
            schedule: Schedule | None = None, faq: FaqData | None = None, chatbot: bool = True,
            phrases: CompanyPhrases = ()) -> Outcome:
    """The bot's answer to one stored customer message (possibly no reply at all). Never raises.

    `core` is the tenant's own logistics core (`runtime.cores`).

    `model` is the tenant's language model (`llm.tenant_models`); None (no model configured, or the tenant's
    plan allows none now: no AI, its LLM budget spent, `runtime.plan_terms`) answers with the rules alone.

    `chatbot` False (the tenant's plan has no chatbot, `runtime.plan_terms`): the bot does not converse, the company's
    people answer (chatbot/people_only.py).

    `schedule` is what the company set for itself (its own support hours and holidays, `storage.tenant_hours`);
    None or unset values: its core's hours.

    `faq` is the company's current policies and FAQ (`rt.faqs`; None: its faq_data file).

    `phrases` are the company's own (intent, phrase) pairs for the router (`rt.phrases`, storage/intent_phrases.py).
    """
    loaded = DialogState(conversation_id=situation.conversation_id)
    try:
        loaded = dialogs.load(conn, conversation_hash)
        if loaded.conversation_id != situation.conversation_id:
            loaded = DialogState(conversation_id=situation.conversation_id)  # a new conversation starts afresh
        return _respond(settings, conn, message, tenant, core, customer, situation, conversation_hash,
                        DialogState.from_json(loaded.to_json()), model, schedule, faq, chatbot, phrases)
    except Exception as exc:  # the worker must answer whatever happens: apologise, keep the old session
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else "?"
        log.error("engine failed on a message: %s at %s", type(exc).__name__, where)
        loaded = DialogState(conversation_id=situation.conversation_id, exchanges=1)  # whatever broke is forgotten
        w = wording()
        apology: list[OutboundMessage] = [Text(w["engine_error"]), _menu()]
        if situation.status in WITH_A_HUMAN:
            apology = []
        return Outcome(apology, {"stage": "error", "intent": None, "error": type(exc).__name__}, loaded,
                       events=[("engine_error", {"error": type(exc).__name__, "at": where})])


def _respond(settings: Settings, conn: redis.Redis, message: InboundMessage, tenant: Tenant, core: CoreClient,
             customer: Customer, situation: Situation, conversation_hash: str, ds: DialogState,
             model: TenantModel | None = None, schedule: Schedule | None = None, faq: FaqData | None = None,
             chatbot: bool = True, phrases: CompanyPhrases = ()) -> Outcome:
    timezone = _zone(tenant.timezone, settings.tenant_timezone)
    now = message_time(message.timestamp, timezone)
    if not chatbot:
        ctx = _context(core, conn, tenant, timezone, now, schedule, faq)
        told = people_only.answer(ctx, message, status=situation.status, customer_name=customer.first_name,
                                  opted_out=customer.opted_out)
        told.routing.update(state_before=ds.state, state_after=ds.state)
        return Outcome(told.replies, told.routing, ds, told.escalation, told.opt_out, told.events)
    before = ds.state
    if message.kind is MessageKind.PHOTO_TEXT:  # a code read in a photo (worker/photo_followup.py): "¿es ese?"
        ctx = _context(core, conn, tenant, timezone, now, schedule, faq)
        asked, said = photo_reply.answer(ctx, ds, situation, message, int(now.timestamp()), settings.album_window_s)
        return Outcome(asked, {**said, "state_before": before, "state_after": ds.state}, ds)
    album = media_replies.album_turn(ds, message, int(now.timestamp()), settings.album_window_s)
    caption = album.caption if situation.status not in WITH_A_HUMAN else None  # with a person: theirs to read
    heard = message.kind is not MessageKind.TRANSCRIPT or bool(message.text)  # no text: the audio was not heard
    routable = (message.kind in ROUTED_KINDS and heard) or caption is not None
    clean = guard.clean(message.text) if routable else guard.CleanText("", empty=True)
    decision = _route(clean.text, machine.context_for(ds), message.reply_id, extra=phrases) if routable else None
    limits = guard.RateLimits(settings.rate_limit_per_minute, settings.rate_limit_per_hour,
                              settings.rate_limit_per_day)
    rate = guard.check_rate(conn, conversation_hash, message.message_id, now.timestamp(), limits)
    asks_model = model is not None and rate.allowed and situation.status not in WITH_A_HUMAN
    session = LlmSession(model.provider, settings, conn, circuit=model.circuit) if model and asks_model else None
    fallback: RouterFallback | None = None
    if session is not None and decision is not None and decision.confidence < LLM_THRESHOLD:
        fallback = RouterFallback(session, tenant.name)  # the rules are not sure: the model reads it too
        decision = _route(clean.text, machine.context_for(ds), message.reply_id, fallback, extra=phrases)
        if fallback.unsure and decision.stage != "llm":  # nobody is sure: the menu, not a guess
            decision = Route("out_of_scope", decision.entities, "fallback", decision.confidence)
    if caption is not None and decision is not None and decision.intent == "out_of_scope":
        decision = None  # a caption the bot cannot place ("Taj Mahal"): the photo's own reply, not "no entendí"
    routing = _routing(decision, message, clean, before)
    if not rate.allowed:
        routing.update(rate_limited=rate.window, state_after=before)
        opt_out = True if decision is not None and decision.intent == "opt_out" else None
        replies: list[OutboundMessage] = [Text(wording()["rate_limited"])] if rate.notify else []
        events = [("rate_limited", {"window": rate.window, "notified": rate.notify})]
        return Outcome(replies, routing, ds, opt_out=opt_out, events=events)
    if decision is None and message.kind is MessageKind.MEDIA:
        replies, said = media_replies.reply(message, ds, situation, album, listens=transcribes(settings))
        routing.update(said, media=message.media_type, state_after=ds.state)
        return Outcome(replies, routing, ds)
    if decision is None:
        replies = _non_text(message) if situation.status not in WITH_A_HUMAN else []
        routing.update(state_after=ds.state)
        return Outcome(replies, routing, ds)
    repeats = guard.count_repeats(conn, conversation_hash, message.message_id, clean.text) if clean.text else 0
    ctx = _context(core, conn, tenant, timezone, now, schedule, faq)
    turn = Turn(decision, clean, message.reply_id, ds, ctx, customer, situation, repeats)
    if session is not None and settings.llm_answers and decision.intent == "out_of_scope" \
            and decision.stage == "llm" and not clean.foreign:  # the model read a question no intent covers
        recent = history.recent(conn, conversation_hash, situation.conversation_id, settings.llm_history_turns)
        turn.free_answer = _answer_freely(session, recent)
    machine.step(turn)
    routing.update(state_after=ds.state, understood=turn.understood, silent=not turn.replies)
    if caption is not None:  # a photo's caption answered as text: once per album
        media_replies.caption_answered(ds)
        routing.update(kind=message.kind.value, media=message.media_type)
    if fallback is not None and fallback.unsure:
        routing["llm_unsure"] = True
    calls = session.calls if session is not None else []
    if session is not None and clean.text and turn.replies:
        history.append(conn, conversation_hash, situation.conversation_id, clean.text, tools.bodies(turn.replies))
    return Outcome(turn.replies, routing, ds, turn.escalation, turn.opt_out, turn.events, calls)


def _context(core: CoreClient, conn: redis.Redis, tenant: Tenant, timezone: ZoneInfo, now: datetime,
             schedule: Schedule | None, faq: FaqData | None) -> ServiceContext:
    return ServiceContext(core=core, redis=conn, tenant_slug=tenant.slug, company_name=tenant.name, timezone=timezone,
                          now=now, bot_name=tenant.bot_name, greeting=tenant.greeting,
                          support_hours=schedule.support_hours if schedule else None,
                          holidays=schedule.closed_days if schedule else frozenset(), faq=faq)


def _answer_freely(session: LlmSession, recent: list[tuple[str, str]]) -> Callable[[Turn], State | None]:
    """The dialog's hook for a question the rules cannot place: the model's checked answer, or a hand-over."""
    def free_answer(t: Turn) -> State | None:
        question = answer.Question(t.text, t.customer.phone, t.customer.first_name, tuple(recent),
                                   tuple(t.ds.packages[-3:]))
        try:
            result = answer.answer(session, t.ctx, question)
        except Exception as exc:  # the AI layer must never cost the customer the rules' reply
            log.error("llm answer failed: %s", type(exc).__name__)
            return None
        if result is None:
            return None  # no provider answer, or the guard refused it: the rules' reply
        for code in result.codes:
            t.ds.remember_package(code)
        if result.escalate == "not_understood":  # the model is stuck, the customer asked nothing: offer, never open
            return None if t.ds.declined_human else cases.offer_human(t, "not_understood",
                                                                      wording()["offer_human"]["body"])
        if result.escalate is not None:
            intent = "complaint" if result.escalate == "complaint" else "human_agent"
            return cases.escalate(t, result.escalate, escalation.priority_for(intent, cases.is_frustrated(t)))
        assert result.text is not None
        if not result.grounded:  # a decline or a clarifying question: nothing was answered
            if t.ds.not_understood >= 1:
                return None  # a second miss in a row: the rules' ladder (offer a person, then hand over)
            t.understood = False
            t.ds.not_understood += 1
            t.event("not_understood", count=t.ds.not_understood, llm=True)
        t.say_text(result.text)
        t.event("llm_answer", cached=result.cached, grounded=result.grounded)
        t.topic = "faq" if result.grounded else None
        return State.IDLE
    return free_answer


def _route(text: str, context: DialogContext, reply_id: str | None, llm: RouterFallback | None = None, *,
           extra: CompanyPhrases = ()) -> Route:
    try:
        return route(text, context, reply_id=reply_id, llm=llm, extra=extra)
    except Exception as exc:  # the router promises not to raise; if it does, the message is "not understood"
        log.error("router failed: %s", type(exc).__name__)
        return Route("out_of_scope", stage="fallback", confidence=0.0)


def _routing(decision: Route | None, message: InboundMessage, clean: guard.CleanText, before: str) -> dict[str, Any]:
    """The routing decision as stored with the message: stage, intent, confidence and the entities' values."""
    if decision is None:
        return {"stage": "none", "intent": None, "kind": message.kind.value, "state_before": before}
    record: dict[str, Any] = {
        "stage": decision.stage, "intent": decision.intent, "confidence": round(decision.confidence, 3),
        "entities": {k: decision.entities[k] for k in _ENTITY_KEYS if k in decision.entities},
        "state_before": before,
    }
    if decision.option_id:
        record["option_id"] = decision.option_id[:100]
    if decision.answer:
        record["answer"] = decision.answer
    flags = [name for name in ("empty", "emoji_only", "truncated", "had_markup", "foreign") if getattr(clean, name)]
    if flags:
        record["input"] = flags
    return record


def _non_text(message: InboundMessage) -> list[OutboundMessage]:
    """A location, or something WhatsApp could not pass on (reactions and system notices: nothing; media:
    chatbot/media_replies.py)."""
    w = wording()
    if message.kind in SILENT_KINDS:
        return []
    if message.kind is MessageKind.TRANSCRIPT:  # a voice note nobody could listen to: honest, a person offered
        return [Buttons(body=w["media"]["voice_failed"], buttons=(Choice("menu_human", w["media"]["human"]),))]
    if message.kind is MessageKind.LOCATION:
        return [Text(w["location_received"])]
    return [Text(w["unsupported"])]


def _menu() -> ChoiceList:
    w = wording()
    rows = tuple(Choice(o["id"], o["title"], o.get("description")) for o in w["menu_options"])
    return ChoiceList(body=w["menu_prompt"], button_label=w["menu_button"], rows=rows)


def _zone(name: str, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "America/El_Salvador"):
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")
