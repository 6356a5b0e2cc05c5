"""A case for a person: complaints, not understanding, the offer of a person, hand-over, waiting with a person.

Escalation wording and case numbers come from `services.escalation`
(inside hours: an agent takes the chat; outside: a callback at the next
opening and the emergency phone); the escalation row itself is stored by the
worker with the replies. After the hand-over the bot answers at most one
holding message per `HOLD_REPEAT_S` and otherwise stays silent; once support
has closed, the next message instead gets the honest after-hours line (when
the team writes back), once per closing.

No case the customer did not ask for or agree to: not understanding only
OFFERS a person (Sí / No), again each time from the 2nd message in a row;
after a "no" it shows the menu with a short line and never offers again in
the session (the customer can still write "asesor"). Cases open unasked
only for a complaint, which is the customer asking.
"""

from __future__ import annotations

from datetime import datetime

from chatbot.dialog import courtesy, tracking
from chatbot.dialog.turn import State, Turn, wording
from services import business, clock, escalation, relative_day

HOLD_REPEAT_S = 2 * 3600
NOT_UNDERSTOOD_OFFER = 2


def is_frustrated(t: Turn) -> bool:
    """Anger or fatigue in the words, shouting, or a second complaint in the session."""
    letters = [ch for ch in t.text if ch.isalpha()]
    shouting = len(letters) >= 12 and sum(ch.isupper() for ch in letters) / len(letters) > 0.8
    return t.cue("frustrated") or shouting or "!!!" in t.text or t.ds.complaints >= 2


def not_understood(t: Turn) -> State:
    """Say so and show the menu; from the 2nd time in a row offer a person (never open a case unasked);
    after the customer said no to that, the menu and a short line."""
    t.understood = False
    t.ds.not_understood += 1
    t.event("not_understood", count=t.ds.not_understood)
    if t.ds.not_understood >= NOT_UNDERSTOOD_OFFER:
        if not t.ds.declined_human:
            return offer_human(t, "not_understood", wording()["offer_human"]["body"])
        t.menu(t.line("offer_human.after_no"))
        return State.IDLE
    if t.customer.is_new and t.ds.exchanges == 0:  # a first message we cannot read: introduce ourselves
        courtesy.greet(t, t.line("only_spanish") if t.clean.foreign else None)
        t.topic = None
        return State.IDLE
    if t.clean.truncated:
        t.say("not_understood_long")
        return State.IDLE
    t.say("not_understood_foreign" if t.clean.foreign else "not_understood")
    t.menu()
    return State.IDLE


def offer_human(t: Turn, reason: str, body: str) -> State:
    w = wording()["offer_human"]
    t.buttons(body, ("human_yes", w["yes"]), ("human_no", w["no"]))
    t.ds.purpose = reason
    return State.AWAITING_HUMAN_CONFIRM


def human_declined(t: Turn) -> State:
    t.say("offer_human.declined")
    t.ds.not_understood, t.ds.purpose, t.ds.declined_human = 0, None, True
    return State.IDLE


def complaint(t: Turn) -> State:
    """Design 2.3.2: a "lost" package is first looked up (it may just be waiting); anything else, or an
    angry customer, goes straight to a supervisor with high priority."""
    t.ds.complaints += 1
    t.topic = "complaint"
    if t.cue("lost") and not is_frustrated(t) and t.ds.complaints == 1:
        t.ds.purpose = "complaint"
        if t.code:
            return tracking.track(t, t.code)
        t.say("complaint_ask_code")
        return State.AWAITING_CODE
    state = escalate(t, "complaint", escalation.HIGH)
    if t.code:
        tracking.track(t, t.code)
    elif not t.ds.packages and t.ds.handoff is not None:
        t.say("escalation_ask_code")
        t.ds.handoff["expecting"] = "tracking_code"
    return state


def escalate(t: Turn, reason: str, priority: str) -> State:
    """Hand the conversation to a person: case number, what happens next, honest about the hours."""
    company, hours = t.company(), t.support_hours()
    if company is not None or hours:
        decision = escalation.escalate(
            t.ctx, reason=reason, priority=priority, customer_name=t.customer_name(),
            company_hours=hours or {}, emergency_phone=company.emergency_phone if company else "",
        )
    else:  # the core cannot say the hours: no promise about when, only the case number
        case = escalation.new_case_number(t.ctx)
        body = t.line("handoff_holding", case=case)
        decision = escalation.EscalationDecision(case, priority, reason, False, [])
        t.say_text(body)
    t.replies += decision.replies
    t.escalation = decision
    t.ds.handoff = {"case": decision.case_number, "priority": decision.priority, "reason": reason,
                    "since": t.ts, "replied_at": None, "expecting": None}
    if decision.callback and (closed := closed_until(t)) is not None:  # the escalation said when already
        t.ds.handoff["closed_until"] = closed.isoformat()
    t.ds.pending, t.ds.purpose, t.ds.not_understood = None, None, 0
    t.event("escalation", case_number=decision.case_number, priority=decision.priority, reason=reason,
            callback=decision.callback)
    if reason == "sales_lead":
        t.say("escalation_lead")
    t.topic = "human_agent"
    return State.IN_HANDOFF


def handoff(t: Turn) -> State:
    """With a person: silent while an agent has the chat. While waiting, a tracking code the bot asked for is
    looked up; otherwise the next message gets one holding message (case number, what happens next), and
    the bot is then silent for a couple of hours."""
    t.topic = t.ds.last_intent
    if t.situation.status == "agent":
        t.silent = True
        return State.IN_HANDOFF
    hold = t.ds.handoff or {}
    case = str(hold.get("case") or t.situation.open_case or "")
    if not hold:
        t.ds.handoff = hold = {"case": case, "since": t.ts, "replied_at": None, "expecting": None}
    if hold.get("expecting") == "tracking_code" and t.code:
        tracking.track(t, t.code)
        t.ds.purpose = None
        t.say("handoff_code_added", case=case)
        hold["expecting"], hold["replied_at"] = None, t.ts
        return State.IN_HANDOFF
    closed = closed_until(t)
    if closed is not None and hold.get("closed_until") != closed.isoformat():  # support closed meanwhile
        opens = closed.astimezone(t.ctx.timezone)
        t.say("handoff_after_hours", case=case, when=relative_day(t.ctx, opens), time=clock(opens.time()))
        hold["closed_until"], hold["replied_at"] = closed.isoformat(), t.ts
        return State.IN_HANDOFF
    replied_at = hold.get("replied_at")
    if replied_at is None or t.ts - float(replied_at) >= HOLD_REPEAT_S or t.ts < float(replied_at):
        t.say("handoff_holding", case=case)
        hold["replied_at"] = t.ts
    else:
        t.silent = True
    return State.IN_HANDOFF


def closed_until(t: Turn) -> datetime | None:
    """The next opening of support when it is closed at the message's time; None while open or unknown."""
    hours = t.support_hours()
    if not hours:
        return None
    opening = business.next_opening(t.ctx, hours, t.ctx.now)
    return None if opening is None or opening == t.ctx.now else opening
