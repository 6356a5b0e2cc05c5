"""The summary an agent reads first: who the customer is, why the bot handed over, what it already knew.

Built from facts (the escalation, the dialog state, the routing decisions
stored with the customer's messages) and the transcript. An optional
`summarizer` (an LLM, e.g. `llm.summary.summarize` once wired) gets the
same transcript and facts; when it is absent, fails or returns nothing, the
summary is built here from the facts, in the words of handoff/texts.yaml.
Failure policy: never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from handoff.cases import wording

log = logging.getLogger(__name__)

# (who, text) pairs oldest first -- who is "cliente", "bot" or the agent's name -- and the facts as a dict.
Summarizer = Callable[[Sequence[tuple[str, str]], dict[str, Any]], str | None]

MAX_LAST = 2


@dataclass(frozen=True)
class Facts:
    """What the bot knew when it handed over (all optional but the case)."""

    case_number: str
    reason: str
    priority: str
    customer_name: str | None = None
    intents: list[str] = field(default_factory=list)
    packages: list[tuple[str, str | None]] = field(default_factory=list)  # (tracking code, live status)
    point: str | None = None
    searched_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"case_number": self.case_number, "reason": self.reason, "priority": self.priority,
                "customer_name": self.customer_name, "intents": self.intents,
                "packages": [{"tracking_code": c, "status": s} for c, s in self.packages],
                "point": self.point, "searched_name": self.searched_name}


def reason_text(reason: str) -> str:
    """Why the bot handed over, in words ("presentó un reclamo"); a reason without words is never its id."""
    reasons = wording()["reasons"]
    return str(reasons.get(reason) or reasons["other"])


def build_summary(facts: Facts, transcript: Sequence[tuple[str, str]], summarizer: Summarizer | None = None) -> str:
    """The LLM's summary when one is configured and answers, otherwise one built from the facts."""
    if summarizer is not None:
        try:
            text = summarizer(transcript, facts.as_dict())
        except Exception as exc:  # noqa: BLE001 - any failure of the LLM falls back to the facts
            log.warning("summary by the LLM failed: %s", type(exc).__name__)
            text = None
        if text and text.strip():
            return text.strip()
    return from_facts(facts, transcript)


def from_facts(facts: Facts, transcript: Sequence[tuple[str, str]]) -> str:
    """The summary in the words of handoff/texts.yaml (`summary`, `reasons`, `topics`)."""
    w, topic_names = wording()["summary"], wording()["topics"]
    who = facts.customer_name or w["customer"]
    urgency = w["high"] if facts.priority == "high" else ""
    lines = [w["opening"].format(who=who, reason=reason_text(facts.reason), case=facts.case_number) + urgency]
    topics = [str(topic_names[i]) for i in dict.fromkeys(facts.intents) if i in topic_names and i != "human_agent"]
    if topics:
        lines.append(w["topics"].format(topics=", ".join(topics)))
    if facts.packages:
        described = [w["package"].format(code=code, status=status) if status else code
                     for code, status in facts.packages]
        lines.append(w["packages"].format(packages=", ".join(described)))
    if facts.point:
        lines.append(w["point"].format(point=facts.point))
    if facts.searched_name:
        lines.append(w["searched"].format(name=facts.searched_name))
    said = [text for speaker, text in transcript if speaker == "cliente" and text.strip()]
    if said:
        last = [w["quote"].format(text=t.strip()[:160]) for t in said[-MAX_LAST:]]
        lines.append(w["last"].format(quotes=" ".join(last)))
    return "\n".join(lines)
