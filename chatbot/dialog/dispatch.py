"""How the dialog reads a message on its own: options picked, intents, and topic switches.

`dispatch` answers a message from its picked option (a tapped id, a typed
number or title) or else its intent, using what the session remembers; it is
what the IDLE state does and what every other state falls back to. `switch`
leaves an open question for another topic and keeps it pending; `ask_again`
and `resume` come back to it. The state table itself is in `chatbot.dialog.machine`.
"""

from __future__ import annotations

from collections.abc import Callable

from channels.outbound import Choice, ChoiceList
from chatbot.dialog import (
    cases,
    courtesy,
    delivery_times,
    frames,
    package_in_view,
    points,
    policies,
    quote,
    tracking,
)
from chatbot.dialog.turn import State, Turn, state_of, wording
from services import business, catalog, escalation
from services import tracking as tracking_service

Handler = Callable[[Turn], State]

# States where a question is open and its answer is awaited: leaving one for another topic keeps it pending.
TASKS = frozenset({State.AWAITING_CODE, State.AWAITING_PACKAGE_CHOICE, State.AWAITING_NOT_FOUND_CHOICE,
                   State.AWAITING_POINT, State.AWAITING_NAME, State.AWAITING_WEIGHT})
# Intents that win over any open question.
OVERRIDING = frozenset({"complaint", "human_agent", "change_delivery", "sales_lead", "opt_out"})
# Policies after which "tengo uno así" is about the customer's own package.
POLICIES = frozenset({"unclaimed_policy", "refund", "requirements", "payment"})
# What "¿cuánto tengo que pagar?" may be read as before it turns out to be about a package in view.
AMOUNT_DUE_INTENTS = frozenset({"pricing", "payment", "track_package", "find_packages", "out_of_scope"})
INFORMATION = frozenset({"track_package", "find_packages", "hours", "locations", "pricing", "delivery_time",
                         "requirements", "unclaimed_policy", "refund", "payment"})


# -- intents and picked options -----------------------------------------------------------------------


def dispatch(t: Turn) -> State:
    """A message read on its own: an option it picks, else its intent (with what the session remembers)."""
    if (state := picked(t)) is not None:
        return state
    if (state := about_packages_in_view(t)) is not None:
        return state
    intent = t.intent
    if (t.ds.packages and not t.code and intent in ("track_package", "find_packages", "out_of_scope", "hours",
                                                     "delivery_time") and t.cue("other_package")):
        return tracking.ask_code(t, other=True)  # "¿y el otro que envié ayer?"
    if (state := frames.carry_over(t)) is not None:  # "¿y para 20 libras?", "¿y a Chalatenango?"
        return state
    if t.ds.last_intent in POLICIES and t.cue("my_package") and not t.code:
        return tracking.track_request(t)  # after a policy: "sí, uno que mandé hace 10 días" is about their package
    return INTENT_ACTIONS.get(intent, unknown)(t)


def about_packages_in_view(t: Turn) -> State | None:
    """A question about the customer's own packages that needs no code (roles from the phone, design 2.1.2):
    the amount a recipient pays, or a package of the list picked by its description."""
    if t.code or t.intent in OVERRIDING:
        return None
    paid = t.route.entities.get("policy") == "paid_sender"  # "ya le pagué al remitente": the policy answers
    if t.cue("amount_due") and t.weight is None and not t.point and t.intent in AMOUNT_DUE_INTENTS and not paid:
        if (state := package_in_view.amount_due(t)) is not None:
            return state
    if t.ds.listed and t.cue("by_description"):
        return tracking.pick_described(t)
    return None


def unknown(t: Turn) -> State:
    return (tracking.code_attempt(t) or courtesy.odd_input(t) or courtesy.listening(t) or policies.faq_answer(t)
            or answered_freely(t) or cases.not_understood(t))


def change_delivery(t: Turn) -> State:
    """Someone else collecting is a question with an answer (a person offered, not imposed); a change goes to one."""
    if t.route.entities.get("policy") == "pickup_by_other":
        return policies.pickup_by_other(t)
    return cases.escalate(t, "change_delivery", escalation.priority_for("change_delivery", cases.is_frustrated(t)))


def answered_freely(t: Turn) -> State | None:
    """The model's grounded answer (chatbot.llm), when the engine offers one for this message."""
    return t.free_answer(t) if t.free_answer is not None else None


def menu_or_welcome(t: Turn) -> State:
    if t.customer.is_new and t.ds.exchanges == 0:
        return courtesy.greet(t)
    return courtesy.menu_help(t)


def human_request(t: Turn) -> State:
    return cases.escalate(t, "customer_request", escalation.priority_for("human_agent", cases.is_frustrated(t)))


