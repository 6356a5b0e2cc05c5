"""The router's contract: what goes in (text + what the dialog expects) and what comes out.

The intents and entity values are those of the NLU contract (docs/NLU.md):
an intent name, plus `tracking_code`, `point` and `weight_lbs` entities when
found. `option_id` and `answer` carry the meaning of a reply to what the bot
just asked (a menu number, a tapped button, "sí"/"no"), which the dialog
manager needs and which no intent expresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INTENTS = (
    "greeting", "track_package", "find_packages", "hours", "locations", "pricing", "delivery_time",
    "requirements", "unclaimed_policy", "refund", "payment", "human_agent", "complaint", "sales_lead",
    "change_delivery", "thanks", "goodbye", "opt_out", "menu", "out_of_scope",
)

# When a message carries two intents, the more actionable one wins (earlier = stronger).
PRIORITY = (
    "complaint", "human_agent", "change_delivery", "sales_lead", "opt_out",
    "track_package", "find_packages", "refund", "payment", "pricing", "delivery_time", "hours", "locations",
    "requirements", "unclaimed_policy", "menu", "goodbye", "thanks", "greeting", "out_of_scope",
)

STAGES = ("regex", "keyword", "llm", "fallback")


@dataclass(frozen=True)
class DialogContext:
    """What the router may know of the conversation (no I/O: the dialog manager fills it in)."""

    # what the bot asked for last: tracking_code | point | weight | name | yes_no | option | None
    expecting: str | None = None
    # ids of the choices offered last, in order: "2" or the second title picks options[1]
    options: tuple[str, ...] = ()
    option_titles: tuple[str, ...] = ()
    last_intent: str | None = None


@dataclass(frozen=True)
class Route:
    intent: str
    entities: dict[str, Any] = field(default_factory=dict)
    stage: str = "keyword"  # regex | keyword | llm | fallback
    confidence: float = 1.0
    option_id: str | None = None  # the offered option this message picks, if any
    answer: str | None = None  # "yes" | "no" when the message answers a yes/no question
    # Two or more questions in one message ("¿cuánto cuesta a La Unión y a qué hora cierran?"): each clause's
    # own route, in the order written; empty for a message that asks one thing.
    parts: tuple[Route, ...] = ()
    clause: str = ""  # for a part: its words as the customer wrote them
