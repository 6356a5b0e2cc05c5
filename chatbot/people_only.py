"""A company whose plan has no chatbot (Starter, design 7.3): its people answer every customer message.

The bot does not converse. A customer's message in a conversation nobody
has yet opens a case for the company's team, exactly as a hand-over does
(the console shows it in the queue and the live stream), and the customer
gets one short acknowledgement: someone from the team answers soon, or, with
support closed, when it opens again. Further messages go to the same case
without another word from the bot, so a customer hears the acknowledgement
once per conversation (a new one after the case is closed). Reactions and
system notices open nothing. A customer who asks to stop receiving messages
is opted out and told so, and one who opted out can write ALTA to receive
the company's notifications again. The engine calls `answer` with the message's `ServiceContext`
(`chatbot.engine.respond`, `chatbot=False`).

The company's hours are its own (set by its admin) or its core's (cached by
`services.catalog`); when neither can say, the acknowledgement promises no
time. Never raises for a core that cannot answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from channels.events import InboundMessage, MessageKind
from channels.outbound import OutboundMessage, Text
from chatbot.cues import cues_in
from chatbot.dialog.turn import wording
from chatbot.router import route
from chatbot.routing import DialogContext
from core_api_client import CoreError
from services import ServiceContext, business, catalog, clock, relative_day
from services.business import HoursSpec, next_opening, schedule_summary
from services.escalation import NORMAL, EscalationDecision, new_case_number

log = logging.getLogger(__name__)

REASON = "no_chatbot"
WITH_PEOPLE = ("escalated", "agent")
# A code read in a photo (chatbot/photo_reply.py) is the bot's question to ask: without the bot, silent (the
# photo itself was acknowledged, and the team sees the code with the photo).
SILENT_KINDS = frozenset({MessageKind.REACTION, MessageKind.SYSTEM, MessageKind.PHOTO_TEXT})
TEXT_KINDS = frozenset({MessageKind.TEXT, MessageKind.BUTTON_REPLY, MessageKind.LIST_REPLY,
                        MessageKind.TEMPLATE_BUTTON, MessageKind.TRANSCRIPT})  # a voice note's words count too


@dataclass(frozen=True)
class PeopleAnswer:
    """What the message leads to (the engine wraps it in its `Outcome`)."""

    replies: list[OutboundMessage]
    routing: dict[str, Any]
    escalation: EscalationDecision | None = None
    opt_out: bool | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def answer(ctx: ServiceContext, message: InboundMessage, *, status: str, customer_name: str | None,
           opted_out: bool) -> PeopleAnswer:
    """The acknowledgement and case for a message to a company without the chatbot (see the module docstring).

    `status` is the conversation's (bot: nobody has it yet)."""
    routing: dict[str, Any] = {"stage": "people_only", "intent": None, "kind": message.kind.value}
    if message.kind in SILENT_KINDS:
        return PeopleAnswer([], routing)
    text = (message.text or "") if message.kind in TEXT_KINDS else ""
    if text and _asks_to_stop(text):
        routing["intent"] = "opt_out"
        done = wording()["people_only"]["opt_out"].format(company=ctx.company_name)
        return PeopleAnswer([Text(done)], routing, opt_out=True, events=[("opt_out", {})])
    if text and opted_out and "opt_in" in cues_in(text):
        routing["intent"] = "opt_in"
        done = wording()["opt_in_done"].format(company=ctx.company_name)
        return PeopleAnswer([Text(done)], routing, opt_out=False, events=[("opt_in", {})])
    if status in WITH_PEOPLE:
        return PeopleAnswer([], routing)  # the case is open: the team reads it in the console
    case = new_case_number(ctx)
    spec = support_hours(ctx)
    opening = next_opening(ctx, spec, ctx.now) if spec else None
    closed = bool(spec) and opening != ctx.now
    w = wording()["people_only"]
    name_part = _name_part(customer_name)
    if not spec or not closed:
        text = w["soon"].format(name_part=name_part)
    elif opening is not None:
        local = opening.astimezone(ctx.timezone)
        text = w["closed"].format(name_part=name_part, schedule=schedule_summary(spec),
                                  when=relative_day(ctx, local), time=clock(local.time()))
    else:
        text = w["closed_later"].format(name_part=name_part, schedule=schedule_summary(spec))
    decision = EscalationDecision(case, NORMAL, REASON, closed, [Text(text)])
    event = {"case_number": case, "priority": NORMAL, "reason": REASON, "callback": closed}
    return PeopleAnswer(list(decision.replies), routing, escalation=decision, events=[("escalation", event)])


def support_hours(ctx: ServiceContext) -> HoursSpec | None:
    """The team's hours: the company's own when its admin set them, else its core's (None: unknown, so the
    acknowledgement promises no time)."""
    if ctx.support_hours is not None:
        return business.support_hours(ctx, None)
    try:
        company = catalog.company(ctx)
    except CoreError as exc:
        log.warning("company data unavailable: %s", type(exc).__name__)
        return None
    return business.support_hours(ctx, company.support_hours)


def _asks_to_stop(text: str) -> bool:
    """Whether the message asks to stop the company's messages (the router's reading; it never raises)."""
    try:
        return route(text, DialogContext()).intent == "opt_out"
    except Exception as exc:  # the router promises not to raise; if it does, the message goes to the team
        log.error("router failed: %s", type(exc).__name__)
        return False


def _name_part(customer_name: str | None) -> str:
    first = (customer_name or "").strip().split(" ")[0]
    return f", {first}" if first and len(first) <= 20 else ""