def _escalation_for(intent: str) -> Handler:
    def handler(t: Turn) -> State:
        return cases.escalate(t, intent, escalation.priority_for(intent, cases.is_frustrated(t)))
    return handler


def _policy(topic: str) -> Handler:
    def handler(t: Turn) -> State:
        return policies.policy(t, topic)
    return handler


INTENT_ACTIONS: dict[str, Handler] = {
    "greeting": courtesy.greet,
    "track_package": tracking.track_request,
    "find_packages": tracking.search,
    "hours": points.hours,
    "locations": points.locations,
    "pricing": lambda t: quote.pricing(t),
    "delivery_time": delivery_times.delivery,
    "requirements": _policy("requirements"),
    "unclaimed_policy": _policy("unclaimed_policy"),
    "refund": _policy("refund"),
    "payment": _policy("payment"),
    "human_agent": human_request,
    "complaint": cases.complaint,
    "sales_lead": _escalation_for("sales_lead"),
    "change_delivery": change_delivery,
    "thanks": courtesy.thanks,
    "goodbye": courtesy.goodbye,
    "opt_out": courtesy.opt_out,
    "menu": menu_or_welcome,
    "out_of_scope": unknown,
}


def picked(t: Turn) -> State | None:
    """The option a message picks (a tapped id, or a number/title the router matched), when we know it."""
    choice = t.choice or _numbered(t)
    if not choice:
        return None
    head, _, value = choice.partition(":")
    if value and head in CHOICE_PREFIXES:
        return CHOICE_PREFIXES[head](t, value)
    action = CHOICES.get(choice)
    return action(t) if action else None


def _numbered(t: Turn) -> str | None:
    """"Dame detalles del 1": one small number in a short message picks that offered option."""
    lists = (State.AWAITING_PACKAGE_CHOICE, State.AWAITING_NOT_FOUND_CHOICE)
    if not t.ds.options or state_of(t.ds) not in lists or t.code or t.weight or len(t.folded.split()) > 6:
        return None
    numbers = [w for w in t.folded.split() if w.isdigit()]
    if len(numbers) == 1 and 1 <= int(numbers[0]) <= len(t.ds.options):
        return t.ds.options[int(numbers[0]) - 1]
    return None


def point_chosen(t: Turn, point_id: str) -> State:
    purpose = t.ds.purpose if state_of(t.ds) is State.AWAITING_POINT else None
    if purpose == "hours":
        return points.hours_for(t, point_id, t.ds.day or t.day)
    if purpose == "search":
        return tracking.name_search(t, None if point_id == "any" else point_id)
    if purpose == "pricing":
        return quote.pricing(t, point_id)
    if point_id == "any":
        return points.locations(t)
    return points.location_for(t, point_id)


def named_point(t: Turn) -> str | None:
    """A point the router did not resolve but the company's list names ("Soyapango", "Punto Centro")."""
    point = catalog.find_point(t.ctx, t.text) if len(t.text) <= 60 else None
    return point.id if point else None


def not_found_human(t: Turn) -> State:
    complaint = t.ds.purpose == "complaint"
    priority = escalation.HIGH if complaint else escalation.priority_for("human_agent", cases.is_frustrated(t))
    return cases.escalate(t, "package_not_found", priority)


def ask_name(t: Turn) -> State:
    t.ds.search = {}
    t.say("ask_search")
    t.topic = "find_packages"
    return State.AWAITING_NAME


def human_confirmed(t: Turn) -> State:
    reason = t.ds.purpose or "customer_request"
    return cases.escalate(t, reason, escalation.priority_for("human_agent", cases.is_frustrated(t)))


def complaint_settled(t: Turn) -> State:
    t.say("complaint_check.relief")
    t.ds.purpose = None
    return State.IDLE


def pin_declined(t: Turn) -> State:
    t.say("anything_else")
    return State.IDLE


def points_menu(t: Turn) -> State:
    t.replies += business.location_answer(t.ctx, None)
    t.ds.purpose = "locations"
    t.topic = "locations"
    return State.AWAITING_POINT


