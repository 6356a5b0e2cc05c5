"""Policies and the company's FAQ: requirements, unclaimed packages, refunds, payment, free questions.

Every answer is the company's own text (its current FAQ version) cut by `services.faq` to
at most six lines; a cut answer ends with "¿Quieres más detalles?" and its Sí
button (`more:<ref>`) names the rest, so the session remembers it through the
options it offered: a tap or a typed "sí" sends the rest (`more_details`), "no"
moves on (`no_more`). A question inside a topic (the router's entity `policy`:
"¿aceptan tarjeta?", "ya le pagué al remitente") gets its own text. Someone
else collecting a package is answered with what they bring, and a person is
offered, never imposed (`pickup_by_other`). A topic the company has not
written (a new company starts with an empty FAQ) is answered with "I don't
have that information" and a person offered (`NO_INFORMATION`).
"""

from __future__ import annotations

from channels.outbound import Buttons
from chatbot.dialog import delivery_times
from chatbot.dialog.turn import State, Turn
from services import faq, wording

HANDOFF_REASON = "change_delivery"  # the case opened when the customer accepts a person after pickup_by_other
MORE_DETAILS = "more_details"  # the session's purpose while "¿Quieres más detalles?" waits for Sí / No
NO_INFORMATION = "no_information"  # the case's reason when the customer accepts a person for an unwritten topic


def policy(t: Turn, topic: str) -> State:
    if topic == "delivery":
        return delivery_times.delivery(t)
    question = str(t.route.entities.get("policy") or "")
    text = question if faq.POLICY_FALLBACK.get(question) == topic else topic  # "¿aceptan tarjeta?"
    if not faq.has_policy(t.ctx, text):
        return no_information(t, topic)
    t.replies += faq.policy_answer(t.ctx, text)
    t.solved(topic)
    t.topic = topic
    _await_more(t)
    return State.IDLE


def pickup_by_other(t: Turn) -> State:
    """"¿Puede ir mi esposa a traerlo?": what the one who collects brings, and a person offered to confirm it."""
    if not faq.has_policy(t.ctx, "pickup_by_other"):
        return no_information(t, "pickup_by_other")
    t.replies += faq.policy_with_person(t.ctx, "pickup_by_other")
    t.ds.purpose = HANDOFF_REASON  # the reason of the case if the customer says yes
    t.topic = "pickup_by_other"
    return State.AWAITING_HUMAN_CONFIRM


def no_information(t: Turn, topic: str) -> State:
    """The company has written nothing on `topic`: say so, and offer a person (a "no" moves on)."""
    t.topic = topic
    t.event("no_information", topic=topic)
    person = wording()["faq"]["person"]
    t.buttons(t.line("no_information"), (faq.PERSON_YES, person["yes"]), (faq.MORE_NO, person["no"]))
    t.ds.purpose = NO_INFORMATION  # the reason of the case if the customer says yes
    return State.AWAITING_HUMAN_CONFIRM


def more_details(t: Turn, ref: str) -> State:
    """The Sí of "¿Quieres más detalles?": the rest of the answer `ref` names (policy:<topic> or faq:<id>)."""
    rest = faq.more_details(t.ctx, ref)
    if not rest:  # the company's text changed and nothing is left: nothing more to add
        return no_more(t)
    t.replies += rest
    t.topic = "faq"
    t.ds.purpose = None
    return State.IDLE


def more_or_not(t: Turn) -> State | None:
    """The reply to "¿Quieres más detalles?": its buttons tapped (or their titles typed), or a bare yes / no
    ("dale", "no gracias"); None when the message asks something else (it is answered as usual)."""
    t.ds.purpose = None
    more = next((o for o in t.ds.options if o.startswith(f"{faq.MORE_PREFIX}:")), None)
    if t.choice is not None and t.choice.startswith(f"{faq.MORE_PREFIX}:"):
        return more_details(t, t.choice.partition(":")[2])
    if t.choice == faq.MORE_NO:
        return no_more(t)
    if t.choice is not None or t.route.entities or len(t.folded.split()) > 3:
        return None
    if t.route.answer == "yes" and more is not None:
        return more_details(t, more.partition(":")[2])
    if t.route.answer == "no":
        return no_more(t)
    return None


def _await_more(t: Turn) -> None:
    """After a cut answer, the next message may be its Sí / No."""
    if any(c.id.startswith(f"{faq.MORE_PREFIX}:") for r in t.replies[-1:] if isinstance(r, Buttons)
           for c in r.buttons):
        t.ds.purpose = MORE_DETAILS


def no_more(t: Turn) -> State:
    """The No of "¿Quieres más detalles?" (or of a person offered after a policy): on to something else."""
    t.say("anything_else")
    t.ds.purpose = None
    return State.IDLE


def faq_answer(t: Turn) -> State | None:
    """A question the router could not place but the company's FAQ answers (a keyword of the entry appears)."""
    entry = faq.entry_for(faq.data(t.ctx), t.text)
    if entry is None:
        return None
    t.replies += faq.entry_answer(entry)
    t.solved("faq")
    t.topic = "faq"
    _await_more(t)
    return State.IDLE
