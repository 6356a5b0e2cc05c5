"""Two questions in one message ("¿cuánto cuesta de Santa Ana a La Unión y a qué hora cierran?").

The router gives each question as a part (`Route.parts`, in the order written). Each part is answered as if
it came alone, in order, sharing the session; the replies of a part are folded into one message, so the
customer gets at most `MAX_PARTS` messages. A third question is not guessed at: the customer is asked to
send it again. Only information questions are split: a complaint or a request for a person in the same
message wins as usual (the whole message goes to the state's handler).
"""

from __future__ import annotations

from dataclasses import replace

from channels.outbound import Buttons, ChoiceList, OutboundMessage, Text
from chatbot import guard
from chatbot.dialog.dispatch import INFORMATION, TASKS, dispatch
from chatbot.dialog.turn import State, Turn, state_of

MAX_PARTS = 2


def answer_each(t: Turn) -> State | None:
    """Answer every part of a message that asks several things; None when it asks one thing."""
    parts = t.route.parts
    if len(parts) < 2 or any(p.intent not in INFORMATION or p.entities.get("tracking_code") for p in parts):
        return None
    state = state_of(t.ds)
    if state in TASKS:  # the open question is offered again afterwards, as for any topic switch
        t.ds.pending = {"state": state.value, "purpose": t.ds.purpose, "day": t.ds.day, "code": t.ds.not_found_code}
        t.ds.purpose = None
    nxt = State.IDLE
    for n, part in enumerate(parts[:MAX_PARTS]):
        one = replace(t, route=part, clean=guard.clean(part.clause), replies=[], events=[], escalation=None,
                      _cues=None)
        t.ds.state = State.IDLE.value
        nxt = dispatch(one)
        t.replies += _folded(one.replies, last=n == min(len(parts), MAX_PARTS) - 1)
        t.events += one.events
        t.understood = t.understood and one.understood
        t.topic = one.topic
    if len(parts) > MAX_PARTS:
        t.say("several_questions_more")
    t.event("several_questions", count=len(parts))
    return nxt


def _folded(replies: list[OutboundMessage], *, last: bool) -> list[OutboundMessage]:
    """A part's replies as one message: its texts together, the buttons or list of the last part kept.
    A map pin cannot be folded into text: it is sent as it is, before the words."""
    texts = [r.body for r in replies if isinstance(r, Text | Buttons | ChoiceList)]
    others: list[OutboundMessage] = [r for r in replies if not isinstance(r, Text | Buttons | ChoiceList)]
    final = replies[-1] if replies else None
    if not texts:
        return others
    if last and isinstance(final, Buttons | ChoiceList):
        return [*others, replace(final, body="\n\n".join(texts))]
    return [*others, Text("\n\n".join(texts))]
