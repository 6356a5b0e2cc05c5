"""Handing a conversation to a person: the case number, the priority, and what the customer is told.

Design 2.3.2-2.3.5: inside the company's support hours an agent takes the
chat shortly; outside them the bot says so honestly, says when the team will
contact the customer (the next opening) and gives the emergency phone.
Complaints and frustrated customers go with high priority and an apology.
Pure decisions and wording: storing the escalation and alerting the team is
someone else's job, so nothing here has side effects.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from channels.outbound import OutboundMessage, Text
from services import ServiceContext, clock, relative_day, wording
from services.business import HoursSpec, next_opening, schedule_summary

HIGH, NORMAL = "high", "normal"
CASE_PREFIX = "ENC"
# No 0/O, 1/I/L: the customer may read the case number aloud or type it back.
CASE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CASE_RANDOM_LEN = 4
_HIGH_INTENTS = frozenset({"complaint"})


@dataclass(frozen=True)
class EscalationDecision:
    case_number: str  # e.g. "ENC-260106-4F7K": the date of the message, then a random part
    priority: str  # "high" | "normal"
    reason: str
    callback: bool  # True outside support hours: the team contacts the customer at the next opening
    replies: list[OutboundMessage]


def priority_for(intent: str, frustrated: bool) -> str:
    """High for complaints and frustrated customers; normal for human_agent, loops, changes, sales leads."""
    return HIGH if frustrated or intent in _HIGH_INTENTS else NORMAL


def new_case_number(ctx: ServiceContext) -> str:
    """ENC-<yymmdd of the message, company time>-<4 unambiguous random characters from `secrets`>."""
    random_part = "".join(secrets.choice(CASE_ALPHABET) for _ in range(CASE_RANDOM_LEN))
    return f"{CASE_PREFIX}-{ctx.local_now:%y%m%d}-{random_part}"


def _name_part(customer_name: str | None) -> str:
    first = (customer_name or "").strip().split(" ")[0]
    return f", {first}" if first and len(first) <= 20 else ""


def escalate(
    ctx: ServiceContext,
    *,
    reason: str,
    priority: str,
    customer_name: str | None,
    company_hours: HoursSpec,
    emergency_phone: str,
) -> EscalationDecision:
    """Decide how the hand-over goes (now, or a callback at the next opening) and word it for the customer."""
    if priority not in (HIGH, NORMAL):
        raise ValueError(f"priority must be {HIGH!r} or {NORMAL!r}, not {priority!r}")
    w = wording()["escalation"]
    case = new_case_number(ctx)
    name_part = _name_part(customer_name)
    opening = next_opening(ctx, company_hours, ctx.now)
    inside = opening is not None and opening == ctx.now
    lines = [w["apology"].format(name_part=name_part)] if priority == HIGH else []
    if inside:
        lines.append(w["inside_high" if priority == HIGH else "inside"].format(name_part=name_part))
        lines += ["", w["case"].format(case=case)]
    else:
        lines.append(w["outside"].format(schedule=schedule_summary(company_hours)))
        if opening is not None:
            local = opening.astimezone(ctx.timezone)
            lines.append(w["callback"].format(when=relative_day(ctx, local), time=clock(local.time())))
        else:
            lines.append(w["callback_later"])
        lines += ["", w["case"].format(case=case)]
        if emergency_phone.strip():
            lines.append(w["emergency"].format(phone=emergency_phone.strip()))
    return EscalationDecision(case, priority, reason, not inside, [Text("\n".join(lines))])