CHOICES: dict[str, Handler] = {
    "menu_track": lambda t: tracking.ask_code(t),
    "menu_points": points_menu,
    "menu_prices": lambda t: quote.pricing(t),
    "menu_faq": courtesy.faq_menu,
    "menu_human": human_request,
    "nf_retry": lambda t: tracking.ask_code(t, purpose=t.ds.purpose),
    "nf_search": tracking.search,
    "nf_name": ask_name,
    "nf_human": not_found_human,
    "code_no": tracking.code_rejected,  # "¿Tu código es SV…?": No
    "pin_no": pin_declined,
    "human_yes": human_confirmed,
    "human_no": cases.human_declined,
    "resume_yes": lambda t: resume(t),
    "resume_no": lambda t: resume_declined(t),
    "cmp_ok": complaint_settled,
    "cmp_human": lambda t: cases.escalate(t, "complaint", escalation.HIGH),
    "more_no": policies.no_more,  # "¿Quieres más detalles?" / a person offered after a policy: no
}
CHOICE_PREFIXES: dict[str, Callable[[Turn, str], State]] = {
    "pin": points.pin,
    "place": points.place_for,
    "point": point_chosen,
    "pkg": tracking.track,
    "faq": policies.policy,
    "more": policies.more_details,  # "¿Quieres más detalles?": Sí (more:<ref>)
    "csat": lambda t, value: courtesy.csat(t, int(value)) if value.isdigit() else State.IDLE,
}


# -- leaving a question for another topic, and coming back -----------------------------------------------


def elsewhere(t: Turn) -> State:
    """The message is not the answer the state waits for: an option, a new topic, or not understood."""
    if (state := picked(t)) is not None:
        return state
    if t.intent in INFORMATION:
        return switch(t)
    if t.intent == "out_of_scope" and not (t.clean.empty or t.clean.emoji_only):
        return not_the_answer(t, None)
    return dispatch(t)


def switch(t: Turn) -> State:
    """Answer another topic now; keep the open question to offer it again afterwards (design 4.3.3)."""
    state = state_of(t.ds)
    if state in TASKS:
        t.ds.pending = {"state": state.value, "purpose": t.ds.purpose, "day": t.ds.day,
                        "code": t.ds.not_found_code}
    t.ds.state, t.ds.purpose = State.IDLE.value, None
    return dispatch(t)


def not_the_answer(t: Turn, hint: str | None) -> State:
    """Not what was asked and not understood otherwise: say so, ask again; counts towards the offer of a person."""
    state = state_of(t.ds)
    t.understood = False
    t.ds.not_understood += 1
    t.event("not_understood", count=t.ds.not_understood, state=state.value)
    if t.ds.not_understood >= cases.NOT_UNDERSTOOD_OFFER and not t.ds.declined_human:  # an offer, never a case
        return cases.offer_human(t, "not_understood", wording()["offer_human"]["body"])
    if hint is not None:
        t.say(hint)
        return state
    t.say("not_understood_task")
    return ask_again(t, state)


def ask_again(t: Turn, state: State) -> State:
    """Ask the open question of `state` again (after a topic switch or a reply that did not fit)."""
    purpose = t.ds.purpose
    if state is State.AWAITING_CODE:
        return tracking.ask_code(t, purpose=purpose)
    if state is State.AWAITING_NAME:
        return ask_name(t)
    if state is State.AWAITING_WEIGHT:
        return quote.pricing(t, t.ds.pricing.get("destination"))
    if state is State.AWAITING_PACKAGE_CHOICE and t.ds.listed:
        rows = tuple(Choice(f"pkg:{code}", code) for code in t.ds.listed)
        w = wording()
        t.replies.append(ChoiceList(body=w["pick_package"], button_label=w["pick_package_button"], rows=rows))
        return state
    if state is State.AWAITING_NOT_FOUND_CHOICE:
        if not t.ds.not_found_code:
            return ask_name(t)
        t.replies += tracking_service.not_found_replies(t.ds.not_found_code)
        return state
    if state is State.AWAITING_POINT and purpose in ("hours", "locations", "search", "pricing"):
        if purpose == "hours":
            t.replies += business.hours_answer(t.ctx, None, t.ds.day)
        elif purpose == "search":
            t.replies.append(points.point_list(t, t.line("ask_point.search")))
        elif purpose == "pricing":
            t.say("ask_point.pricing")
        else:
            t.replies += business.location_answer(t.ctx, None)
        return state
    return tracking.ask_code(t) if state in TASKS else menu_or_welcome(t)


def resume(t: Turn) -> State:
    pending, t.ds.pending = t.ds.pending or {}, None
    try:
        state = State(str(pending.get("state")))
    except ValueError:
        return courtesy.menu_help(t)
    t.ds.purpose, t.ds.day, t.ds.not_found_code = pending.get("purpose"), pending.get("day"), pending.get("code")
    t.ds.state = state.value
    return ask_again(t, state)


def resume_declined(t: Turn) -> State:
    t.ds.pending = None
    t.say("resume.declined")
    return State.IDLE


def offer_resume(t: Turn) -> State:
    pending = t.ds.pending or {}
    w = wording()["resume"]
    task = w["tasks"].get(str(pending.get("state")), w["tasks"]["awaiting_tracking_code"])
    t.buttons(w["body"].format(task=task), ("resume_yes", w["yes"]), ("resume_no", w["no"]))
    return State.AWAITING_RESUME
