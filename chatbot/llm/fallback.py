"""The router's `llm=` callable: the model reads a message the rules could not place.

The answer is structured output constrained to the router's contract
(chatbot/routing.py, docs/NLU.md): one of the intents, a confidence, and the
entities `tracking_code`, `point`, `weight_lbs`. Entities are checked against
the message itself: a tracking code the customer did not type, an unknown
point or an absurd weight are dropped, so the model cannot invent them.
When the model is not confident (< `LLM_THRESHOLD`) `unsure` is set and the
router keeps the rules' reading; the engine then shows the menu instead of
guessing. Malformed output counts as no answer.

Failure policy: never raises; a failed call returns None (the rules' answer stands).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from chatbot import entities as ent
from chatbot.router import LLM_THRESHOLD
from chatbot.routing import INTENTS, DialogContext, Route
from llm.prompts import load
from llm.session import LlmSession
from llm.types import LlmError, Message

log = logging.getLogger(__name__)

PURPOSE = "route"
MAX_WEIGHT_LBS = 1000


def schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": list(INTENTS)},
            "confidence": {"type": "number"},
            "tracking_code": {"type": ["string", "null"]},
            "point": {"type": ["string", "null"]},  # one of the ids the prompt lists; checked afterwards
            "weight_lbs": {"type": ["number", "null"]},
        },
        "required": ["intent", "confidence", "tracking_code", "point", "weight_lbs"],
        "additionalProperties": False,
    }


class RouterFallback:
    """Called by `chatbot.router.route` for one message; remembers whether it was used and how it went."""

    def __init__(self, session: LlmSession, company_name: str) -> None:
        self.session, self.company_name = session, company_name
        self.asked = False
        self.unsure = False
        self.failed = False

    def __call__(self, text: str, context: DialogContext | None) -> Route | None:
        prompt = load("router")
        if not self.session.available():
            self.session.skipped(PURPOSE, prompt.version)
            return None
        self.asked = True
        system = prompt.render(company=self.company_name, point_ids=", ".join(sorted(ent.point_ids())),
                               context=_context_line(context))
        try:
            completion = self.session.complete(PURPOSE, prompt.version, system, [Message("user", text[:1000])],
                                               json_schema=schema(), max_output_tokens=120)
        except LlmError:
            self.failed = True
            return None
        route = parse(completion.text, text)
        if route is None:
            self.session.mark_last("bad_output")
            self.failed = True
            log.warning("llm router answer unusable")
            return None
        if route.confidence < LLM_THRESHOLD:
            self.unsure = True
        return route


def _context_line(context: DialogContext | None) -> str:
    if context is None or (context.expecting is None and context.last_intent is None):
        return ""
    parts = []
    if context.expecting:
        parts.append(f"el bot acaba de pedir: {context.expecting}")
    if context.last_intent:
        parts.append(f"tema anterior: {context.last_intent}")
    return "Contexto: " + "; ".join(parts) + "."


def parse(raw: str, text: str) -> Route | None:
    """The model's JSON as a Route, entities checked against the message; None when unusable."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("intent") not in INTENTS:
        return None
    confidence = data.get("confidence")
    if not isinstance(confidence, int | float) or isinstance(confidence, bool):
        return None
    entities: dict[str, Any] = {}
    code = data.get("tracking_code")
    typed = ent.extract_tracking_code(text) or ent.extract_bare_code(text)
    if isinstance(code, str) and typed is not None and typed == code.upper().replace(" ", "").replace("-", ""):
        entities["tracking_code"] = typed  # only a code the customer really typed
    point = data.get("point")
    if isinstance(point, str) and point in ent.point_ids():
        entities["point"] = point
    weight = data.get("weight_lbs")
    if isinstance(weight, int | float) and not isinstance(weight, bool) and 0 < weight <= MAX_WEIGHT_LBS \
            and ent.extract_weight(text, bare_number=True) is not None:
        entities["weight_lbs"] = float(weight)
    return Route(str(data["intent"]), entities, "llm", max(0.0, min(1.0, float(confidence))))
