"""The dialog manager: an explicit state machine over the router's results (diagram: chatbot/dialog/machine.mmd).

`TABLE` maps each named state to a small handler that reads the turn (the
router's intent, entities, the option picked, a yes/no) and returns the next
state. A message that is not the answer a state waits for is a topic switch:
the new question is answered and, once it is settled, the bot offers to go
back to what was pending. Some things win in any state: opting out or in,
complaints, asking for a person, and the offer of a person after the same
message five times. `step` runs one turn and then `_finish` does what every
turn needs: the resume offer, "¿algo más?", the summary of a long session, the
options the next message may pick from, and the counters. What a message means
on its own (options, intents, topic switches) is in `chatbot.dialog.dispatch`;
the answers themselves in the topic modules of `chatbot.dialog`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from channels.outbound import Buttons, Choice, ChoiceList, OutboundMessage, Text
from chatbot.dialog import cases, courtesy, package_in_view, points, policies, quote, several_questions, tracking
from chatbot.dialog.dispatch import (
    INFORMATION,
    OVERRIDING,
    TASKS,
    complaint_settled,
    dispatch,
    elsewhere,
    human_confirmed,
    named_point,
    not_the_answer,
    offer_resume,
    picked,
    pin_declined,
    point_chosen,
    resume,
    resume_declined,
    switch,
)
from chatbot.dialog.turn import State, Turn, state_of, wording
from chatbot.guard import phone_in, safe_name
from chatbot.routing import DialogContext
from core_api_client import CoreError
from services import core_unavailable_replies, escalation
from services.faq import FaqDataError
from storage.dialogs import DialogState

log = logging.getLogger(__name__)

__all__ = ["TABLE", "TASKS", "State", "context_for", "step"]

Handler = Callable[[Turn], State]

EXPECTING: dict[State, str] = {
    State.AWAITING_CODE: "tracking_code",
    State.AWAITING_CODE_CONFIRM: "yes_no",
    State.AWAITING_PACKAGE_CHOICE: "option",
    State.AWAITING_NOT_FOUND_CHOICE: "option",
    State.AWAITING_POINT: "point",
    State.AWAITING_NAME: "name",
    State.AWAITING_WEIGHT: "weight",
    State.AWAITING_PIN: "yes_no",
    State.AWAITING_COMPLAINT_CHECK: "yes_no",
    State.AWAITING_HUMAN_CONFIRM: "yes_no",
    State.AWAITING_RESUME: "yes_no",
    State.AWAITING_CSAT: "option",
}
# States after an answer, where a pending request may be offered again.
RESTING = frozenset({State.IDLE, State.AWAITING_PIN})
# What a plain answer was about, when it ends with "¿Necesitas algo más?".
ANSWERED_TOPICS = frozenset({"track_package", "pricing", "delivery_time", "requirements", "unclaimed_policy",
                             "refund", "payment", "faq"})
REPEATS_BEFORE_OFFER = 5
WAITING_ANSWER_CONFIDENCE = 0.6  # below it, a message to the waiting case is for the person, not a question
SUMMARY_AFTER = 12  # exchanges (design 4.3.4: after 10-15)


def context_for(ds: DialogState) -> DialogContext:
    """What the router may know: what the bot asked for and the options it offered."""
    state = state_of(ds)
    expecting = EXPECTING.get(state)
    if state is State.IN_HANDOFF:
        expecting = (ds.handoff or {}).get("expecting")
    elif state is State.AWAITING_NOT_FOUND_CHOICE and ds.not_found_code is None:
        expecting = "name"  # after a search by name (or none): another name may be typed instead of a tap
    elif state is State.IDLE and ds.purpose == policies.MORE_DETAILS:
        expecting = "yes_no"  # its options are Sí / No: "dale", "no gracias" answer them as well
    elif state is State.IDLE and ds.options:
        expecting = "option"
    elif state is State.IDLE and ds.purpose == "anything_else":
        expecting = "yes_no"
    return DialogContext(expecting, tuple(ds.options), tuple(ds.option_titles), ds.last_intent)


# -- the table --------------------------------------------------------------------------------------


def on_idle(t: Turn) -> State:
    if (t.ds.purpose or "").startswith(courtesy.RATED):  # right after the bot's rating: maybe a comment on it
        if (commented := courtesy.csat_comment(t)) is not None:
            return commented
    if t.ds.purpose == policies.MORE_DETAILS and (state := policies.more_or_not(t)) is not None:
        return state  # the bot asked "¿Quieres más detalles?"
    if t.ds.purpose == "anything_else":  # the bot asked "¿Te ayudo con algo más?"
        t.ds.purpose = None
        if t.route.answer == "no" and _only_an_answer(t):
            return courtesy.goodbye(t)
        if t.route.answer == "yes" and t.intent in ("thanks", "goodbye"):  # "ok grax": thanks, not "yes, more"
            return courtesy.thanks(t) if t.intent == "thanks" else courtesy.goodbye(t)
        if t.route.answer == "yes" and _only_an_answer(t):
            return courtesy.menu_help(t, "anything_else_yes")
    return dispatch(t)


def on_awaiting_code(t: Turn) -> State:
    complaint = t.ds.purpose == "complaint"
    if t.code:
        return tracking.track(t, t.code)
    if (state := picked(t)) is not None or t.intent in OVERRIDING:
        return state if state is not None else dispatch(t)
    if t.intent == "find_packages" or t.route.answer == "no":
        return cases.escalate(t, "complaint", escalation.HIGH) if complaint else tracking.search(t)
    if t.intent in INFORMATION - {"track_package"}:
        return switch(t)
    if t.intent in ("thanks", "goodbye", "greeting", "menu", "track_package"):
        return dispatch(t)
    if complaint:
        return cases.escalate(t, "complaint", escalation.HIGH)
    if (state := tracking.code_attempt(t)) is not None:
        return state  # "ABC123": understood as a wrong code, answered with the format, not "no entendí"
    return not_the_answer(t, "invalid_code")


def on_awaiting_code_confirm(t: Turn) -> State:
    """"¿Tu código es SV…?": Sí (or the code's button) tracks it, No asks for it again, a new code tracks."""
    if t.code:
        return tracking.track(t, t.code)
    if (state := picked(t)) is not None:
        return state
    if t.intent not in OVERRIDING and (state := tracking.code_confirmed(t)) is not None:
        return state
    return elsewhere(t)


def on_awaiting_package_choice(t: Turn) -> State:
    if t.code:
        return tracking.track(t, t.code)
    if (state := picked(t)) is not None:
        return state
    if t.cue("amount_due") and (state := package_in_view.amount_due(t)) is not None:
        return state  # "¿cuánto tengo que pagar?" about the list just shown
    if t.intent not in OVERRIDING and (state := tracking.pick_described(t)) is not None:
        return state  # "el de Pedro Ramírez", "el que va para Santa Ana", "el que ya llegó"
    return elsewhere(t)


def on_awaiting_not_found_choice(t: Turn) -> State:
    if t.code:
        return tracking.track(t, t.code)
    name_search = t.ds.not_found_code is None
    if name_search and phone_in(t.text):
        return tracking.typed_phone(t)
    if name_search and t.route.entities.get("name"):
        return tracking.name_given(t) or elsewhere(t)  # "try another name": the new name typed at once
    return elsewhere(t)


def on_awaiting_point(t: Turn) -> State:
    purpose = t.ds.purpose or "locations"
    if (state := picked(t)) is not None:
        return state
    if t.intent in OVERRIDING:
        return dispatch(t)
    if purpose == "search" and t.code:
        return tracking.track(t, t.code)
    point = t.point or named_point(t)
    if point:
        return point_chosen(t, point)
    if purpose == "search" and t.cue("any_point"):
        return tracking.name_search(t, None)
    if purpose == "pricing" and t.intent in ("out_of_scope", "pricing", "locations", "delivery_time"):
        place = safe_name(t.text)
        if place and len(place.split()) <= 4:
            return quote.pricing(t, place)
    return elsewhere(t)


def on_awaiting_name(t: Turn) -> State:
    if t.code:
        return tracking.track(t, t.code)
    if (state := picked(t)) is not None or t.intent in OVERRIDING:
        return state if state is not None else dispatch(t)
    if phone_in(t.text):  # never a key to anyone's packages: the honest answer instead
        return tracking.typed_phone(t)
    if t.intent in INFORMATION - {"find_packages", "track_package"} and not t.route.entities.get("name"):
        return switch(t)
    if t.intent not in ("thanks", "goodbye") and (state := tracking.name_given(t)) is not None:
        return state
    return not_the_answer(t, "ask_search")


def on_awaiting_weight(t: Turn) -> State:
    if t.code:
        return switch(t)
    if (state := picked(t)) is not None or t.intent in OVERRIDING:
        return state if state is not None else dispatch(t)
    if t.weight is not None or (t.intent in ("out_of_scope", "pricing") and t.bare_number() is not None):
        return quote.pricing(t)
    if t.point and t.intent in ("out_of_scope", "pricing", "locations"):
        return quote.pricing(t, t.point)
    return elsewhere(t)


def on_awaiting_pin(t: Turn) -> State:
    if (state := picked(t)) is not None:
        return state
    if t.route.answer == "yes" and t.intent in ("thanks", "goodbye") and not t.cue("map"):
        return courtesy.thanks(t) if t.intent == "thanks" else courtesy.goodbye(t)  # "ok muchas gracias"
    if t.route.answer == "yes" and t.ds.pin_point:
        return points.pin(t, t.ds.pin_point)
    if t.route.answer == "no" and t.intent not in OVERRIDING and _only_an_answer(t):
        return courtesy.goodbye(t) if t.intent == "goodbye" else pin_declined(t)
    if t.intent == "locations" and t.ds.pin_point and not t.point and t.cue("map"):
        return points.pin(t, t.ds.pin_point)
    return dispatch(t)


def _only_an_answer(t: Turn) -> bool:
    """A bare yes/no ("no", "sí por favor", "no gracias, es todo"): the words ask nothing new."""
    return not t.route.entities and (len(t.folded.split()) <= 3 or t.intent in ("menu", "thanks", "goodbye"))


def on_awaiting_complaint_check(t: Turn) -> State:
    if (state := picked(t)) is not None:
        return state
    if t.route.answer == "yes" or t.intent == "thanks":
        return complaint_settled(t)
    if t.intent == "goodbye" and t.route.answer != "no":
        return courtesy.goodbye(t)
    if t.intent in INFORMATION - {"track_package", "find_packages"} and t.route.answer is None:
        return dispatch(t)
    return cases.escalate(t, "complaint", escalation.HIGH)  # "no", "he says it is not there", anger...


def on_awaiting_human_confirm(t: Turn) -> State:
    if (state := picked(t)) is not None:
        return state
    if t.route.answer == "yes":
        return human_confirmed(t)
    if t.route.answer == "no" and t.intent not in OVERRIDING:
        if t.ds.purpose in (policies.HANDOFF_REASON, policies.NO_INFORMATION):  # "no" is "no, gracias"
            return policies.no_more(t)
        return cases.human_declined(t)
    t.ds.purpose = None
    return dispatch(t)


def on_awaiting_resume(t: Turn) -> State:
    if (state := picked(t)) is not None:
        return state
    if t.route.answer == "yes" and t.intent not in OVERRIDING:
        return resume(t)
    if t.route.answer == "no" and t.intent not in OVERRIDING | {"goodbye"}:
        return resume_declined(t)
    t.ds.pending = None  # ignored: not offered again
    return dispatch(t)


def on_awaiting_csat(t: Turn) -> State:
    if (state := picked(t)) is not None:
        return state
    if t.text.strip() in ("1", "2", "3", "4", "5"):
        return courtesy.csat(t, int(t.text.strip()))
    return dispatch(t)


# Questions the bot still answers while the customer waits for a person (design 4.1.6): they need no one.
WHILE_WAITING = frozenset({"hours", "locations", "pricing", "delivery_time", "requirements", "unclaimed_policy",
                           "refund", "payment"})


def on_handoff(t: Turn) -> State:
    """Opting out or in is recorded even now (and confirmed unless an agent has the chat). While nobody has
    taken the case yet, a plain question (hours, prices, points, policies) is answered, with the case's status."""
    if t.intent == "opt_out" or courtesy.is_opt_in(t):
        courtesy.opt_out(t) if t.intent == "opt_out" else courtesy.opt_in(t)
        if t.situation.status == "agent":
            t.replies, t.silent = [], True
        return State.IN_HANDOFF
    waiting = t.situation.status == "escalated" and (t.ds.handoff or {}).get("expecting") is None
    if waiting and t.intent in WHILE_WAITING and t.route.confidence >= WAITING_ANSWER_CONFIDENCE:
        handoff, t.ds.state = t.ds.handoff, State.IDLE.value
        dispatch(t)
        t.ds.handoff, t.ds.purpose = handoff, None
        case = str((handoff or {}).get("case") or t.situation.open_case or "")
        t.say("handoff_still_waiting", case=case)
        return State.IN_HANDOFF
    return cases.handoff(t)


TABLE: dict[State, Handler] = {
    State.IDLE: on_idle,
    State.AWAITING_CODE: on_awaiting_code,
    State.AWAITING_CODE_CONFIRM: on_awaiting_code_confirm,
    State.AWAITING_PACKAGE_CHOICE: on_awaiting_package_choice,
    State.AWAITING_NOT_FOUND_CHOICE: on_awaiting_not_found_choice,
    State.AWAITING_POINT: on_awaiting_point,
    State.AWAITING_NAME: on_awaiting_name,
    State.AWAITING_WEIGHT: on_awaiting_weight,
    State.AWAITING_PIN: on_awaiting_pin,
    State.AWAITING_COMPLAINT_CHECK: on_awaiting_complaint_check,
    State.AWAITING_HUMAN_CONFIRM: on_awaiting_human_confirm,
    State.AWAITING_RESUME: on_awaiting_resume,
    State.AWAITING_CSAT: on_awaiting_csat,
    State.IN_HANDOFF: on_handoff,
}


# -- one turn ------------------------------------------------------------------------------------------------


def step(t: Turn) -> State:
    """Answer one message: run the state's handler (or what wins in any state), then finish the turn."""
    state = state_of(t.ds)
    if t.situation.status in ("escalated", "agent"):
        state = State.IN_HANDOFF
    elif state is State.IN_HANDOFF:  # a person gave the conversation back to the bot
        t.ds.handoff, state = None, State.IDLE
    t.ds.state = state.value
    try:
        nxt = TABLE[state](t) if state is State.IN_HANDOFF else (
            tracking.continued_code(t) or _in_any_state(t) or several_questions.answer_each(t) or TABLE[state](t))
    except CoreError as exc:
        log.warning("the core could not answer (%s); state %s kept", type(exc).__name__, state.value)
        t.replies, t.escalation, nxt = list(core_unavailable_replies()), None, state
    except FaqDataError as exc:
        log.error("faq data unusable: %s", exc)
        t.replies, nxt = [], State.IDLE
        t.menu(t.line("engine_error"))
    _finish(t, nxt)
    return State(t.ds.state)


def _in_any_state(t: Turn) -> State | None:
    if courtesy.is_opt_in(t):
        return courtesy.opt_in(t)
    if t.intent == "opt_out":
        return courtesy.opt_out(t)
    if t.repeats >= REPEATS_BEFORE_OFFER and t.repeats % REPEATS_BEFORE_OFFER == 0:
        t.event("repeated", count=t.repeats)
        return cases.offer_human(t, "repeated_message", wording()["repeated_offer"]["body"])
    return None


def _finish(t: Turn, nxt: State) -> None:
    ds = t.ds
    if t.understood:
        ds.not_understood = 0
    if t.silent and not t.replies:
        ds.state = nxt.value
        return
    choices = _last_choices(t.replies)
    pins = [c.id.partition(":")[2] for c in choices if c.id.startswith("pin:")]
    ds.pin_point = pins[0] if pins else None
    if nxt is State.IDLE and pins:
        nxt = State.AWAITING_PIN
    if nxt in RESTING and ds.pending and t.escalation is None:
        nxt = offer_resume(t)
        choices = _last_choices(t.replies)
    ds.exchanges += 1
    summary_due = ds.exchanges >= SUMMARY_AFTER and not ds.summary_sent and len(ds.solved) >= 2
    if nxt is State.IDLE and t.topic in ANSWERED_TOPICS and t.escalation is None and not summary_due:
        _ask_anything_else(t)
    if (ds.exchanges >= SUMMARY_AFTER and not ds.summary_sent and len(ds.solved) >= 2 and nxt in RESTING
            and t.escalation is None):
        w = wording()["summary"]
        t.say_text("\n".join([w["title"], *(w["line"].format(item=s) for s in ds.solved), "", w["ask"]]))
        ds.summary_sent = True
    if nxt is State.IDLE and _asks_anything_else(t.replies):
        ds.purpose = "anything_else"
    ds.options = [c.id for c in choices]
    ds.option_titles = [c.title for c in choices]
    ds.last_intent = t.topic or (t.intent if t.understood else ds.last_intent)
    ds.state = nxt.value


def _ask_anything_else(t: Turn) -> None:
    """End a plain answer with "¿Necesitas algo más?" (design 4.1.3), inside its last text message."""
    last = t.replies[-1] if t.replies else None
    if not isinstance(last, Text) or last.body.rstrip().endswith("?"):
        return
    emojis = sum(1 for ch in last.body if ord(ch) >= 0x1F300 or ch in "✅⏰⚠⏱⚖")
    question = t.line("anything_else_short" if emojis >= 3 else "anything_else")
    t.replies[-1] = Text(f"{last.body}\n\n{question}")


def _asks_anything_else(replies: list[OutboundMessage]) -> bool:
    last = replies[-1] if replies else None
    endings = (wording()["anything_else"], wording()["anything_else_short"])
    return isinstance(last, Text) and last.body.rstrip().endswith(endings)


def _last_choices(replies: list[OutboundMessage]) -> tuple[Choice, ...]:
    for reply in reversed(replies):
        if isinstance(reply, Buttons):
            return reply.buttons
        if isinstance(reply, ChoiceList):
            return reply.rows
        if isinstance(reply, Text):
            continue
        break
    return ()
